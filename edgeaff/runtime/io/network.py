"""A network stream (``rtsp://``, ``http(s)://`` and anything else FFmpeg opens) as a live source.

One container at a time is read in a background thread (:class:`~edgeaff.runtime.io.live_reader.LiveReader`):
frames and audio in arrival order, with a read time-out. With a :class:`ReconnectPolicy` a dropped stream (a read
error, no packet for ``timeout_s``, or the end of a stream that has no duration, i.e. a live one) is closed and
reopened with backoff, and the sessions are joined on one timeline (:mod:`edgeaff.runtime.io.reconnect`). A stream
with a known duration (a file served over HTTP) ends at its end, as a file does.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from edgeaff.runtime.errors import EdgeaffError, InvalidInputError
from edgeaff.runtime.io.audio_track import MonoResampler
from edgeaff.runtime.io.media import ffmpeg_reason, import_av, opencv_fps
from edgeaff.runtime.io.reconnect import ReconnectingSource, ReopenFailedError, Session, StreamLostError
from edgeaff.runtime.io.sources import (
    AudioChunk,
    GapReason,
    ReconnectPolicy,
    SourceInfo,
    SourceKind,
    VideoFrame,
    safe_name,
)


def _to_float(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


class NetworkStreamSource(ReconnectingSource):
    """A network stream (``rtsp://``, or anything else FFmpeg opens) read live with PyAV in a background thread.

    Frame times are the stream's presentation times from the first frame (a frame without a timestamp is placed at
    the nominal rate). Audio, if the stream has it, is aligned to the first video frame by its own timestamps
    (leading audio is dropped, a late audio start is padded with silence); after a reconnection the same rule
    applies to the new session's first frame, on the joined timeline.

    Args:
        url: what FFmpeg opens.
        timeout_s: longest wait for a packet; with ``reconnect`` the stream then counts as dropped.
        sample_rate: audio samples per second delivered.
        reconnect: reopen a dropped stream with this policy (``None``: the first drop ends the source).
    """

    def __init__(
        self,
        url: str,
        *,
        timeout_s: float = 10.0,
        sample_rate: int = 16000,
        reconnect: ReconnectPolicy | None = None,
    ) -> None:
        self.url = url
        self.timeout_s = timeout_s
        self.sample_rate = sample_rate
        self.reconnect = reconnect
        self._container: Any = None
        name = safe_name(url.split("://", 1)[-1])
        kind = SourceKind.RTSP if url.lower().startswith("rtsp") else SourceKind.HTTP
        self.info = SourceInfo(kind, url, name, True, False, None, None, None)

    def _open(self) -> Any:
        av = import_av()
        options = {"rtsp_transport": "tcp"} if self.url.lower().startswith("rtsp") else {}
        # Without reconnection FFmpeg's own read time-out is longer than the reader's, so a silent stream is
        # reported as a time-out; with it, FFmpeg's time-out is the drop detector.
        read_timeout = self.timeout_s if self.reconnect is not None else 2 * self.timeout_s + 1
        return av.open(self.url, mode="r", options=options, timeout=(self.timeout_s, read_timeout))

    def __enter__(self) -> NetworkStreamSource:
        av = import_av()
        try:
            self._container = self._open()
        except av.error.FFmpegError as exc:
            raise EdgeaffError(
                f"cannot open the stream {self.url} ({ffmpeg_reason(exc)}); check the URL and the network"
            ) from None
        if not self._container.streams.video:
            self._close_container()
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
        self._start(sample_rate=self.sample_rate)
        return self

    def _close_container(self) -> None:
        container, self._container = self._container, None
        if container is not None:
            container.close()

    def _first_session(self, stopping: Callable[[], bool]) -> Session:
        return self._session(self._container, stopping)

    def _release(self) -> None:
        self._close_container()

    def _reopen(self, stopping: Callable[[], bool]) -> Session:
        av = import_av()
        try:
            self._container = self._open()
        except av.error.FFmpegError as exc:
            raise ReopenFailedError(f"cannot reopen it: {ffmpeg_reason(exc)}") from None
        if not self._container.streams.video:
            self._close_container()
            raise ReopenFailedError("it reopened without video")
        return self._session(self._container, stopping)

    def _session(self, container: Any, stopping: Callable[[], bool]) -> Session:
        """One connection's frames and audio, on its own clock (first frame at 0 s, index 0)."""
        av = import_av()
        streams: dict[str, int] = {"video": 0}
        if self.info.has_audio and container.streams.audio:
            streams["audio"] = 0
        step = 1.0 / (self.info.fps or 30.0)
        resampler = MonoResampler(self.sample_rate)
        origin: float | None = None  # stream time of the session's 0 s
        seen_video = False
        aligned = False  # the first delivered audio sample has been placed on the video timeline
        index = 0
        endless = not container.duration  # a live stream: its end is a drop, not the end of the source
        try:
            if self.info.has_audio and "audio" not in streams:
                yield AudioChunk(np.zeros(0, np.float32), final=True)  # this connection came back without sound
            for frame in container.decode(**streams):
                if stopping():
                    return
                t_s = _to_float(frame.time)
                if isinstance(frame, av.VideoFrame):
                    if origin is None and t_s is not None:
                        origin = t_s - index * step
                    stamp = t_s - origin if t_s is not None and origin is not None else index * step
                    yield VideoFrame(index, stamp, frame.to_ndarray(format="bgr24"), time.perf_counter())
                    seen_video = True
                    index += 1
                    continue
                if not seen_video:
                    continue  # audio before the first picture: nothing to align it with yet
                samples = resampler.resample(frame)
                if samples.size:
                    if not aligned:
                        late = 0  # samples between the first picture and the first sound (negative: sound first)
                        if t_s is not None and origin is not None:
                            late = round((t_s - origin) * self.sample_rate)
                        if late > 0:
                            yield AudioChunk(np.zeros(late, dtype=np.float32))
                        elif late < 0:
                            samples = samples[-late:]
                        aligned = True
                    if samples.size:
                        yield AudioChunk(samples)
        except av.error.FFmpegError as exc:
            if stopping():
                return
            if self.reconnect is None:
                raise EdgeaffError(
                    f"{self.url}: the stream failed after {index} frames ({ffmpeg_reason(exc)})"
                ) from None
            reason = GapReason.STALLED if isinstance(exc, av.error.ExitError) else GapReason.FAILED
            detail = f"no data for {self.timeout_s:g} s" if reason is GapReason.STALLED else ffmpeg_reason(exc)
            raise StreamLostError(reason, detail) from None
        finally:
            if self._container is container:
                self._container = None
            container.close()
        if self.reconnect is not None and endless and not stopping():
            raise StreamLostError(GapReason.ENDED, "the server closed the stream")  # a live stream has no end
