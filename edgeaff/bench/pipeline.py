"""End-to-end measurement: the public :class:`~edgeaff.runtime.Pipeline`, run repeatedly over one source.

:class:`PipelineSession` opens a pipeline once (its graph sessions) and runs it over the source as many times as
asked, each pass reading, detecting, embedding, windowing or streaming, ensembling and writing the result files
exactly as ``edgeaff infer`` does (:func:`~edgeaff.runtime.write_results`): nothing of infer's logic is copied
here. Stage times come from the run's :class:`~edgeaff.runtime.StageTimer`, refined through the pipeline's
instrument hook by :mod:`edgeaff.bench.instrument` (face detection / tracking / alignment, GPU copies). Warm-up
passes cover the first frames of the source only.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any, cast

import numpy as np

from edgeaff.bench.instrument import TimedFaceStage, TimedRunner
from edgeaff.bench.stamp import peak_rss_mib
from edgeaff.bench.stats import LatencyStats, Repeats, latency_stats
from edgeaff.runtime import (
    Bundle,
    FaceStage,
    InvalidInputError,
    Outputs,
    Pipeline,
    PipelineOptions,
    Prediction,
    Runner,
    Source,
    SourceInfo,
    StageTimer,
    write_results,
)

WARMUP_PASS_FRAMES = 64  # enough to run every graph and stage at least once


class BenchInstrument:
    """The pipeline's instrument hook: wraps each runner and the face stage in their timed forms."""

    def __init__(self) -> None:
        self.runners: list[TimedRunner] = []
        self.face_stage: TimedFaceStage | None = None

    def runner(self, role: str, runner: Runner) -> Runner:
        """A :class:`TimedRunner` around the pipeline's runner."""
        wrapped = TimedRunner(runner, role)
        self.runners.append(wrapped)
        return wrapped

    def faces(self, stage: FaceStage) -> FaceStage:
        """A :class:`TimedFaceStage` around the pipeline's face stage."""
        self.face_stage = TimedFaceStage(stage)
        return cast(FaceStage, self.face_stage)

    def record_into(self, timer: StageTimer) -> None:
        """Record the finer stages of the next pass into ``timer``."""
        for runner in self.runners:
            runner.timer = timer
        if self.face_stage is not None:
            self.face_stage.timer = timer


class _Values:
    """A sink that keeps each prediction's merged values (the pass's output, for checks)."""

    stage = "collect"

    def __init__(self) -> None:
        self.rows: list[list[float]] = []
        self.dimensions: tuple[str, ...] = ()

    def write(self, prediction: Prediction) -> None:
        values = prediction.values
        self.dimensions = tuple(values)
        self.rows.append(list(values.values()))

    def finish(self) -> dict[str, Any]:
        return {}


@dataclasses.dataclass(frozen=True)
class PassResult:
    """One pass over the source.

    Attributes:
        summary: the runtime's summary document of the run.
        timer: the run's stage timer.
        predictions: the final per-frame predictions, (frames, dimensions) float64, as written.
        dimensions: the dimension of each column of ``predictions``.
    """

    summary: dict[str, Any]
    timer: StageTimer
    predictions: np.ndarray
    dimensions: tuple[str, ...]

    @property
    def wall_s(self) -> float:
        """Seconds the pass took (source opened to results written)."""
        return float(self.summary["pass_wall_s"])


class PipelineSession:
    """The runtime pipeline over one source with its graphs opened once. Use as a context manager.

    Args:
        bundle: a loaded bundle.
        source: the source's path or URI, or a callable that makes a new :class:`Source` for each pass.
        options: the pipeline's options (backend, precision, mode, face detector, visual batch, ...).
        out_dir: where each pass writes its result files (overwritten by the next pass).

    Raises (on ``__enter__``):
        InvalidInputError: a live source (benchmarks need a source that ends), or options that do not fit it.
    """

    def __init__(
        self, bundle: Bundle, source: str | Path | Callable[[], Source], *, options: PipelineOptions, out_dir: Path
    ) -> None:
        self.bundle = bundle
        self.source = source
        self.options = options
        self.out_dir = out_dir
        self.notes: list[str] = []
        self.info: SourceInfo | None = None
        self.instrument = BenchInstrument()
        self.pipeline: Pipeline | None = None

    @property
    def faces(self) -> TimedFaceStage | None:
        """The timed face stage (once a pass has needed one)."""
        return self.instrument.face_stage

    @property
    def runners(self) -> list[TimedRunner]:
        """The timed runners of every graph opened so far."""
        return self.instrument.runners

    def _open_source(self) -> Any:
        return self.source() if callable(self.source) else self.source

    def __enter__(self) -> PipelineSession:
        pipeline = Pipeline(self.bundle, options=self.options, instrument=self.instrument, on_note=self._note)
        try:
            with pipeline.run(self._open_source()) as probe:
                info = probe.info
        except BaseException:
            pipeline.close()
            raise
        if info.live:
            pipeline.close()
            raise InvalidInputError(
                f"{info.uri} is a live source; edgeaff bench measures a file or folder it can read repeatedly "
                "(for a camera, run edgeaff infer --live and read the timing in its summary JSON)"
            )
        self.info = info
        self.pipeline = pipeline
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self.pipeline is not None:
            self.pipeline.close()
            self.pipeline = None

    def _note(self, line: str) -> None:
        if line not in self.notes:
            self.notes.append(line)

    @property
    def splits_transfers(self) -> bool:
        """Whether the graphs' runners report H2D / compute / D2H (native TensorRT)."""
        return any(runner.splits_transfers for runner in self.runners)

    def run_pass(self, *, max_frames: int | None = None) -> PassResult:
        """Run the pipeline over the source (its first ``max_frames`` frames, if given) and write the results."""
        if self.pipeline is None:
            raise RuntimeError("PipelineSession: use it in a 'with' block before run_pass()")
        timer = StageTimer()
        self.instrument.record_into(timer)
        if self.faces is not None:
            self.faces.reset()
        values = _Values()
        started = time.perf_counter()
        run = self.pipeline.run(self._open_source(), max_frames=max_frames, timer=timer)
        result = write_results(run, self.out_dir, outputs=Outputs(), echo=self._echo, sinks=[values])
        summary = {**result.summary, "pass_wall_s": time.perf_counter() - started}
        predictions = np.asarray(values.rows, dtype=np.float64).reshape(len(values.rows), len(values.dimensions))
        return PassResult(summary, timer, predictions, values.dimensions)

    def _echo(self, line: str) -> None:
        # The last line of every pass ("N frames in S s ... -> files") is the runtime's report, not a note.
        if " frames in " not in line:
            self._note(line)


@dataclasses.dataclass(frozen=True)
class PipelineMeasurement:
    """Timed passes over a source, merged.

    Attributes:
        stages: per-stage statistics over every timed pass (stage name as the runtime records it).
        end_to_end: frames, wall seconds, frames/s, × real time, per-pass and (stream mode) per-frame latency.
        summary: the runtime's summary document of the last timed pass (what ran on what).
    """

    stages: dict[str, LatencyStats]
    end_to_end: dict[str, Any]
    summary: dict[str, Any]


def merge_passes(passes: list[PassResult]) -> dict[str, LatencyStats]:
    """Per-stage statistics over several passes (all calls pooled, frames summed), in first-recorded order."""
    values: dict[str, list[np.ndarray]] = {}
    frames: dict[str, int] = {}
    for result in passes:
        summary = result.timer.summary()
        for stage in result.timer.stages():
            values.setdefault(stage, []).append(result.timer.values(stage))
            frames[stage] = frames.get(stage, 0) + int(summary[stage]["frames"])
    return {stage: latency_stats(np.concatenate(parts), frames=frames[stage]) for stage, parts in values.items()}


def measure_pipeline(session: PipelineSession, repeats: Repeats) -> PipelineMeasurement:
    """Warm up (``repeats.warmup`` passes over the first :data:`WARMUP_PASS_FRAMES` frames), then time passes.

    Returns:
        The merged stage statistics, the end-to-end figures and the last pass's runtime summary.
    """
    for _ in range(repeats.warmup):
        session.run_pass(max_frames=WARMUP_PASS_FRAMES)
    passes: list[PassResult] = []
    elapsed = 0.0
    while repeats.with_minimum(1).more(len(passes), elapsed):
        passes.append(session.run_pass())
        elapsed += passes[-1].wall_s
    stages = merge_passes(passes)
    latency = stages.pop("latency", None)
    frames = sum(int(p.summary["frames"]) for p in passes)
    faces = sum(len(p.predictions) for p in passes)  # one prediction per frame, or per frame and track
    wall = sum(p.wall_s for p in passes)
    video_s = sum(float(p.summary["duration_s"] or 0.0) for p in passes)
    end_to_end: dict[str, Any] = {
        "passes": len(passes),
        "frames": frames,
        "video_s": video_s,
        "wall_s": wall,
        "frames_per_s": frames / wall if wall > 0 else None,
        "x_real_time": video_s / wall if wall > 0 and video_s > 0 else None,
        "ms_per_frame": 1000.0 * wall / frames if frames else None,
        "faces_per_frame": faces / frames if frames else None,
        "pass_ms": latency_stats([1000.0 * p.wall_s for p in passes], frames=frames).to_dict(),
        "frame_latency_ms": None if latency is None else latency.to_dict(),
        "peak_rss_mib": round(peak_rss_mib(), 1),
    }
    return PipelineMeasurement(stages, end_to_end, passes[-1].summary)
