"""The inference pipeline: graphs, per-frame features, temporal windows and streaming, ensembling."""
