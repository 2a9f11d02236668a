"""Where edgeaff keeps per-machine caches (TensorRT engines, timing caches)."""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    """Root of edgeaff's per-machine cache.

    ``$EDGEAFF_CACHE_DIR`` if set, else ``$XDG_CACHE_HOME/edgeaff``, else ``~/.cache/edgeaff``. Not created here.
    """
    explicit = os.environ.get("EDGEAFF_CACHE_DIR")
    if explicit:
        return Path(explicit).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "edgeaff"


def engine_cache_dir() -> Path:
    """Directory of the TensorRT engine cache (engines are per device, never shipped; ``design.md`` §3)."""
    return cache_dir() / "engines"
