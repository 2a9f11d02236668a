"""Consumers of predictions: result files, JSON summary, overlay video, plot, live printing."""
