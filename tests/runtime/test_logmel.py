"""VGGish log-mel frontend vs an independent float64 computation; examples vs the reference's my_frame; streaming."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from edgeaff.runtime.audio.alignment import vggish_example_count, vggish_starts_for_fps
from edgeaff.runtime.audio.logmel import LogMelStream, examples_at_rows, log_mel, vggish_examples
from edgeaff.runtime.errors import InvalidInputError
from edgeaff.runtime.io.audio_track import decode_audio

SPEECH = Path(__file__).resolve().parents[1] / "data" / "speech_16k.wav"


@pytest.fixture(scope="module")
def speech() -> np.ndarray:
    return decode_audio(SPEECH)[: 3 * 16000]


def independent_log_mel(signal: np.ndarray) -> np.ndarray:
    """float64, written from the published recipe: explicit DFT matrix, sin² window, per-bin triangle formula."""
    x = np.concatenate([signal.astype(np.float64), np.full(16000, float(signal[-1]))])
    n_frames = 1 + (len(x) - 400) // 160
    n = np.arange(400)
    window = np.sin(np.pi * n / 400) ** 2  # = 0.5 - 0.5 cos(2πn/400), the periodic Hann
    k = np.arange(257)[:, None]
    dft = np.exp(-2j * np.pi * k * n[None, :] / 512)  # 512-point DFT of a 400-sample frame zero-padded at the end

    def mel(f: float) -> float:
        return 1127.0 * math.log(1.0 + f / 700.0)

    lo, hi = mel(125.0), mel(7500.0)
    step = (hi - lo) / 65
    weights = np.zeros((257, 64))
    for b in range(1, 257):  # DC bin excluded
        m = mel(b * 8000.0 / 256)
        for j in range(64):
            left, centre, right = lo + j * step, lo + (j + 1) * step, lo + (j + 2) * step
            if left < m <= centre:
                weights[b, j] = (m - left) / (centre - left)
            elif centre < m < right:
                weights[b, j] = (right - m) / (right - centre)
    rows = np.empty((n_frames, 64))
    for t in range(n_frames):
        magnitude = np.abs(dft @ (x[160 * t : 160 * t + 400] * window))
        rows[t] = np.log(magnitude @ weights + 0.01)
    return rows


def reference_my_frame_starts(n_rows: int, fps: float) -> list[int]:
    """The reference's vggish_input/my_frame arithmetic, literally."""
    hop_sec = 1 / fps
    features_sample_rate = 1.0 / 0.01
    example_hop_length = hop_sec * features_sample_rate
    num_frames = 1 + int(np.floor((n_rows - 96) / example_hop_length))
    return [round(example_hop_length * i) for i in range(num_frames)]


def test_log_mel_matches_independent_float64(speech: np.ndarray) -> None:
    signal = speech[:12000]
    ours = log_mel(signal)
    reference = independent_log_mel(signal)
    assert ours.dtype == np.float32 and ours.shape == reference.shape == ((12000 + 16000 - 400) // 160 + 1, 64)
    # Tolerance: float32 output rounding (values within [-4.7, 5]) plus FFT-vs-DFT differences.
    np.testing.assert_allclose(ours, reference, rtol=0, atol=5e-6)


def test_end_padding_repeats_the_last_sample() -> None:
    signal = np.full(1000, 0.25)
    rows = log_mel(signal)
    assert len(rows) == (1000 + 16000 - 400) // 160 + 1
    np.testing.assert_array_equal(rows[-1], rows[5])  # constant signal: every full frame is identical


@pytest.mark.parametrize("fps", [25.0, 30.0, 30000 / 1001])
def test_fps_starts_reproduce_my_frame_exactly(fps: float) -> None:
    n_rows = 100 * 3600 + 98  # an hour of audio
    literal = reference_my_frame_starts(n_rows, fps)
    count = vggish_example_count(n_rows, fps)
    assert count == len(literal)
    frames = np.arange(count + 50)  # the last 50 frames run past the end: clamped to the last example
    starts = vggish_starts_for_fps(frames, fps, n_rows)
    assert starts[:count].tolist() == literal
    assert (starts[count:] == literal[-1]).all()


@pytest.mark.parametrize(("fps", "expected_mismatches"), [(25.0, 0), (30.0, 0), (30000 / 1001, 85)])
def test_time_based_starts_vs_reference(fps: float, expected_mismatches: int) -> None:
    """round(t · 100) with t = i / fps equals the reference at 25 and 30 fps; at 29.97 fps it differs on exact
    half rows (float rounding decides), which is why the fps path exists."""
    frames = np.arange(200_000)
    n_rows = 10 * 200_000
    by_time = np.round(frames / fps * 100).astype(np.int64)
    assert int((by_time != vggish_starts_for_fps(frames, fps, n_rows)).sum()) == expected_mismatches


def test_examples_are_the_rows_starting_at_each_frame(speech: np.ndarray) -> None:
    rows = log_mel(speech)
    fps = 30.0
    times = np.arange(int(len(speech) / 16000 * fps) + 40) / fps  # the last frames are past the end
    examples = vggish_examples(rows, times)
    assert examples.shape == (len(times), 96, 64) and examples.dtype == np.float32
    for i, t in enumerate(times):
        start = min(round(t * 100), len(rows) - 96)
        np.testing.assert_array_equal(examples[i], rows[start : start + 96])
    literal = reference_my_frame_starts(len(rows), fps)
    fps_examples = examples_at_rows(rows, vggish_starts_for_fps(np.arange(len(times)), fps, len(rows)))
    for i in range(len(times)):
        start = literal[min(i, len(literal) - 1)]
        np.testing.assert_array_equal(fps_examples[i], rows[start : start + 96])


def test_stream_gives_the_batch_examples(speech: np.ndarray) -> None:
    signal = speech[:20000]
    rows = log_mel(signal)
    times = np.arange(40) / 25.0 + 0.013
    expected = vggish_examples(rows, times)
    stream = LogMelStream()
    assert stream.lookahead_s == pytest.approx(0.975)
    got, next_frame = [], 0
    for i in range(0, len(signal), 777):
        stream.push(signal[i : i + 777])
        while next_frame < len(times) and stream.is_ready(times[next_frame]):
            got.append(stream.example_at(times[next_frame]))
            next_frame += 1
    # Frames whose 0.975 s look-ahead has arrived: t + 0.975 <= 1.25 s of audio.
    assert next_frame == int(np.sum(np.round(times * 100) * 160 + 95 * 160 + 400 <= len(signal)))
    stream.finish()
    got += [stream.example_at(t) for t in times[next_frame:]]
    np.testing.assert_allclose(np.stack(got), expected, rtol=0, atol=1e-6)


def test_stream_refuses_early_and_out_of_order_requests() -> None:
    stream = LogMelStream()
    stream.push(np.zeros(16000))
    with pytest.raises(InvalidInputError, match=r"0\.975 s of audio"):
        stream.example_at(0.1)
    stream.example_at(0.0)
    stream.push(np.zeros(4000))
    stream.example_at(0.2)
    with pytest.raises(InvalidInputError, match="earlier than a frame already served"):
        stream.example_at(0.1)


def test_bad_inputs() -> None:
    with pytest.raises(InvalidInputError, match="empty"):
        log_mel(np.zeros(0))
    with pytest.raises(InvalidInputError, match="fewer than one VGGish example"):
        vggish_examples(np.zeros((50, 64)), np.zeros(3))
    with pytest.raises(InvalidInputError, match="frame times"):
        vggish_examples(np.zeros((200, 64)), np.array([np.nan]))
    with pytest.raises(InvalidInputError, match="must lie in"):
        examples_at_rows(np.zeros((200, 64)), np.array([105]))
