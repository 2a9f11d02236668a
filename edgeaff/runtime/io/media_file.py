"""A media file as a source, decoded with PyAV: its video frames, and its audio track.

The file is opened twice: one container decodes the video, a second one decodes the audio exactly as
:func:`edgeaff.runtime.io.audio_track.decode_audio` does (best audio stream, libswresample to mono s16 at 16 kHz, then
``/ 32768``), so the runtime sees the samples ``edgeaff prepare`` saw. Audio is delivered in chunks just ahead of the
frames that need it (:data:`AUDIO_LEAD_S`), so memory stays bounded however the file interleaves its streams.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np

from edgeaff.runtime.errors import InvalidInputError
from edgeaff.runtime.io.audio_track import AUDIO_LEAD_S, AudioTrackReader
from edgeaff.runtime.io.media import CorruptMediaError, ffmpeg_reason, import_av, open_media, opencv_fps
from edgeaff.runtime.io.sources import AudioChunk, SourceInfo, SourceKind, VideoFrame, safe_name

# Frames a file may come up short of its recorded frame count before it counts as truncated.
FRAME_COUNT_SLACK = 2


class MediaFileSource:
    """A video file decoded with PyAV (see the module docstring). Use through :func:`.open.open_source`."""

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
                f"{self.path}: video decoding failed after {decoded} frames ({ffmpeg_reason(exc)}); the file is "
                "damaged or truncated: re-download it or re-encode it"
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
