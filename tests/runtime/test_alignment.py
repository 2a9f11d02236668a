"""Frame ↔ audio-row alignment rules of the reference, including the clamp at the end."""

from __future__ import annotations

import numpy as np
import pytest

from edgeaff.runtime.audio.alignment import (
    mfcc_rows_for_fps,
    mfcc_rows_for_times,
    vggish_example_count,
    vggish_starts_for_fps,
    vggish_starts_for_times,
)
from edgeaff.runtime.errors import InvalidInputError

FPS = [25.0, 30.0, 30000 / 1001]


@pytest.mark.parametrize("fps", FPS)
def test_mfcc_rows_are_the_reference_arithmetic(fps: float) -> None:
    n_rows = 6000
    frames = np.arange(int(60 * fps) + 30)  # runs 1 s past the end of the MFCC rows
    rows = mfcc_rows_for_fps(frames, fps, n_rows)
    for i in frames.tolist():
        index = int(round(i * 1 / fps / 0.01))  # noqa: RUF046 - preprocessing.py, literally
        assert rows[i] == (index if index < n_rows else n_rows - 1)
    assert rows[-1] == n_rows - 1 and rows.max() == n_rows - 1


def test_mfcc_rows_known_values() -> None:
    assert mfcc_rows_for_fps(np.arange(5), 25.0, 100).tolist() == [0, 4, 8, 12, 16]
    assert mfcc_rows_for_fps(np.arange(5), 30.0, 100).tolist() == [0, 3, 7, 10, 13]
    # 29.97 fps, frame 3: 3 · 1001 / 30000 / 0.01 = 10.01 -> 10
    assert mfcc_rows_for_fps(np.array([3, 1000]), 30000 / 1001, 100).tolist() == [10, 99]  # 3337 clamped


def test_half_rows_round_to_even_like_python3() -> None:
    # 20 fps: frame 1 is exactly 5 MFCC rows, 40 fps: frame 1 is 2.5 rows -> 2 (banker's rounding), frame 3 -> 8
    assert mfcc_rows_for_fps(np.array([1, 3]), 40.0, 100).tolist() == [2, 8]
    assert mfcc_rows_for_times(np.array([0.025, 0.075]), 100).tolist() == [2, 8]


@pytest.mark.parametrize("fps", FPS)
def test_vggish_examples_clamp_to_the_last(fps: float) -> None:
    n_rows = 6098  # 60 s of audio + 1 s padding
    count = vggish_example_count(n_rows, fps)
    assert count == 1 + int(np.floor((n_rows - 96) / ((1 / fps) * 100.0)))
    starts = vggish_starts_for_fps(np.arange(count + 10), fps, n_rows)
    assert (np.diff(starts[:count]) > 0).all()
    assert (starts[count - 1 :] == starts[count - 1]).all()
    assert starts[count - 1] + 96 <= n_rows


@pytest.mark.parametrize("fps", FPS)
def test_time_variant_agrees_on_constant_rate(fps: float) -> None:
    frames = np.arange(int(55 * fps))  # within the 60 s of rows: no clamping
    times = frames / fps
    assert (mfcc_rows_for_times(times, 6000) == mfcc_rows_for_fps(frames, fps, 6000)).all()
    starts = vggish_starts_for_times(times, 6098)
    assert (starts == np.round(times * 100)).all()
    assert (vggish_starts_for_times(np.array([60.03, 61.0]), 6098) == 6098 - 96).all()


def test_variable_frame_rate_timestamps() -> None:
    times = np.array([0.0, 0.031, 0.069, 0.1, 0.4449, 0.4451])
    assert mfcc_rows_for_times(times, 100).tolist() == [0, 3, 7, 10, 44, 45]
    assert vggish_starts_for_times(times, 200).tolist() == [0, 3, 7, 10, 44, 45]


def test_errors() -> None:
    with pytest.raises(InvalidInputError, match="frame rate"):
        mfcc_rows_for_fps(np.arange(3), 0.0, 10)
    with pytest.raises(InvalidInputError, match="0 rows"):
        mfcc_rows_for_fps(np.arange(3), 30.0, 0)
    with pytest.raises(InvalidInputError, match="non-negative integers"):
        mfcc_rows_for_fps(np.array([0.5]), 30.0, 10)
    with pytest.raises(InvalidInputError, match="VGGish examples"):
        vggish_starts_for_fps(np.arange(3), 30.0, 90)
    with pytest.raises(InvalidInputError, match="frame times"):
        mfcc_rows_for_times(np.array([-1.0]), 10)
