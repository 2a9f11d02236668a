"""One source through a pipeline: :class:`PipelineRun`, an iterator of :class:`Prediction` objects.

The run opens its source on entry (or on the first iteration), reads it to its end, and yields each prediction as
soon as it is final: in stream mode frame by frame, offline all at the end of the source (see
:class:`~edgeaff.runtime.pipeline.options.Mode`). Nothing is written anywhere. When it is over,
:meth:`PipelineRun.report` describes what ran on what, what came out and how long each stage took.

How a run ends (:attr:`PipelineRun.ended`): ``end_of_stream``; ``max_frames``; ``interrupted`` (Ctrl-C on a live
source, or :meth:`PipelineRun.stop`); ``timeout`` (a live source went silent: every prediction is yielded first,
then :class:`SourceTimeoutError` is raised).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from types import TracebackType
from typing import TYPE_CHECKING, Any

from edgeaff.runtime.errors import InvalidInputError
from edgeaff.runtime.faces import FaceResult
from edgeaff.runtime.io.prefetch import Prefetcher
from edgeaff.runtime.io.sources import (
    AudioChunk,
    LiveSource,
    Outages,
    Source,
    SourceGap,
    SourceInfo,
    SourceItem,
    SourceTimeoutError,
    VideoFrame,
)
from edgeaff.runtime.pipeline.options import Mode
from edgeaff.runtime.pipeline.prediction import Prediction
from edgeaff.runtime.pipeline.processor import FrameProcessor, Notes
from edgeaff.runtime.pipeline.timing import StageTimer

if TYPE_CHECKING:
    from edgeaff.runtime.pipeline.pipeline import Pipeline

MAX_FRAMES_LIMIT = 10**9


class PipelineRun:
    """A source on its way through a :class:`Pipeline`; iterate it for predictions. Made by :meth:`Pipeline.run`.

    A run is an iterator (one pass over the source). Use it in a ``with`` block to read :attr:`info` before the
    first prediction (result writers need it), or just iterate it: the source is opened on the first ``next()``
    and closed at the end.

    Attributes:
        timer: the run's stage timer (``read``, ``face``, ``visual``, ``vggish``, ``temporal``, ``ensemble``, ...).
        ended: how the run ended (see the module docstring); ``None`` while it runs.
        wall_s: seconds from opening the source to the last prediction.
    """

    def __init__(
        self,
        pipeline: Pipeline,
        source: Source,
        *,
        max_frames: int | None = None,
        timer: StageTimer | None = None,
        echo: Callable[[str], None] | None = None,
    ) -> None:
        if max_frames is not None and (isinstance(max_frames, bool) or not 1 <= max_frames <= MAX_FRAMES_LIMIT):
            raise InvalidInputError(f"--max-frames must be 1..{MAX_FRAMES_LIMIT}, got {max_frames}")
        self.pipeline = pipeline
        self.source = source
        self.max_frames = max_frames
        self.timer = timer if timer is not None else StageTimer()
        self.notes = Notes(echo)
        self.ended: str | None = None
        self.wall_s = 0.0
        self._processor: FrameProcessor | None = None
        self._started = 0.0
        self._entered = False
        self._closed = False
        self._stopped = False
        self._frames_read = 0
        self._generator: Iterator[Prediction] | None = None
        self._prefetcher: Prefetcher | None = None

    # -- what is known once the source is open -------------------------------------------------------------------

    @property
    def processor(self) -> FrameProcessor:
        """The run's per-source state (opens the source if needed)."""
        self.open()
        assert self._processor is not None
        return self._processor

    @property
    def info(self) -> SourceInfo:
        """What is known about the source (opens it if needed)."""
        return self.processor.info

    @property
    def dropped_frames(self) -> int:
        """Frames a live source dropped because the pipeline fell behind."""
        return int(self.source.dropped_frames)

    @property
    def outages(self) -> Outages | None:
        """What a reconnecting live source lost (``None`` for other sources)."""
        return self.source.outages if isinstance(self.source, LiveSource) else None

    @property
    def mode(self) -> Mode:
        """Offline or stream, as chosen for this source."""
        return self.processor.mode

    @property
    def dimensions(self) -> tuple[str, ...]:
        """The dimensions predicted (``valence``, ``arousal`` or both), in that order."""
        return self.processor.dimensions

    @property
    def model_names(self) -> tuple[str, ...]:
        """Column names of the per-model predictions, in manifest order."""
        return self.processor.model_names

    # -- lifecycle -----------------------------------------------------------------------------------------------

    def open(self) -> None:
        """Open the source and prepare the pipeline for it (idempotent)."""
        if self._processor is not None:
            return
        if self._closed:
            raise RuntimeError("this run is over; start another with Pipeline.run()")
        self._started = time.perf_counter()
        self.source.__enter__()
        self._entered = True
        try:
            info = self.source.info
            mode = self.pipeline.mode_for(info)
            self._processor = self.pipeline.processor(
                info, mode=mode, by_index=not info.live, timer=self.timer, notes=self.notes
            )
        except BaseException:
            self.close()
            raise
        if not info.has_audio:
            self.notes.note(f"{info.uri}: no audio ({info.audio_note}); {self._processor.fallback_text()}")

    def __enter__(self) -> PipelineRun:
        self.open()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close the source and free what the run held (idempotent)."""
        if self._closed:
            return
        self._closed = True
        if self._prefetcher is not None:
            self._prefetcher.close()
        if self._processor is not None:
            self._processor.close()
        if self._entered:
            self._entered = False
            self.source.__exit__(None, None, None)

    # -- predictions ---------------------------------------------------------------------------------------------

    def __iter__(self) -> PipelineRun:
        return self

    def __next__(self) -> Prediction:
        if self._generator is None:
            self.open()
            self._generator = self._generate()
        return next(self._generator)

    def _generate(self) -> Iterator[Prediction]:
        try:
            yield from self._predictions()
        finally:
            self.close()

    def _record_read(self, item: object, milliseconds: float) -> None:
        if isinstance(item, AudioChunk):
            self.timer.add("audio_read", milliseconds, frames=0)
        elif isinstance(item, VideoFrame):
            self.timer.add("read", milliseconds)

    def _items(self, processor: FrameProcessor) -> Iterator[tuple[SourceItem, FaceResult | None, bool]]:
        """The source's items in order, each with its prepared face result and whether more frames are waiting.

        With prefetching, a background thread reads the source and runs the face stage ahead
        (:class:`~edgeaff.runtime.io.prefetch.Prefetcher`); otherwise both happen here, item by item. A file's or
        folder's next frames always count as waiting (they are there to be read, so stream mode batches them the
        same way on every run); a live source's, or a paced file's, only when they have arrived.
        """
        live = processor.info.arrives_in_time
        if not self.pipeline.options.prefetch_enabled:
            iterator = iter(self.source)
            while True:
                start = time.perf_counter()
                item = next(iterator, None)
                if item is None:
                    return
                self._record_read(item, (time.perf_counter() - start) * 1000.0)
                yield item, None, not live
        ahead = 4 if live else processor.features.visual_batch + 8
        self._prefetcher = Prefetcher(
            _first_frames(iter(self.source), self.max_frames), ahead=ahead, prepare=processor.prepare,
            on_read=self._record_read,
        )  # fmt: skip
        for item, prepared in self._prefetcher:
            yield item, prepared, not live or self._prefetcher.waiting > 0

    def _predictions(self) -> Iterator[Prediction]:
        processor = self.processor
        timeout: SourceTimeoutError | None = None
        items = self._items(processor)
        prefetched = self.pipeline.options.prefetch_enabled
        try:
            while not self._stopped:
                entry = next(items, None)
                if entry is None:
                    self.ended = "end_of_stream"
                    break
                item, prepared, more = entry
                if isinstance(item, AudioChunk):
                    processor.add_audio(item.samples)
                    if item.final:
                        processor.end_audio()
                    continue
                if isinstance(item, SourceGap):
                    processor.add_gap(item, prepared=prefetched)
                    continue
                if not isinstance(item, VideoFrame):
                    continue
                processor.add_frame(item, prepared, more=more)
                self._frames_read += 1
                yield from self._ready(processor)
                if self.max_frames is not None and self._frames_read >= self.max_frames:
                    self.ended = "max_frames"
                    break
        except SourceTimeoutError as exc:
            self.ended, timeout = "timeout", exc
        except KeyboardInterrupt:
            if not self.source.info.live:
                raise
            self.notes.note("stopped by the user (Ctrl-C); the frames read so far are finished")
            self.ended = "interrupted"
        if self._stopped:
            return
        yield from processor.finish()
        self.wall_s = time.perf_counter() - self._started
        if timeout is not None:
            raise SourceTimeoutError(f"{timeout}; the {processor.frames} frames received were processed")

    @staticmethod
    def _ready(processor: FrameProcessor) -> Iterator[Prediction]:
        # One at a time, so that predictions not yet handed out stay in the processor (see stop()).
        while True:
            ready = processor.take_one()
            if ready is None:
                return
            yield ready

    def stop(self) -> list[Prediction]:
        """End the run early (e.g. on Ctrl-C in the consumer): the frames read so far are finished and returned.

        Iteration ends after this; call it between two predictions, not from another thread.
        """
        if self._stopped or self.ended is not None:
            return []
        self._stopped = True
        self.ended = "interrupted"
        rest = list(self.processor.finish())
        self.wall_s = time.perf_counter() - self._started
        return rest

    def report(self) -> dict[str, Any]:
        """The run's summary document (JSON-ready): source, counts, graphs, timing, buffers, warnings, versions."""
        from edgeaff.runtime.pipeline.report import build_report

        return build_report(self)


def _first_frames(items: Iterator[SourceItem], limit: int | None) -> Iterator[SourceItem]:
    """``items`` up to and including frame number ``limit`` (all of them for ``None``)."""
    frames = 0
    try:
        for item in items:
            yield item
            if isinstance(item, VideoFrame):
                frames += 1
                if limit is not None and frames >= limit:
                    return
    finally:
        close = getattr(items, "close", None)
        if close is not None:
            close()
