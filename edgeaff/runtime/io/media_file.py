"""Media sources through PyAV: files (video with its audio track) and network streams (``rtsp://``).

A file is opened twice: one container decodes the video, a second one decodes the audio exactly as
:func:`edgeaff.runtime.io.audio_track.decode_audio` does (best audio stream, libswresample to mono s16 at 16 kHz, then
``/ 32768``), so the runtime sees the samples ``edgeaff prepare`` saw. Audio is delivered in chunks just ahead of the
frames that need it (:data:`AUDIO_LEAD_S`), so memory stays bounded however the file interleaves its streams.

A network stream is one container read in a background thread (:class:`~edgeaff.runtime.io.live_reader.LiveReader`):
frames and audio in arrival order, with a read time-out.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np

from edgeaff.runtime.errors import EdgeaffError, InvalidInputError
from edgeaff.runtime.io.audio_track import INT16_SCALE
from edgeaff.runtime.io.live_reader import LiveReader
from edgeaff.runtime.io.media import CorruptMediaError, import_av, open_media, opencv_fps
from edgeaff.runtime.io.sources import AudioChunk, SourceInfo, SourceKind, VideoFrame, safe_name

# Audio delivered ahead of each frame: the VGGish example of a frame ends 0.975 s after it.
AUDIO_LEAD_S = 1.25
# Frames a file may come up short of its recorded frame count before it counts as truncated.
FRAME_COUNT_SLACK = 2


def _samples(frame: Any) -> np.ndarray:
    pcm = np.asarray(frame.to_ndarray(), dtype=np.int16).reshape(-1)
    return (pcm.astype(np.float32) / np.float32(INT16_SCALE)).astype(np.float32, copy=False)


def _reason(exc: BaseException) -> str:
    return str(getattr(exc, "strerror", None) or exc)


class AudioTrackReader:
    """Decode a file's audio track to mono float32 chunks, sample-identical to ``decode_audio``."""

    def __init__(self, path: Path, *, sample_rate: int) -> None:
        self.path = path
        self.sample_rate = sample_rate

    def chunks(self) -> Iterator[np.ndarray]:
        """Chunks of samples in order (one per decoded audio frame).

        Raises:
            CorruptMediaError: the audio fails to decode (damaged or truncated).
        """
        av = import_av()
        done = 0
        with open_media(self.path) as container:
            stream = container.streams.best("audio")
            resampler = av.AudioResampler(format="s16", layout="mono", rate=self.sample_rate)
            try:
                for frame in container.decode(stream):
                    for out in resampler.resample(frame):
                        chunk = _samples(out)
                        done += len(chunk)
                        yield chunk
                for out in resampler.resample(None):
                    yield _samples(out)
            except av.error.FFmpegError as exc:
                raise CorruptMediaError(
                    f"{self.path}: audio decoding failed after {done / self.sample_rate:.2f} s ({_reason(exc)}); the "
                    "file is damaged or truncated: re-download it or re-encode it"
                ) from None


class MediaFileSource:
    """A video file decoded with PyAV (see the module docstring). Use through :func:`sources.open_source`."""

    def __init__(self, path: str | Path, *, uri: str, sample_rate: int = 16000) -> None:
        self.path = Path(path)
        self.sample_rate = sample_rate
        self.dropped_frames = 0
        self._uri = uri
        self._media: Any = None
        self._container: Any = None
        self._stream: Any = None
        self.info = SourceInfo(SourceKind.FILE, uri, safe_name(self.path.stem), False, False, None, None, None)

    def __enter__(self) -> MediaFileSource:
        self._media = open_media(self.path)
        self._container = self._media.__enter__()
        try:
            if not self._container.streams.video:
                raise InvalidInputError(f"{self.path}: has no video stream; edgeaff infer needs a video")
            self._stream = self._container.streams.video[0]
            fps = opencv_fps(self._stream)
            has_audio = bool(self._container.streams.audio)
            context = self._stream.codec_context
            self.info = SourceInfo(
                kind=SourceKind.FILE,
                uri=self._uri,
                name=safe_name(self.path.stem),
                live=False,
                has_audio=has_audio,
                audio_note=None if has_audio else "the file has no audio track",
                fps=fps if fps > 0 else None,
                frame_count=int(self._stream.frames) or None,
                width=int(context.width) or None,
                height=int(context.height) or None,
            )
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._media is not None:
            media, self._media = self._media, None
            media.__exit__(exc_type, exc, tb)

    def __iter__(self) -> Iterator[VideoFrame | AudioChunk]:
        if self._container is None:
            raise RuntimeError("MediaFileSource: use it in a 'with' block before iterating")
        av = import_av()
        audio = AudioTrackReader(self.path, sample_rate=self.sample_rate).chunks() if self.info.has_audio else None
        delivered = 0  # audio samples handed out
        decoded = 0
        first: float | None = None
        previous = 0.0
        step = 1.0 / self.info.fps if self.info.fps else 1.0 / 30.0
        try:
            for frame in self._container.decode(self._stream):
                t_s = float(frame.time) if frame.time is not None else (previous + step if decoded else 0.0)
                first = t_s if first is None else first
                while audio is not None and delivered < (t_s - first + AUDIO_LEAD_S) * self.sample_rate:
                    chunk = next(audio, None)
                    if chunk is None:
                        audio = None
                        yield AudioChunk(np.zeros(0, np.float32), final=True)
                        break
                    delivered += len(chunk)
                    yield AudioChunk(chunk)
                image = frame.to_ndarray(format="bgr24")
                yield VideoFrame(decoded, t_s, image, time.perf_counter())
                decoded += 1
                previous = t_s
        except av.error.FFmpegError as exc:
            raise CorruptMediaError(
                f"{self.path}: video decoding failed after {decoded} frames ({_reason(exc)}); the file is damaged or "
                "truncated: re-download it or re-encode it"
            ) from None
        self._check_complete(decoded)
        if audio is not None:
            for chunk in audio:
                yield AudioChunk(chunk)
            yield AudioChunk(np.zeros(0, np.float32), final=True)

    def _check_complete(self, decoded: int) -> None:
        if decoded == 0:
            raise CorruptMediaError(f"{self.path}: no video frame could be decoded; the file is damaged or empty")
        expected = self.info.frame_count
        if expected is not None and decoded < expected - FRAME_COUNT_SLACK:
            raise CorruptMediaError(
                f"{self.path}: only {decoded} of the {expected} frames the file declares could be decoded; it is "
                "truncated or damaged: re-download it or re-encode it"
            )


def _to_float(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


class NetworkStreamSource:
    """A network stream (``rtsp://``, or anything else FFmpeg opens) read live with PyAV in a background thread.

    Frame times are the stream's presentation times from the first frame. Audio, if the stream has it, is aligned
    to the first video frame by its own timestamps (leading audio is dropped, a late audio start is padded with
    silence).
    """

    def __init__(self, url: str, *, timeout_s: float = 10.0, sample_rate: int = 16000) -> None:
        self.url = url
        self.timeout_s = timeout_s
        self.sample_rate = sample_rate
        self._container: Any = None
        self._reader: LiveReader | None = None
        name = safe_name(url.split("://", 1)[-1])
        self.info = SourceInfo(SourceKind.RTSP, url, name, True, False, None, None, None)

    @property
    def dropped_frames(self) -> int:
        """Frames dropped because the pipeline fell behind."""
        return 0 if self._reader is None else self._reader.dropped_frames

    def __enter__(self) -> NetworkStreamSource:
        av = import_av()
        options = {"rtsp_transport": "tcp"} if self.url.lower().startswith("rtsp") else {}
        try:
            # FFmpeg's own read time-out is longer than the reader's, so a silent stream is reported as a time-out
            self._container = av.open(
                self.url, mode="r", options=options, timeout=(self.timeout_s, 2 * self.timeout_s + 1)
            )
        except av.error.FFmpegError as exc:
            raise EdgeaffError(
                f"cannot open the stream {self.url} ({_reason(exc)}); check the URL and the network"
            ) from None
        if not self._container.streams.video:
            self._container.close()
            raise InvalidInputError(f"{self.url}: the stream has no video")
        video = self._container.streams.video[0]
        has_audio = bool(self._container.streams.audio)
        fps = opencv_fps(video)
        self.info = SourceInfo(
            kind=SourceKind.RTSP,
            uri=self.url,
            name=self.info.name,
            live=True,
            has_audio=has_audio,
            audio_note=None if has_audio else "the stream has no audio track",
            fps=fps if fps > 0 else None,
            frame_count=None,
            width=int(video.codec_context.width) or None,
            height=int(video.codec_context.height) or None,
        )
        self._reader = LiveReader(self._produce, timeout_s=self.timeout_s, what=self.url)
        self._reader.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        # The reader thread owns the open container and closes it when it stops (closing it here, under a read
        # in progress, would not be safe).
        if self._reader is not None:
            self._reader.stop()

    def __iter__(self) -> Iterator[VideoFrame | AudioChunk]:
        if self._reader is None:
            raise RuntimeError("NetworkStreamSource: use it in a 'with' block before iterating")
        return iter(self._reader)

    def _produce(self, stopping: Callable[[], bool]) -> Iterator[VideoFrame | AudioChunk]:
        av = import_av()
        streams: dict[str, int] = {"video": 0}
        if self.info.has_audio:
            streams["audio"] = 0
        resampler = av.AudioResampler(format="s16", layout="mono", rate=self.sample_rate)
        first_video: float | None = None
        aligned = False  # the first delivered audio sample has been placed on the video timeline
        index = 0
        container = self._container
        try:
            for frame in container.decode(**streams):
                if stopping():
                    return
                t_s = _to_float(frame.time)
                if isinstance(frame, av.VideoFrame):
                    if first_video is None:
                        first_video = t_s if t_s is not None else 0.0
                    stamp = (t_s - first_video) if t_s is not None else index / (self.info.fps or 30.0)
                    yield VideoFrame(index, stamp, frame.to_ndarray(format="bgr24"), time.perf_counter())
                    index += 1
                    continue
                if first_video is None:
                    continue  # audio before the first picture: nothing to align it with yet
                for out in resampler.resample(frame):
                    samples = _samples(out)
                    if not aligned:
                        start = t_s if t_s is not None else first_video
                        gap = round((start - first_video) * self.sample_rate)
                        if gap > 0:
                            yield AudioChunk(np.zeros(gap, dtype=np.float32))
                        elif gap < 0:
                            samples = samples[-gap:]
                        aligned = True
                    if samples.size:
                        yield AudioChunk(samples)
        except av.error.FFmpegError as exc:
            if stopping():
                return
            raise EdgeaffError(f"{self.url}: the stream failed after {index} frames ({_reason(exc)})") from None
        finally:
            self._container = None
            container.close()
