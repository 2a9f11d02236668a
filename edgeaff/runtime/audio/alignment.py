"""Which audio feature row belongs to which video frame / label row (``reference.md`` §4.3-4.4).

The reference aligned audio features to label rows by the label row's index ``i`` and the video's frame rate
(from OpenCV, see :func:`edgeaff.runtime.io.media.probe_media`):

* MFCC (100 Hz): row ``int(round(i / fps / 0.01))``, the last row when that is past the end.
* VGGish: example ``i``, the last example when ``i`` is past the end; example ``i`` is the 0.96 s of log-mel frames
  starting at log-mel row ``round((1 / fps) · (1 / 0.01) · i)``, and there are ``1 + floor((T − 96) / hop)``
  examples for ``T`` log-mel rows and ``hop = 100 / fps``.

The ``*_for_fps`` functions reproduce that arithmetic exactly, float rounding and Python's round-half-to-even
included: at 29.97 fps, e.g., frame 150 falls exactly between two log-mel rows and ``round(i / fps · 100)``
would pick the other one in 85 of the first 200 000 frames. The ``*_for_times`` functions take frame timestamps
instead (variable frame rate, live sources) and map a time ``t`` to row ``round(t · 100)``; for a constant frame
rate they agree with the reference except on those exact-half cases and, for VGGish, in the clamp at the very end
(the last example here starts at ``T − 96``; the reference's last example may start up to one hop earlier).
"""

from __future__ import annotations

import math

import numpy as np

from edgeaff.runtime.errors import InvalidInputError
from edgeaff.runtime.spec import DEFAULT_FEATURE_SPEC

MFCC_STEP_S = 0.01  # the reference's literal, used in its arithmetic
LOGMEL_RATE_HZ = 1.0 / 0.01  # vggish_input.py: features_sample_rate = 1.0 / STFT_HOP_LENGTH_SECONDS


def _check_fps(fps: float) -> float:
    try:
        value = float(fps)
    except (TypeError, ValueError):
        value = math.nan
    if not (math.isfinite(value) and value > 0) or isinstance(fps, bool):
        raise InvalidInputError(f"frame rate must be a positive number, got {fps!r}")
    return value


def _check_rows(n_rows: int, what: str) -> None:
    if n_rows <= 0:
        raise InvalidInputError(f"no {what} to align with (0 rows); the audio is too short or missing")


def _check_indices(frame_indices: np.ndarray) -> np.ndarray:
    indices = np.asarray(frame_indices)
    if indices.ndim != 1 or not np.issubdtype(indices.dtype, np.integer) or (indices < 0).any():
        raise InvalidInputError("frame indices must be a 1-D array of non-negative integers")
    return indices


def mfcc_rows_for_fps(frame_indices: np.ndarray, fps: float, n_rows: int) -> np.ndarray:
    """MFCC row of each label/video frame index, exactly as the reference: ``int(round(i / fps / 0.01))``, clamped.

    Args:
        frame_indices: 0-based row indices in the label file (including unlabeled rows, as the reference).
        fps: the video's frame rate (``cv2.CAP_PROP_FPS`` semantics).
        n_rows: MFCC rows available.

    Returns:
        int64 row indices, each ``< n_rows``.

    Example:
        >>> mfcc_rows_for_fps(np.arange(4), 30.0, 100).tolist()
        [0, 3, 7, 10]
    """
    fps = _check_fps(fps)
    _check_rows(n_rows, "MFCC rows")
    # Python float arithmetic and round() (half to even), as preprocessing.py: int(round(i * 1 / fps / 0.01))
    rows = [round(int(i) / fps / MFCC_STEP_S) for i in _check_indices(frame_indices)]
    return np.minimum(np.asarray(rows, dtype=np.int64), n_rows - 1)


def vggish_example_count(
    n_logmel_rows: int, fps: float, *, example_frames: int = DEFAULT_FEATURE_SPEC.vggish.example_frames
) -> int:
    """Examples the reference's ``my_frame`` makes: ``1 + floor((T − 96) / (100 / fps))`` (0 if T < 96)."""
    fps = _check_fps(fps)
    if n_logmel_rows < example_frames:
        return 0
    hop = (1 / fps) * LOGMEL_RATE_HZ
    return 1 + int(np.floor((n_logmel_rows - example_frames) / hop))


def vggish_starts_for_fps(
    frame_indices: np.ndarray,
    fps: float,
    n_logmel_rows: int,
    *,
    example_frames: int = DEFAULT_FEATURE_SPEC.vggish.example_frames,
) -> np.ndarray:
    """First log-mel row of each frame's VGGish example, exactly as the reference (example i, clamped to the last).

    Args:
        frame_indices: 0-based label/video frame indices.
        fps: the video's frame rate (``cv2.CAP_PROP_FPS`` semantics).
        n_logmel_rows: log-mel rows of the (end-padded) clip.
        example_frames: rows per example (96).

    Returns:
        int64 start rows; rows ``start .. start + 95`` form the example.

    Raises:
        InvalidInputError: fewer than ``example_frames`` log-mel rows, or a bad frame rate.
    """
    count = vggish_example_count(n_logmel_rows, fps, example_frames=example_frames)
    _check_rows(count, "VGGish examples")
    hop = (1 / float(fps)) * LOGMEL_RATE_HZ
    indices = np.minimum(_check_indices(frame_indices), count - 1)
    return np.asarray([round(hop * int(i)) for i in indices], dtype=np.int64)


def _check_times(frame_times_s: np.ndarray) -> np.ndarray:
    times = np.asarray(frame_times_s, dtype=np.float64)
    if times.ndim != 1 or not np.isfinite(times).all() or (times < 0).any():
        raise InvalidInputError("frame times must be a 1-D array of finite, non-negative seconds")
    return times


def mfcc_rows_for_times(frame_times_s: np.ndarray, n_rows: int) -> np.ndarray:
    """MFCC row of each frame timestamp: ``round(t / 0.01)`` (half to even), clamped to the last row."""
    _check_rows(n_rows, "MFCC rows")
    rows = np.round(_check_times(frame_times_s) / MFCC_STEP_S).astype(np.int64)
    return np.minimum(rows, n_rows - 1)


def vggish_starts_for_times(frame_times_s: np.ndarray, n_logmel_rows: int, *, example_frames: int = 96) -> np.ndarray:
    """First log-mel row of the example of each frame timestamp: ``round(t · 100)``, clamped to ``T − 96``."""
    last_start = n_logmel_rows - example_frames
    if last_start < 0:
        raise InvalidInputError(f"{n_logmel_rows} log-mel rows are fewer than one VGGish example ({example_frames})")
    starts = np.round(_check_times(frame_times_s) * LOGMEL_RATE_HZ).astype(np.int64)
    return np.minimum(starts, last_start)
