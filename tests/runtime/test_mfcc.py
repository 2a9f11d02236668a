"""MFCC-39: numpy implementation vs openSMILE itself (the shipped config), row counts, HTK order, streaming."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edgeaff.runtime.audio.mfcc import Mfcc39Stream, MfccFrontend, mfcc39
from edgeaff.runtime.errors import InvalidInputError
from edgeaff.runtime.io.audio_track import decode_audio
from edgeaff.runtime.spec import MfccSpec

SPEECH = Path(__file__).resolve().parents[1] / "data" / "speech_16k.wav"
opensmile_mfcc = pytest.importorskip("edgeaff.runtime.audio.mfcc_toolkit")
# Agreement reached with openSMILE 3.0 (opensmile 2.6) on the speech fixture: ≤ 2.6e-6 (static), 2.3e-6 (Δ),
# 2.0e-6 (ΔΔ) of each coefficient's range over the clip (float32 vs float64 arithmetic). Asserted with headroom:
TOLERANCE = {"static": 2e-5, "delta": 2e-5, "delta-delta": 2e-5}
BLOCKS = {"static": slice(0, 13), "delta": slice(13, 26), "delta-delta": slice(26, 39)}


@pytest.fixture(scope="module")
def speech() -> np.ndarray:
    return decode_audio(SPEECH)


@pytest.fixture(scope="module")
def smile_speech(speech: np.ndarray) -> np.ndarray:
    return opensmile_mfcc.mfcc39_opensmile(speech)


def test_fixture_is_real_speech(speech: np.ndarray) -> None:
    assert SPEECH.stat().st_size <= 200_000
    assert len(speech) == 88000 and np.abs(speech).max() > 0.3


@pytest.mark.parametrize("block", list(BLOCKS))
def test_numpy_matches_opensmile_on_speech(speech: np.ndarray, smile_speech: np.ndarray, block: str) -> None:
    ours = mfcc39(speech)
    assert ours.shape == smile_speech.shape == (548, 39)
    columns = BLOCKS[block]
    value_range = smile_speech[:, columns].max(axis=0) - smile_speech[:, columns].min(axis=0)
    error = np.abs(ours[:, columns] - smile_speech[:, columns]).max(axis=0)
    assert (error <= TOLERANCE[block] * value_range).all(), (error / value_range).max()


def test_columns_are_in_htk_order(smile_speech: np.ndarray, speech: np.ndarray) -> None:
    """openSMILE's 'mfcc[12]' column is c0: sqrt(2/26) times the sum of the 26 log mel energies."""
    frontend = MfccFrontend()
    samples = speech.astype(np.float64) * 32768
    frames = np.lib.stride_tricks.sliding_window_view(samples, 400)[::160][:548]
    emphasised = np.concatenate([0.03 * frames[:, :1], frames[:, 1:] - 0.97 * frames[:, :-1]], axis=1)
    power = np.abs(np.fft.rfft(emphasised * np.hamming(400), 512)) ** 2
    log_energy = np.log(np.maximum(power @ frontend.mel_matrix, 1.0))
    c0 = np.sqrt(2 / 26) * log_energy.sum(axis=1)
    np.testing.assert_allclose(smile_speech[:, 12], c0, rtol=1e-5, atol=1e-3)


@pytest.mark.parametrize("n_samples", [0, 399, 400, 559, 560, 1040, 16000, 16159, 16160, 48321])
def test_row_count_matches_opensmile(n_samples: int) -> None:
    signal = np.random.default_rng(n_samples).integers(-8000, 8000, n_samples) / 32768
    expected = 0 if n_samples < 400 else (n_samples - 400) // 160 + 1
    assert mfcc39(signal).shape == (expected, 39)
    assert opensmile_mfcc.mfcc39_opensmile(signal).shape == (expected, 39)


@pytest.mark.parametrize("n_samples", [880, 1200, 4000])
def test_short_signals_agree_with_opensmile(n_samples: int) -> None:
    """From 4 rows on the edge handling matches too (openSMILE's deltas are erratic below 4 rows, see mfcc.py)."""
    signal = np.random.default_rng(n_samples).integers(-8000, 8000, n_samples) / 32768
    ours, theirs = mfcc39(signal), opensmile_mfcc.mfcc39_opensmile(signal)
    np.testing.assert_allclose(ours, theirs, rtol=1e-4, atol=1e-3)


def test_silence_hits_the_mel_floor() -> None:
    rows = mfcc39(np.zeros(2000))
    assert rows.shape == (11, 39) and not rows.any()  # log(max(0, 1)) = 0 everywhere


@pytest.mark.parametrize("chunk", [1, 160, 333, 4000])
def test_stream_equals_batch(speech: np.ndarray, chunk: int) -> None:
    signal = speech[: 16000 + 77]
    stream = Mfcc39Stream()
    parts = [stream.push(signal[i : i + chunk]) for i in range(0, len(signal), chunk)]
    parts.append(stream.flush())
    # Same arithmetic on the same frames; stated tolerance 1e-9 relative to the coefficient magnitudes.
    np.testing.assert_allclose(np.concatenate(parts), mfcc39(signal), rtol=1e-6, atol=1e-9)
    assert stream.rows_emitted == len(mfcc39(signal))


def test_stream_lookahead_is_four_rows() -> None:
    stream = Mfcc39Stream()
    assert stream.lookahead_rows == 4
    # 400 + 160·k samples make k + 1 frames; row t is released once frame t + 4 exists.
    assert len(stream.push(np.zeros(400 + 160 * 4))) == 1
    assert len(stream.push(np.zeros(160))) == 1
    assert len(stream.flush()) == 4
    with pytest.raises(InvalidInputError, match="flushed"):
        stream.push(np.zeros(10))


def test_bad_inputs() -> None:
    with pytest.raises(InvalidInputError, match="1-D"):
        mfcc39(np.zeros((2, 1000)))
    with pytest.raises(InvalidInputError, match="x / 32768"):
        mfcc39(np.zeros(1000, dtype=np.int16))
    with pytest.raises(InvalidInputError, match="NaN"):
        mfcc39(np.full(1000, np.nan))
    with pytest.raises(InvalidInputError, match="only the reference MFCC spec"):
        opensmile_mfcc.mfcc39_opensmile(np.zeros(1000), spec=MfccSpec(mel_bands=40))
    with pytest.raises(InvalidInputError, match=r"\[-1, 1\)"):
        opensmile_mfcc.mfcc39_opensmile(np.full(1000, 1.5))


def test_config_ships_as_package_data() -> None:
    path = opensmile_mfcc.config_path()
    assert path.is_file() and "cMelspec" in path.read_text()
