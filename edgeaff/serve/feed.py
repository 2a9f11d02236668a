"""The live side of the server: one :class:`~edgeaff.runtime.Pipeline` over the source, in a background thread.

:class:`LiveFeed` opens the source with :func:`~edgeaff.runtime.open_source` (cameras, ``csi://``, ``rtsp://``,
``http(s)://``, files, folders of faces), runs it in stream mode and hands every prediction to the server
(:meth:`LiveFeed.start`'s ``on_prediction``), for as long as the source lasts. A file is played in real time
(:class:`RealTimePlayback`: each frame is handed over at its own time, never earlier) and, with ``loop``, again
from its start whenever it ends: each pass is a new run of the same pipeline (the graph sessions stay open), so
every pass gives exactly the predictions of the first. Live sources reconnect with their policy. When the source
ends, stalls or fails, the thread records what happened (:class:`~edgeaff.serve.status.FeedStatus`) and the
server goes on serving.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator
from types import TracebackType
from typing import Any

from edgeaff.runtime import (
    AudioChunk,
    EdgeaffError,
    Pipeline,
    Prediction,
    Source,
    SourceGap,
    SourceInfo,
    SourceTimeoutError,
    VideoFrame,
)
from edgeaff.serve.settings import SourceSpec
from edgeaff.serve.status import FeedStatus, SourceState

log = logging.getLogger("edgeaff.serve")

SourceItem = VideoFrame | AudioChunk | SourceGap

MIN_PASS_S = 0.2
"""Shortest time one pass over a looping file may take (a one-frame file does not spin)."""


class RealTimePlayback:
    """A source as the server reads it: files and folders played at their own pace, live sources as they are.

    For a file or folder, frame ``i`` is handed over ``t_i - t_0`` seconds after the first one, never earlier
    (later when the pipeline is slower than real time: nothing is skipped), and its ``arrival`` becomes that moment,
    so latencies count from there as for a camera. Audio chunks pass through as the source yields them (ahead of
    the frames that need them). Setting ``stop`` ends the iteration at the next wait. Live sources (cameras,
    streams) already deliver in real time and pass through unchanged.
    """

    def __init__(self, inner: Source, stop: threading.Event) -> None:
        self.inner = inner
        self.stop = stop
        self.info = _paced(inner.info)

    @property
    def dropped_frames(self) -> int:
        """Frames the inner source dropped because the pipeline fell behind (files: none)."""
        return int(self.inner.dropped_frames)

    @property
    def outages(self) -> Any:
        """The inner live source's reconnections (``None`` for files)."""
        return getattr(self.inner, "outages", None)

    def __enter__(self) -> RealTimePlayback:
        self.inner.__enter__()
        self.info = _paced(self.inner.info)
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.inner.__exit__(exc_type, exc, tb)

    def __iter__(self) -> Iterator[SourceItem]:
        if self.info.live:
            yield from self.inner
            return
        started: float | None = None
        first_t = 0.0
        for item in self.inner:
            if isinstance(item, VideoFrame):
                if started is None:
                    started, first_t = time.monotonic(), item.t_s
                delay = started + (item.t_s - first_t) - time.monotonic()
                if (delay > 0 and self.stop.wait(delay)) or self.stop.is_set():
                    return
                yield dataclasses.replace(item, arrival=time.perf_counter())
            else:
                yield item


def _paced(info: SourceInfo) -> SourceInfo:
    """A file's information as this playback hands it over: at its own pace."""
    return info if info.live else dataclasses.replace(info, paced=True)


def redact_uri(uri: str) -> str:
    """A source URI without the password a network URL may carry (``rtsp://user:***@host/...``)."""
    parts = urllib.parse.urlsplit(uri)
    if not parts.password:
        return uri
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urllib.parse.urlunsplit(parts._replace(netloc=f"{parts.username}:***@{host}"))


@dataclasses.dataclass(frozen=True)
class Latest:
    """The most recent prediction and its message, for ``/latest`` and the preview."""

    seq: int
    message: str
    prediction: Prediction


class LiveFeed:
    """Runs ``pipeline`` over the source in a thread (see the module docstring).

    Args:
        pipeline: an open pipeline (stream mode).
        spec: the source and how to play it.
        status: where counts and the source's state go.
        on_prediction: called in the feed thread with each prediction, its sequence number (from 0, across
            passes) and its pass (0, 1, ... for a looping file).
    """

    def __init__(
        self,
        pipeline: Pipeline,
        spec: SourceSpec,
        *,
        status: FeedStatus,
        on_prediction: Callable[[Prediction, int, int], None],
    ) -> None:
        self.pipeline = pipeline
        self.spec = spec
        self.status = status
        self.on_prediction = on_prediction
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._main, name="edgeaff-serve-feed", daemon=True)
        self._seq = 0
        self._dropped_before = 0
        self._reconnects_before: dict[str, Any] = {}

    def start(self) -> None:
        """Start reading the source."""
        self._thread.start()

    def stop(self, timeout_s: float) -> bool:
        """Ask the feed to stop and wait up to ``timeout_s``; ``True`` when the thread has ended.

        A live source blocked waiting for a frame ends at its next frame or its time-out.
        """
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout_s)
        return not self._thread.is_alive()

    @property
    def running(self) -> bool:
        """Whether the feed thread is alive."""
        return self._thread.is_alive()

    def _main(self) -> None:
        state, ended, detail = SourceState.STOPPED, None, ""
        try:
            state, ended = self._passes()
        except SourceTimeoutError as exc:
            state, detail = SourceState.TIMEOUT, str(exc)
        except EdgeaffError as exc:
            state, detail = SourceState.FAILED, str(exc)
        except Exception as exc:  # a bug: logged with its traceback; the server keeps serving
            log.exception("the live source failed")
            state, detail = SourceState.FAILED, f"{type(exc).__name__}: {exc}"
        if self._stop.is_set():
            state = SourceState.STOPPED
        self.status.finished(state, ended=ended, detail=detail)

    def _passes(self) -> tuple[SourceState, str | None]:
        spec = self.spec
        loop = 0
        while True:
            began = time.monotonic()
            source = spec.open()
            ended, live = self._run(source, loop)
            if self._stop.is_set():
                return SourceState.STOPPED, ended
            if live or not spec.loop or ended != "end_of_stream":
                return SourceState.ENDED, ended
            loop += 1
            self.status.looped()
            if self._stop.wait(max(0.0, MIN_PASS_S - (time.monotonic() - began))):
                return SourceState.STOPPED, ended

    def _run(self, source: Source, loop: int) -> tuple[str | None, bool]:
        """One pass over ``source``: how it ended and whether it was live."""
        playback = RealTimePlayback(source, self._stop)
        run = self.pipeline.run(playback)
        with run:
            info = run.info
            self.status.source_opened(
                {
                    "uri": redact_uri(self.spec.uri),
                    "kind": info.kind.value,
                    "name": info.name,
                    "live": info.live,
                    "loop": self.spec.loop and not info.live,
                    "fps": info.fps,
                    "width": info.width,
                    "height": info.height,
                    "audio": info.has_audio,
                    "audio_note": info.audio_note,
                    "mode": run.mode.value,
                    "dimensions": list(run.dimensions),
                }
            )
            try:
                for prediction in run:
                    self.status.record(prediction)
                    self.on_prediction(prediction, self._seq, loop)
                    self._seq += 1
                    if self._stop.is_set():
                        run.stop()
                        break
                    self._count_live(run)
            finally:
                self._count_live(run, final=True)
        return run.ended, info.live

    def _count_live(self, run: Any, *, final: bool = False) -> None:
        outages = run.outages
        current = None if outages is None else dataclasses.asdict(outages)
        totals = dict(self._reconnects_before)
        if current is not None:
            for key, value in current.items():
                totals[key] = totals.get(key, 0) + value
        self.status.live_counts(
            dropped_frames=self._dropped_before + run.dropped_frames, outages=totals if totals else None
        )
        if final:
            self._dropped_before += run.dropped_frames
            if current is not None:
                self._reconnects_before = totals
