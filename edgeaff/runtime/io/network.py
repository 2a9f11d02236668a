"""A network stream (``rtsp://``, ``http(s)://`` and anything else FFmpeg opens) as a live source.

One container is read in a background thread (:class:`~edgeaff.runtime.io.live_reader.LiveReader`): frames and
audio in arrival order, with a read time-out.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from types import TracebackType
from typing import Any

import numpy as np

from edgeaff.runtime.errors import EdgeaffError, InvalidInputError
from edgeaff.runtime.io.audio_track import MonoResampler
from edgeaff.runtime.io.live_reader import LiveReader
from edgeaff.runtime.io.media import ffmpeg_reason, import_av, opencv_fps
from edgeaff.runtime.io.sources import AudioChunk, SourceInfo, SourceKind, VideoFrame, safe_name


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
        kind = SourceKind.RTSP if url.lower().startswith("rtsp") else SourceKind.HTTP
        self.info = SourceInfo(kind, url, name, True, False, None, None, None)

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
                f"cannot open the stream {self.url} ({ffmpeg_reason(exc)}); check the URL and the network"
            ) from None
        if not self._container.streams.video:
            self._container.close()
            raise InvalidInputError(f"{self.url}: the stream has no video")
        video = self._container.streams.video[0]
        has_audio = bool(self._container.streams.audio)
        fps = opencv_fps(video)
        self.info = SourceInfo(
            kind=self.info.kind,
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
        resampler = MonoResampler(self.sample_rate)
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
                samples = resampler.resample(frame)
                if samples.size:
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
            raise EdgeaffError(f"{self.url}: the stream failed after {index} frames ({ffmpeg_reason(exc)})") from None
        finally:
            self._container = None
            container.close()
