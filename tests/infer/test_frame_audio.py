"""Audio features per frame, computed as audio arrives: the rows prepare uses, their values, bounded memory."""

from __future__ import annotations

import numpy as np
import pytest
from media_fixtures import speech

from edgeaff.runtime.audio.alignment import (
    mfcc_rows_for_fps,
    mfcc_rows_for_times,
    vggish_starts_for_fps,
    vggish_starts_for_times,
)
from edgeaff.runtime.audio.frame_audio import FrameAudio, FrameKey
from edgeaff.runtime.audio.logmel import log_mel
from edgeaff.runtime.audio.mfcc import mfcc39
from edgeaff.runtime.spec import FeatureSpec

# The streamed rows come from the same per-frame arithmetic as the whole-clip functions: bit-identical in every run
# here; the tolerance leaves room for BLAS/FFT libraries that batch rows differently (float32 rounding).
RTOL, ATOL = 1e-6, 1e-5


def _stream(signal: np.ndarray, keys: list[FrameKey], *, seed: int) -> tuple[list, int]:
    """Push audio in random chunks, taking each frame's features as soon as they are ready; then finish."""
    rng = np.random.default_rng(seed)
    audio = FrameAudio(FeatureSpec())
    taken, position, most_rows = [], 0, 0
    while position < len(signal):
        size = int(rng.integers(1, 4000))
        audio.push(signal[position : position + size])
        position += size
        while len(taken) < len(keys) and audio.ready(keys[len(taken)]):
            taken.append(audio.take(keys[len(taken)]))
        most_rows = max(most_rows, *audio.buffered_rows)
    audio.finish()
    while len(taken) < len(keys):
        taken.append(audio.take(keys[len(taken)]))
    return taken, most_rows


@pytest.mark.parametrize("fps", [25.0, 30000 / 1001])
def test_frame_index_rule_gives_prepares_rows_and_values(fps: float) -> None:
    signal = speech()
    mfcc_all, mel = mfcc39(signal), log_mel(signal)
    frames = np.arange(int(len(signal) / 16000 * fps) + 12)  # a little past the end of the audio: clamped rows
    taken, _ = _stream(signal, [FrameKey(int(i), i / fps, fps) for i in frames], seed=1)
    rows = mfcc_rows_for_fps(frames, fps, len(mfcc_all))
    starts = vggish_starts_for_fps(frames, fps, len(mel))
    assert [t.start_row for t in taken] == starts.tolist()
    np.testing.assert_allclose(np.stack([t.mfcc for t in taken]), mfcc_all[rows], rtol=RTOL, atol=ATOL)
    examples = np.stack([t.example for t in taken])
    expected = np.stack([mel[s : s + 96] for s in starts])
    np.testing.assert_allclose(examples, expected, rtol=RTOL, atol=ATOL)


def test_timestamp_rule_matches_the_times_functions_for_irregular_times() -> None:
    signal = speech()
    mfcc_all, mel = mfcc39(signal), log_mel(signal)
    rng = np.random.default_rng(7)
    times = np.cumsum(rng.uniform(0.02, 0.07, 120))
    times = times[times < 6.0]
    taken, _ = _stream(signal, [FrameKey(i, float(t), None) for i, t in enumerate(times)], seed=2)
    assert [t.start_row for t in taken] == vggish_starts_for_times(times, len(mel)).tolist()
    expected = mfcc_all[mfcc_rows_for_times(times, len(mfcc_all))]
    np.testing.assert_allclose(np.stack([t.mfcc for t in taken]), expected, rtol=RTOL, atol=ATOL)


def test_features_are_ready_only_after_their_look_ahead() -> None:
    audio = FrameAudio(FeatureSpec())
    key = FrameKey(0, 0.0, 25.0)
    audio.push(np.zeros(15_000, np.float32))  # 0.9375 s: the example of t = 0 needs 0.975 s
    assert not audio.ready(key)
    audio.push(np.zeros(600, np.float32))  # 0.975 s
    assert audio.ready(key)
    late = FrameKey(100, 4.0, 25.0)
    assert not audio.ready(late)
    audio.finish()  # end of audio: late frames take the clamped last example
    assert audio.ready(late) and audio.take(late) is not None


def test_memory_stays_bounded_on_a_long_stream() -> None:
    signal = np.random.default_rng(3).normal(0, 0.1, 16000 * 60).astype(np.float32)
    fps = 30.0
    keys = [FrameKey(i, i / fps, fps) for i in range(60 * 30)]
    _, most_rows = _stream(signal, keys, seed=4)
    # frames are taken as soon as ready: what is held is the look-ahead (~1 s = 100 rows), the release slack and
    # one pushed chunk, never the 6000 rows of the minute
    assert most_rows < 400


def test_empty_audio_gives_no_features() -> None:
    audio = FrameAudio(FeatureSpec())
    audio.finish()
    assert audio.empty and audio.ready(FrameKey(0, 0.0, 25.0)) and audio.take(FrameKey(0, 0.0, 25.0)) is None


def test_alignment_clock_uses_the_index_rule_only_on_the_constant_rate_grid() -> None:
    from edgeaff.runtime.pipeline.features import AlignmentClock

    clock = AlignmentClock(25.0, by_index=True)
    # millisecond-rounded times of a 25 fps Matroska file, starting at 0.5 s: on the grid
    keys = [clock.key(i, 0.5 + round(i / 25, 3)) for i in range(10)]
    assert all(k.fps == 25.0 for k in keys) and keys[3].t_s == pytest.approx(0.12)
    gap = clock.key(10, 0.5 + 11 / 25)  # a frame missing: variable frame rate from here on
    later = clock.key(11, 0.5 + 12 / 25)
    assert gap.fps is None and later.fps is None and later.t_s == pytest.approx(12 / 25)
    assert AlignmentClock(25.0, by_index=False).key(0, 3.0).fps is None  # live sources: timestamps only
