"""Temporal windows and overlap-averaged stitching (``reference.md`` §4.6, §6.1).

Shared by training (validation stitching) and offline inference, so both compute exactly the same thing.
"""

from __future__ import annotations

import numpy as np

from edgeaff.runtime.errors import InvalidInputError


def window_starts(length: int, *, window: int = 300, hop: int = 200) -> list[int]:
    """Start frames of the windows covering a sequence of ``length`` frames.

    ``length > window``: starts 0, hop, 2·hop, … while ``start + window < length``, then one final window ending
    exactly at ``length``. ``length <= window``: one window starting at 0 (shorter than ``window``; callers pad).

    Example:
        >>> window_starts(650)
        [0, 200, 350]
        >>> window_starts(120)
        [0]
    """
    if length < 1:
        raise InvalidInputError(f"a sequence needs at least one frame, got {length}")
    if window < 1 or not 0 < hop <= window:
        raise InvalidInputError(f"invalid windowing: window={window}, hop={hop}")
    if length <= window:
        return [0]
    starts = list(range(0, length - window, hop))
    starts.append(length - window)
    return starts


class OverlapAverager:
    """Accumulates per-window predictions and returns each frame's mean over the windows that cover it.

    Positions past the end of the sequence (padding of short sequences) are ignored.
    """

    def __init__(self, length: int, channels: int = 1) -> None:
        self.length = length
        self._sum = np.zeros((length, channels), dtype=np.float64)
        self._count = np.zeros(length, dtype=np.int64)

    def add(self, start: int, values: np.ndarray) -> None:
        """Add a window's predictions (W,) or (W, C) starting at frame ``start``."""
        block = np.asarray(values, dtype=np.float64)
        if block.ndim == 1:
            block = block[:, None]
        stop = min(start + block.shape[0], self.length)
        if start < 0 or start >= self.length:
            raise InvalidInputError(f"window start {start} outside a sequence of {self.length} frames")
        self._sum[start:stop] += block[: stop - start]
        self._count[start:stop] += 1

    def result(self) -> np.ndarray:
        """(length, C) float64 means; raises if a frame was never covered."""
        if np.any(self._count == 0):
            missing = int(np.flatnonzero(self._count == 0)[0])
            raise InvalidInputError(f"frame {missing} is not covered by any window")
        return self._sum / self._count[:, None]
