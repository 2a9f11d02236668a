"""Temporal windows and overlap-averaged stitching (``reference.md`` §4.6, §6.1): the one window rule.

Training (its windows and validation stitching), export's accuracy check and offline inference (window by window,
as frames arrive) all take their windows from here, so they cannot drift apart.
"""

from __future__ import annotations

import numpy as np

from edgeaff.runtime.errors import InvalidInputError


def window_starts(length: int, *, window: int = 300, hop: int = 200) -> list[int]:
    """Start frames of the windows covering a sequence of ``length`` frames.

    ``length > window``: starts 0, hop, 2·hop, … while ``start + window < length``, then one final window ending
    exactly at ``length``. ``length <= window``: one window starting at 0 (shorter than ``window``; callers pad).
    This is the whole rule; :func:`window_closed_by` and :func:`final_window` state it for a sequence whose
    length is not known yet (a stream of frames), and give the same windows.

    Example:
        >>> window_starts(650)
        [0, 200, 350]
        >>> window_starts(120)
        [0]
    """
    _check(window, hop)
    if length < 1:
        raise InvalidInputError(f"a sequence needs at least one frame, got {length}")
    regular = [start for start in range(0, max(length - window, 0), hop)]
    return [*regular, final_window(length, window=window)[0]] if length > window else [0]


def window_closed_by(frame: int, *, window: int = 300, hop: int = 200) -> int | None:
    """The start of the regular window that the arrival of frame ``frame`` (0-based) makes certain, if any.

    A regular window ``[s, s + window)`` exists when ``s`` is a multiple of ``hop`` and ``s + window`` is less than
    the sequence's length, i.e. once frame ``s + window`` has arrived. So frame ``n`` closes the window starting at
    ``n - window`` when that is a non-negative multiple of ``hop``.
    """
    _check(window, hop)
    start = frame - window
    return start if start >= 0 and start % hop == 0 else None


def final_window(length: int, *, window: int = 300) -> tuple[int, int]:
    """``(start, frames)`` of the last window of a sequence of ``length`` frames: flush with its end, or the whole
    sequence when it is at most ``window`` long."""
    if length < 1:
        raise InvalidInputError(f"a sequence needs at least one frame, got {length}")
    return (length - window, window) if length > window else (0, length)


def _check(window: int, hop: int) -> None:
    if window < 1 or not 0 < hop <= window:
        raise InvalidInputError(f"invalid windowing: window={window}, hop={hop}")


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
