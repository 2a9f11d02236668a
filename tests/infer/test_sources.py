"""Sources: URIs, container timestamps (VFR), the audio prepare would decode, folders, live readers and time-outs."""

from __future__ import annotations

import fractions
import itertools
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import av
import numpy as np
import pytest
from media_fixtures import speech, write_media
from PIL import Image
from synthetic_media import write_video

from edgeaff.runtime.errors import InvalidInputError, MissingDependencyError
from edgeaff.runtime.faces.image import load_face_image, resize_face
from edgeaff.runtime.io.audio_track import decode_audio
from edgeaff.runtime.io.camera import CaptureSource, csi_pipeline
from edgeaff.runtime.io.live_reader import LiveReader
from edgeaff.runtime.io.media import CorruptMediaError, NotMediaError
from edgeaff.runtime.io.network import NetworkStreamSource
from edgeaff.runtime.io.open import classify, open_source
from edgeaff.runtime.io.sources import AudioChunk, SourceKind, SourceTimeoutError, VideoFrame

cv2 = pytest.importorskip("cv2")


def _drain(source_uri: Path | str, **kwargs: object) -> tuple[list[VideoFrame], np.ndarray]:
    frames, chunks = [], []
    with open_source(source_uri, **kwargs) as source:  # type: ignore[arg-type]
        for item in source:
            (frames if isinstance(item, VideoFrame) else chunks).append(item)
    audio = np.concatenate([c.samples for c in chunks]) if chunks else np.zeros(0, np.float32)
    return frames, audio


def _container_times(path: Path) -> list[float]:
    with av.open(str(path)) as container:
        return [float(f.time) for f in container.decode(video=0)]


def test_uri_classification(tmp_path: Path) -> None:
    video = write_video(tmp_path / "v.mp4", n_frames=3, audio_codec=None)
    assert classify(str(video)) == (SourceKind.FILE, str(video))
    assert classify(f"file://{video}") == (SourceKind.FILE, str(video))
    assert classify(str(tmp_path)) == (SourceKind.FOLDER, str(tmp_path))
    assert classify("0") == (SourceKind.CAMERA, "0")
    assert classify("/dev/video2") == (SourceKind.CAMERA, "/dev/video2")
    assert classify("csi://1?width=1920") == (SourceKind.CSI, "1?width=1920")
    assert classify("rtsp://cam.local:554/stream")[0] is SourceKind.RTSP
    assert classify("https://cam.local/live.m3u8") == (SourceKind.HTTP, "https://cam.local/live.m3u8")
    for bad in ("ftp://x/y.mp4", "srt://x:9000", str(tmp_path / "missing.mp4"), "csi://front"):
        with pytest.raises(InvalidInputError):
            classify(bad)


def test_csi_pipeline_and_missing_gstreamer() -> None:
    pipeline = csi_pipeline("0?width=1920&height=1080&fps=60")
    assert "nvarguscamerasrc sensor-id=0" in pipeline and "width=1920, height=1080, framerate=60/1" in pipeline
    with pytest.raises(InvalidInputError):
        csi_pipeline("0?exposure=3")
    # the PyPI OpenCV wheels are built without GStreamer: a clear error naming what to install
    with pytest.raises(MissingDependencyError, match="GStreamer"), open_source("csi://0"):
        pass


def test_file_frames_carry_container_timestamps_and_prepares_audio(tmp_path: Path) -> None:
    signal = speech()[:32000]
    path = write_media(tmp_path / "s.mp4", [np.full((48, 64, 3), i * 6, np.uint8) for i in range(40)], audio=signal)
    frames, audio = _drain(path)
    assert [f.index for f in frames] == list(range(40))
    assert [f.t_s for f in frames] == _container_times(path)
    assert frames[0].image.shape == (48, 64, 3) and frames[0].image.dtype == np.uint8
    np.testing.assert_array_equal(audio, decode_audio(path))  # sample for sample what prepare decodes


def test_variable_frame_rate_timestamps(tmp_path: Path) -> None:
    pts = [0, 1, 2, 5, 6, 9, 10, 11, 12, 20, 21, 22]  # 1/30 s ticks with gaps
    path = write_media(
        tmp_path / "vfr.mp4",
        [np.full((48, 64, 3), 20 * i, np.uint8) for i in range(len(pts))],
        pts=pts,
        time_base=fractions.Fraction(1, 30),
    )
    frames, _ = _drain(path)
    assert [f.t_s for f in frames] == pytest.approx([p / 30 for p in pts], abs=1e-9)


def test_bad_files(tmp_path: Path) -> None:
    good = write_media(tmp_path / "ok.mp4", [np.zeros((48, 64, 3), np.uint8)] * 30, audio=speech()[:16000])
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(good.read_bytes()[: good.stat().st_size // 2])  # the index (moov) is at the end: gone
    with pytest.raises(CorruptMediaError, match="truncated"):
        _drain(cut)
    text = tmp_path / "notes.mp4"
    text.write_text("not a video at all\n" * 20)
    with pytest.raises(NotMediaError):
        _drain(text)
    wav = tmp_path / "sound.wav"
    with av.open(str(wav), "w") as container:
        stream = container.add_stream("pcm_s16le", rate=16000, layout="mono")
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 1600), np.int16), format="s16", layout="mono")
        frame.sample_rate = 16000
        for packet in [*stream.encode(frame), *stream.encode()]:
            container.mux(packet)
    with pytest.raises(InvalidInputError, match="no video stream"):
        _drain(wav)


def test_truncated_file_with_its_index_first_is_caught(tmp_path: Path) -> None:
    """A fast-start mp4 cut short opens fine; the missing frames are noticed against the declared count."""
    path = tmp_path / "fast.mp4"
    container = av.open(str(path), "w", options={"movflags": "faststart"})
    stream = container.add_stream("mpeg4", rate=25)
    stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
    for i in range(100):
        image = np.random.default_rng(i).integers(0, 255, (48, 64, 3), dtype=np.uint8)
        for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="bgr24")):
            container.mux(packet)
    for packet in stream.encode():
        container.mux(packet)
    container.close()
    cut = tmp_path / "fast_cut.mp4"
    cut.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(CorruptMediaError, match="truncated"):
        _drain(cut)


def test_folder_of_aligned_faces(tmp_path: Path) -> None:
    folder = tmp_path / "cropped_aligned" / "trial"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for number in (1, 2, 4):  # 00003.jpg is missing: no face on frame 2
        Image.fromarray(rng.integers(0, 255, (112, 112, 3), dtype=np.uint8)).save(folder / f"{number:05d}.jpg")
    with pytest.raises(InvalidInputError, match="--fps"):
        _drain(folder)
    frames, audio = _drain(folder, fps=25.0)
    assert [f.index for f in frames] == [0, 1, 2, 3] and [f.t_s for f in frames] == [0.0, 0.04, 0.08, 0.12]
    assert [f.face_found for f in frames] == [True, True, False, True] and audio.size == 0
    assert frames[2].face is None  # the pipeline uses the black crop there
    assert frames[3].face is not None and frames[3].face.shape == (112, 112, 3)  # the image as stored
    # resized by the pipeline exactly as prepare resizes it
    np.testing.assert_array_equal(resize_face(frames[3].face, 48), load_face_image(folder / "00004.jpg"))
    sound = write_media(tmp_path / "a.mp4", [np.zeros((48, 64, 3), np.uint8)] * 5, audio=speech()[:8000])
    frames, audio = _drain(folder, fps=25.0, audio=sound)
    np.testing.assert_array_equal(audio, decode_audio(sound))


def test_capture_source_reads_in_a_thread_and_ends_at_end_of_stream(tmp_path: Path) -> None:
    video = write_video(tmp_path / "cam.mp4", n_frames=15, audio_codec=None)
    source = CaptureSource(SourceKind.CAMERA, "0", uri="0", capture=cv2.VideoCapture(str(video)))
    with source:
        frames = [item for item in source if isinstance(item, VideoFrame)]
    # every frame of the file arrives or is counted as dropped (a loaded machine makes the consumer fall behind,
    # and then the oldest waiting frame goes); the ones that arrive keep their capture index, in order
    indices = [f.index for f in frames]
    assert len(frames) == 15 - source.dropped_frames and frames
    assert indices == sorted(set(indices)) and set(indices) <= set(range(15))
    assert source.dropped_frames > 0 or indices == list(range(15))
    assert all(b.t_s >= a.t_s for a, b in itertools.pairwise(frames)) and (indices[0] > 0 or frames[0].t_s == 0.0)


def test_live_reader_tells_a_time_out_from_the_end() -> None:
    gate = threading.Event()

    def silent(stopping: object) -> Iterator[VideoFrame]:
        yield VideoFrame(0, 0.0, np.zeros((2, 2, 3), np.uint8), time.perf_counter())
        gate.wait(5)  # a camera that stops delivering but stays open

    reader = LiveReader(silent, timeout_s=0.3, what="cam")
    reader.start()
    items = iter(reader)
    assert isinstance(next(items), VideoFrame)
    started = time.perf_counter()
    with pytest.raises(SourceTimeoutError, match="time-out"):
        next(items)
    assert 0.25 < time.perf_counter() - started < 3
    gate.set()
    reader.stop()

    def finite(stopping: object) -> Iterator[VideoFrame]:
        for i in range(3):
            yield VideoFrame(i, i / 30, np.zeros((2, 2, 3), np.uint8), time.perf_counter())

    reader = LiveReader(finite, timeout_s=5, what="cam")
    reader.start()
    assert [f.index for f in reader] == [0, 1, 2]  # the end is not a time-out


def test_live_reader_drops_old_frames_but_never_audio() -> None:
    def burst(stopping: object) -> Iterator[VideoFrame | AudioChunk]:
        for i in range(20):
            yield VideoFrame(i, i / 30, np.zeros((2, 2, 3), np.uint8), time.perf_counter())
            yield AudioChunk(np.full(10, i, np.float32))

    reader = LiveReader(burst, timeout_s=5, what="cam", max_queued_frames=4)
    reader.start()
    time.sleep(0.3)  # the consumer is late: the producer has finished meanwhile
    items = list(reader)
    frames = [i.index for i in items if isinstance(i, VideoFrame)]
    audio = [int(i.samples[0]) for i in items if isinstance(i, AudioChunk)]
    assert frames == list(range(16, 20)) and reader.dropped_frames == 16
    assert audio == list(range(20))


def test_network_stream_source_over_a_local_file(tmp_path: Path) -> None:
    """The rtsp:// path, exercised on a file (no RTSP server here): frames from 0 s and the aligned audio track."""
    signal = speech()[:16000]
    path = write_media(tmp_path / "net.mp4", [np.full((48, 64, 3), i, np.uint8) for i in range(25)], audio=signal)
    with NetworkStreamSource(str(path), timeout_s=5) as source:
        assert source.info.live and source.info.has_audio
        items = list(source)
    frames = [i for i in items if isinstance(i, VideoFrame)]
    audio = np.concatenate([i.samples for i in items if isinstance(i, AudioChunk)])
    assert len(frames) + source.dropped_frames == 25 and frames[0].t_s == 0.0
    assert abs(len(audio) - len(decode_audio(path))) <= 1600  # aligned to the first picture: within 0.1 s


def test_a_folder_numbered_far_beyond_its_images_is_refused(tmp_path: Path) -> None:
    """One stray high number would make millions of frames without a face (and as many rows): refused up front."""
    from edgeaff.runtime.io.face_folder import MAX_FOLDER_FRAMES

    folder = tmp_path / "faces"
    folder.mkdir()
    for number in (1, MAX_FOLDER_FRAMES + 1):
        Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(folder / f"{number:08d}.jpg")
    with pytest.raises(InvalidInputError, match="numbered up to"):
        _drain(folder, fps=25.0)
    (folder / f"{MAX_FOLDER_FRAMES + 1:08d}.jpg").rename(folder / f"{MAX_FOLDER_FRAMES:08d}.jpg")
    with open_source(folder, fps=25.0) as source:  # at the limit: accepted (not read to its end here)
        assert source.info.frame_count == MAX_FOLDER_FRAMES
