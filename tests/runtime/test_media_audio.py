"""Media probing (OpenCV's fps/frame-count rules) and audio decoding (ffmpeg -ac 1 -ar 16000 semantics)."""

from __future__ import annotations

import fractions
import os
import shutil
import subprocess
import wave
from pathlib import Path

import numpy as np
import pytest
from synthetic_media import write_video, write_wav

from edgeaff.runtime.errors import InvalidInputError
from edgeaff.runtime.io.audio_track import NoAudioTrackError, decode_audio
from edgeaff.runtime.io.media import CorruptMediaError, MediaNotFoundError, NotMediaError, probe_media

cv2 = pytest.importorskip("cv2")
NTSC = fractions.Fraction(30000, 1001)


@pytest.fixture(scope="module")
def media(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("media")
    gaps = [i for i in range(40) if i % 5 != 4]  # 30 fps timestamps with every 5th frame missing
    return {
        "mp4_30": write_video(root / "a30.mp4", rate=30),
        "mp4_25": write_video(root / "a25.mp4", rate=25),
        "mp4_2997": write_video(root / "a2997.mp4", rate=NTSC),
        "avi_2997": write_video(root / "a2997.avi", rate=NTSC, codec="mpeg4", audio_codec="pcm_s16le"),
        "mkv_25": write_video(root / "a25.mkv", rate=25),  # Matroska stores no frame count
        "mp4_vfr": write_video(root / "vfr.mp4", pts=gaps, time_base=fractions.Fraction(1, 30), audio_codec=None),
        "mute": write_video(root / "mute.mp4", rate=30, audio_codec=None),
    }


@pytest.mark.parametrize("name", ["mp4_30", "mp4_25", "mp4_2997", "avi_2997", "mkv_25", "mp4_vfr", "mute"])
def test_fps_and_frame_count_equal_opencv(media: dict[str, Path], name: str) -> None:
    info = probe_media(media[name])
    capture = cv2.VideoCapture(str(media[name]))
    assert capture.isOpened()
    assert info.fps == capture.get(cv2.CAP_PROP_FPS)  # exact: same double
    assert info.frame_count == int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
    assert (info.width, info.height) == (64, 48)
    capture.release()


def test_variable_frame_rate_uses_the_average_rate_as_opencv(media: dict[str, Path]) -> None:
    """32 frames over 1.3 s: avg_frame_rate 320/13 ≈ 24.6, while r_frame_rate (and av_guess_frame_rate) say 30."""
    import av

    with av.open(str(media["mp4_vfr"])) as container:
        assert container.streams.video[0].base_rate == 30  # r_frame_rate: the rule OpenCV does not use
    info = probe_media(media["mp4_vfr"])
    assert info.fps == pytest.approx(320 / 13, abs=1e-12)
    assert info.frame_count == 32 and not info.has_audio


def test_stream_facts(media: dict[str, Path], tmp_path: Path) -> None:
    info = probe_media(media["mp4_2997"])
    assert info.fps == 30000 / 1001 and info.has_audio and info.has_video
    assert info.duration_s == pytest.approx(12 * 1001 / 30000, abs=0.05)
    assert not probe_media(media["mute"]).has_audio
    wav = probe_media(write_wav(tmp_path / "x.wav", np.zeros(1600, np.int16)))
    assert wav.has_audio and not wav.has_video and wav.fps is None and wav.frame_count is None
    assert wav.duration_s == pytest.approx(0.1)


def test_wav_16k_mono_round_trips_exactly(tmp_path: Path) -> None:
    pcm = np.random.default_rng(0).integers(-32768, 32768, 4801).astype(np.int16)
    signal = decode_audio(write_wav(tmp_path / "m.wav", pcm))
    assert signal.dtype == np.float32 and signal.shape == (4801,)
    np.testing.assert_array_equal(signal, pcm / 32768.0)


def test_stereo_is_mixed_to_mono_by_averaging(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    left, right = rng.integers(-20000, 20000, (2, 3000))
    signal = decode_audio(write_wav(tmp_path / "st.wav", np.stack([left, right], axis=1)))
    # FFmpeg's default stereo->mono downmix is (L + R) / 2, rounded to 16 bits (±1 LSB).
    assert np.abs(signal * 32768 - (left + right) / 2).max() <= 1.0


def test_resampled_to_16k(tmp_path: Path) -> None:
    t = np.arange(48000) / 48000
    tone = np.round(0.5 * np.sin(2 * np.pi * 440 * t) * 32767).astype(np.int16)
    signal = decode_audio(write_wav(tmp_path / "s48.wav", np.stack([tone, tone], axis=1), rate=48000))
    assert len(signal) == 16000
    expected = 0.5 * np.sin(2 * np.pi * 440 * np.arange(16000) / 16000)
    # libswresample's low-pass filter: small error away from the edges.
    assert np.abs(signal[200:-200] - expected[200:-200]).max() < 2e-3
    assert len(decode_audio(tmp_path / "s48.wav", sample_rate=8000)) == 8000


@pytest.mark.parametrize("name", ["mp4_30", "avi_2997", "mkv_25"])
def test_decodes_common_containers(media: dict[str, Path], name: str) -> None:
    signal = decode_audio(media[name])
    duration = probe_media(media[name]).duration_s
    assert duration is not None
    assert abs(len(signal) / 16000 - duration) < 0.1
    assert 0.25 < np.abs(signal).max() < 0.35  # the 0.3-amplitude tone


@pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="needs the ffmpeg command line tool")
def test_matches_the_ffmpeg_command_of_the_reference(media: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "ref.wav"
    command = ["ffmpeg", "-v", "error", "-y", "-i", str(media["mp4_30"]), "-ac", "1", "-ar", "16000", "-f", "wav"]
    subprocess.run([*command, str(out)], check=True)
    with wave.open(str(out)) as handle:
        reference = np.frombuffer(handle.readframes(handle.getnframes()), np.int16)
    signal = decode_audio(media["mp4_30"])
    assert len(signal) == len(reference)
    assert np.abs(signal * 32768 - reference).max() <= 2  # bit-exact with ffmpeg 5.1; resamplers may differ by 1-2 LSB


def test_no_audio_track_is_a_catchable_documented_error(media: dict[str, Path]) -> None:
    with pytest.raises(NoAudioTrackError, match="no audio track") as caught:
        decode_audio(media["mute"])
    assert isinstance(caught.value, InvalidInputError)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(MediaNotFoundError, match="not found"):
        decode_audio(tmp_path / "nope.mp4")
    with pytest.raises(MediaNotFoundError):
        probe_media(tmp_path)


def test_a_pipe_is_refused_without_being_opened(tmp_path: Path) -> None:
    fifo = tmp_path / "videos.txt"
    os.mkfifo(fifo)  # opening it for reading would block until a writer came
    for read in (decode_audio, probe_media):
        with pytest.raises(MediaNotFoundError, match="not a regular file"):
            read(fifo)


def test_not_media(tmp_path: Path) -> None:
    text = tmp_path / "notes.mp4"
    text.write_text("these are not the frames you are looking for\n" * 20)
    with pytest.raises(NotMediaError, match="not an audio/video file"):
        decode_audio(text)
    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    with pytest.raises(NotMediaError):
        probe_media(empty)


def test_truncated_file_is_reported_as_corrupt(media: dict[str, Path], tmp_path: Path) -> None:
    truncated = tmp_path / "cut.mp4"
    truncated.write_bytes(media["mp4_30"].read_bytes()[:3000])  # the index (moov) is at the end: now missing
    with pytest.raises(CorruptMediaError, match="truncated or damaged"):
        decode_audio(truncated)


def test_bad_sample_rate(media: dict[str, Path]) -> None:
    with pytest.raises(InvalidInputError, match="positive integer"):
        decode_audio(media["mp4_30"], sample_rate=0)
