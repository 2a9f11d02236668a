"""End-to-end measurement: the runtime's own ``edgeaff infer`` pipeline, run repeatedly over one source.

:class:`PipelineSession` opens a bundle's graphs once (as ``edgeaff infer`` does for one run) and then runs
:class:`~edgeaff.runtime.pipeline.run.InferenceRun` over the source as many times as asked, each pass reading,
detecting, embedding, windowing or streaming, ensembling and writing exactly as ``edgeaff infer`` would. Stage times
come from the run's :class:`~edgeaff.runtime.pipeline.timing.StageTimer`, refined by :mod:`edgeaff.bench.instrument`
(face detection / tracking / alignment, GPU copies). Warm-up passes cover the first frames of the source only.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any, cast

import numpy as np

from edgeaff.bench.instrument import TimedFaceStage, TimedRunner
from edgeaff.bench.stamp import peak_rss_mib
from edgeaff.bench.stats import LatencyStats, Repeats, latency_stats
from edgeaff.runtime.artifacts.bundle import Bundle
from edgeaff.runtime.errors import InvalidInputError
from edgeaff.runtime.faces import FaceStage
from edgeaff.runtime.io.sources import Source, SourceInfo, SourceKind
from edgeaff.runtime.pipeline.infer import Graphs, InferOptions, open_graphs
from edgeaff.runtime.pipeline.timing import StageTimer

WARMUP_PASS_FRAMES = 64  # enough to run every graph and stage at least once


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
        return float(self.summary["wall_s"])


class PipelineSession:
    """The runtime pipeline over one source with its graphs opened once. Use as a context manager.

    Args:
        bundle: a loaded bundle.
        open_source: opens the source anew for each pass (the same callable ``edgeaff infer`` uses to re-read it).
        options: the ``edgeaff infer`` options (backend, precision, mode, face detector, visual batch, ...).
        out_dir: where each pass writes its result files (overwritten by the next pass).

    Raises (on ``__enter__``):
        InvalidInputError: a live source (benchmarks need a source that ends), or options that do not fit it.
    """

    def __init__(
        self, bundle: Bundle, open_source: Callable[[], Source], *, options: InferOptions, out_dir: Path
    ) -> None:
        self.bundle = bundle
        self.open_source = open_source
        self.options = options
        self.out_dir = out_dir
        self.notes: list[str] = []
        self.info: SourceInfo | None = None
        self.mode = options.mode or "offline"
        self.graphs: Graphs | None = None
        self.faces: TimedFaceStage | None = None
        self.runners: list[TimedRunner] = []
        self._stack = contextlib.ExitStack()

    def __enter__(self) -> PipelineSession:
        with self.open_source() as source:
            info = source.info
        if info.live:
            raise InvalidInputError(
                f"{info.uri} is a live source; edgeaff bench measures a file or folder it can read repeatedly "
                "(for a camera, run edgeaff infer --live and read the timing in its summary JSON)"
            )
        self.info = info
        needs_audio = info.has_audio and self.bundle.multimodal and info.kind is not SourceKind.PREPARED
        faces = info.kind not in (SourceKind.FOLDER, SourceKind.PREPARED)
        try:
            graphs = open_graphs(self.bundle, self.options, self._stack, mode=self.mode, audio=needs_audio, faces=faces)
            for choice in graphs.choices:
                if choice.note:
                    self._note(f"note: {choice.note}")
            graphs.visual = self._wrap(graphs.visual, "visual")
            graphs.temporal = self._wrap(graphs.temporal, "temporal")
            if graphs.vggish is not None:
                graphs.vggish = self._wrap(graphs.vggish, "vggish")
            if graphs.faces is not None:
                self.faces = TimedFaceStage(graphs.faces)
                graphs.faces = cast(FaceStage, self.faces)
        except BaseException:
            self._stack.close()
            raise
        self.graphs = graphs
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.graphs = None
        self._stack.close()

    def _wrap(self, runner: Any, role: str) -> TimedRunner:
        wrapped = TimedRunner(runner, role)
        self.runners.append(wrapped)
        return wrapped

    def _note(self, line: str) -> None:
        if line not in self.notes:
            self.notes.append(line)

    @property
    def splits_transfers(self) -> bool:
        """Whether the graphs' runners report H2D / compute / D2H (native TensorRT)."""
        return any(runner.splits_transfers for runner in self.runners)

    def run_pass(self, *, max_frames: int | None = None) -> PassResult:
        """Run the pipeline over the source (its first ``max_frames`` frames, if given) and write the results."""
        from edgeaff.runtime.pipeline.run import InferenceRun

        if self.graphs is None:
            raise RuntimeError("PipelineSession: use it in a 'with' block before run_pass()")
        options = dataclasses.replace(self.options, max_frames=max_frames)
        if self.faces is not None:
            self.faces.reset()
        with self.open_source() as source:
            run = InferenceRun(
                self.bundle, source, self.graphs, self.out_dir, options=options, mode=self.mode,
                echo=self._echo, show=lambda _: None, keep_rows=True,
            )  # fmt: skip
            for runner in self.runners:
                runner.timer = run.timer
            if self.faces is not None:
                self.faces.timer = run.timer
            result = run.execute(self.open_source)
        return PassResult(result.summary, run.timer, run.log.column("values").copy(), tuple(run.dimensions))

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
        "pass_ms": latency_stats([1000.0 * p.wall_s for p in passes], frames=frames).to_dict(),
        "frame_latency_ms": None if latency is None else latency.to_dict(),
        "peak_rss_mib": round(peak_rss_mib(), 1),
    }
    return PipelineMeasurement(stages, end_to_end, passes[-1].summary)
