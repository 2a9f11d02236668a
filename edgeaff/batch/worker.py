"""One batch worker: a :class:`~edgeaff.runtime.Pipeline` opened once and every video it is given, in turn.

The graph sessions (and the face detector, after the first video) stay open from one video to the next, so a batch
pays the pipeline's start-up once per worker instead of once per video. Each video's results are written by
:func:`~edgeaff.runtime.write_results`, exactly as ``edgeaff infer`` writes them for the file alone, plus the batch
stamp in its summary. A video that fails becomes a :class:`VideoResult` with its one-line error; the worker goes on
with the next.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from types import TracebackType
from typing import Any

from edgeaff.batch.discover import BatchItem
from edgeaff.batch.settings import BatchSettings, StampSink, forget, stamp, video_stamp
from edgeaff.runtime import EdgeaffError, Pipeline, StageTimer, write_results
from edgeaff.runtime.choices import Choice

FRAMES_EVERY_S = 0.5
"""Shortest interval between two frame counts a worker reports for the progress display."""

FrameReport = Callable[[str, int, int | None], None]
"""``(video key, frames read so far, frames the container declares or None)``."""


class VideoStatus(Choice):
    """What became of a video in a batch (the index's ``status`` column).

    ``done``: its results are complete (this run, or an earlier one: see ``reused``); ``failed``: it could not be
    processed (``error`` says why); ``interrupted``: it was running when the batch was stopped; ``pending``: the batch
    stopped before it started.
    """

    DONE = "done"
    FAILED = "failed"
    INTERRUPTED = "interrupted"
    PENDING = "pending"


@dataclasses.dataclass(frozen=True)
class VideoResult:
    """One row of the batch index.

    Attributes:
        key: the video's path relative to the batch root.
        status: a :class:`VideoStatus`.
        frames: frames processed.
        frames_with_face: frames where a face was found.
        duration_s: the video's duration as processed (first to last frame, plus one frame).
        fps: its frame rate.
        wall_s: seconds the run took.
        reused: the results were complete from an earlier run and were kept.
        error: why it failed (one line).
        fatal: the worker itself could not start (bundle, backend); the batch stops.
    """

    key: str
    status: VideoStatus
    frames: int | None = None
    frames_with_face: int | None = None
    duration_s: float | None = None
    fps: float | None = None
    wall_s: float | None = None
    reused: bool = False
    error: str | None = None
    fatal: bool = False

    @classmethod
    def from_summary(cls, key: str, summary: dict[str, Any], *, reused: bool) -> VideoResult:
        """The row of a video whose results are complete, from its summary document."""
        source = summary.get("source") if isinstance(summary.get("source"), dict) else {}
        return cls(
            key,
            VideoStatus.DONE,
            frames=_int(summary.get("frames")),
            frames_with_face=_int(summary.get("frames_with_face")),
            duration_s=_float(summary.get("duration_s")),
            fps=_float(source.get("fps")) if isinstance(source, dict) else None,
            wall_s=_float(summary.get("wall_s")),
            reused=reused,
        )


def _int(value: object) -> int | None:
    return int(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _float(value: object) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def one_line(exc: BaseException) -> str:
    """An error as one line: edgeaff's own messages as they are; anything else (a bug) with its type."""
    text = " ".join(str(exc).split())
    if isinstance(exc, EdgeaffError):
        return text or type(exc).__name__
    if isinstance(exc, OSError) and exc.strerror:
        where = f"{exc.filename}: " if exc.filename else ""
        return f"{where}{exc.strerror}"
    return f"internal error {type(exc).__name__}: {text}" if text else f"internal error {type(exc).__name__}"


class _CountingTimer(StageTimer):
    """The run's stage timer, also reporting the frames read so far (at most every :data:`FRAMES_EVERY_S`)."""

    def __init__(self, key: str, declared: Callable[[], int | None], report: FrameReport) -> None:
        super().__init__()
        self.key, self.declared, self.report = key, declared, report
        self.frames = 0
        self._last = 0.0

    def add(self, stage: str, milliseconds: float, *, frames: int = 1) -> None:
        super().add(stage, milliseconds, frames=frames)
        if stage != "read":
            return
        self.frames += 1
        now = time.monotonic()
        if now - self._last >= FRAMES_EVERY_S:
            self._last = now
            self.report(self.key, self.frames, self.declared())


class VideoWorker:
    """A pipeline for ``settings``, opened on enter, that runs one video at a time (:meth:`run`).

    Args:
        settings: the batch's settings.
        threads: ONNX Runtime threads per graph for this worker (``None``: the options' own).
        on_frames: receives frame counts while a video runs (progress display).
    """

    def __init__(self, settings: BatchSettings, *, threads: int | None = None, on_frames: FrameReport | None = None):
        self.settings = settings
        options = settings.options
        if threads is not None:
            options = dataclasses.replace(options, backend=dataclasses.replace(options.backend, threads=threads))
        self.pipeline = Pipeline(settings.bundle, options=options)
        self.on_frames = on_frames

    def __enter__(self) -> VideoWorker:
        self.pipeline.open()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.pipeline.close()

    def run(self, item: BatchItem) -> VideoResult:
        """Run one video and write its results; a failure becomes a ``failed`` result, never an exception.

        ``KeyboardInterrupt`` and other ``BaseException`` s pass through (after the run's temporary files are
        removed), so the batch can stop.
        """
        started = time.perf_counter()
        try:
            forget(item)
            entry = stamp(item, self.settings, video_stamp(item.video))
            timer = None
            run = None
            if self.on_frames is not None:
                timer = _CountingTimer(
                    item.key, lambda: run.info.frame_count if run is not None else None, self.on_frames
                )
            run = self.pipeline.run(item.video, max_frames=self.settings.max_frames, timer=timer)
            results = write_results(
                run,
                item.out_dir,
                name=item.name,
                outputs=self.settings.outputs,
                echo=_quiet,
                show=_quiet,
                sinks=[StampSink(entry)],
            )
        except Exception as exc:
            return VideoResult(item.key, VideoStatus.FAILED, wall_s=time.perf_counter() - started, error=one_line(exc))
        return dataclasses.replace(
            VideoResult.from_summary(item.key, results.summary, reused=False), wall_s=time.perf_counter() - started
        )


def _quiet(line: str) -> None:
    """Per-video lines are not printed in a batch (the progress display and the index say it)."""
