"""The one window rule (``reference.md`` §4.6) and overlap-averaged stitching, used by training, export accuracy
and the runtime."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from edgeaff.runtime.errors import InvalidInputError
from edgeaff.runtime.pipeline.windows import OverlapAverager, window_starts


def test_window_starts_hop_through_then_end_flush() -> None:
    assert window_starts(300) == [0]  # one full window
    assert window_starts(120) == [0]  # shorter than a window: one short window (callers pad)
    assert window_starts(301) == [0, 1]
    assert window_starts(650) == [0, 200, 350]
    assert window_starts(750, window=300, hop=200) == [0, 200, 400, 450]
    assert window_starts(10, window=4, hop=4) == [0, 4, 6]
    for length in (301, 555, 1000, 1234):
        starts = window_starts(length)
        assert starts[-1] + 300 == length and all(b - a <= 200 for a, b in itertools.pairwise(starts))
    with pytest.raises(InvalidInputError):
        window_starts(0)
    with pytest.raises(InvalidInputError):
        window_starts(10, window=4, hop=5)


def test_overlap_averager_means_the_windows_covering_each_frame() -> None:
    stitched = OverlapAverager(6, channels=1)
    stitched.add(0, np.array([1.0, 1.0, 1.0, 1.0]))
    stitched.add(2, np.array([3.0, 3.0, 3.0, 3.0]))
    assert stitched.result()[:, 0].tolist() == [1.0, 1.0, 2.0, 2.0, 3.0, 3.0]
    short = OverlapAverager(3)
    short.add(0, np.array([5.0, 6.0, 7.0, 0.0]))  # padding past the end is ignored
    assert short.result()[:, 0].tolist() == [5.0, 6.0, 7.0]
    with pytest.raises(InvalidInputError, match="frame 2 is not covered"):
        gap = OverlapAverager(4)
        gap.add(0, np.array([1.0, 1.0]))
        gap.result()
