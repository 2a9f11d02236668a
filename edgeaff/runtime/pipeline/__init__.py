"""The inference pipeline: graph sessions, per-frame features, temporal windows or streaming, fold ensembling.

:class:`Pipeline` is the entry point (re-exported by :mod:`edgeaff.runtime`).
"""
