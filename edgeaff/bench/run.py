"""``edgeaff bench``: one benchmark run of a bundle, end to end and per stage, with side-by-side ratios.

With a source, the runtime pipeline (:mod:`edgeaff.bench.pipeline`) runs over it repeatedly and the stages it
merges are also timed in isolation (:mod:`edgeaff.bench.components`); without one, only the network and ensembling
stages run, on synthetic inputs. The comparisons (:mod:`edgeaff.bench.compare`) follow. Torch is never imported.
"""

from __future__ import annotations

import dataclasses
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from edgeaff.bench import compare, components, efficiency
from edgeaff.bench.peak import Peaks, measure_peaks
from edgeaff.bench.pipeline import PipelineSession, measure_pipeline
from edgeaff.bench.report import build_document
from edgeaff.bench.stamp import device_stamp, load_average, make_stamp
from edgeaff.bench.stats import LatencyStats, PairedTiming, Repeats
from edgeaff.runtime import (
    Backend,
    BackendOptions,
    Bundle,
    DetectorKind,
    Faces,
    Mode,
    PipelineOptions,
    Source,
    graph_threads,
    load_bundle,
    open_source,
    tuned_stream_threads,
)
from edgeaff.runtime.errors import InvalidInputError, MissingDependencyError

SYNTHETIC_ENSEMBLE_FRAMES = 600
ISOLATED_BATCH = 16  # crops / examples per call of the isolated network stages and comparisons, unless --batch


@dataclasses.dataclass(frozen=True)
class BenchOptions:
    """What ``edgeaff bench`` was asked to measure.

    Attributes:
        source: video file (or folder of faces / prepared trial path) to run end to end; ``None``: network stages
            on synthetic inputs only.
        backend: backend, precision, threads, CUDA device and engine cache (the runtime's options).
        mode: ``offline`` (windows) or ``stream`` (per-frame causal updates).
        repeats: iterations or duration, and warm-up: passes over the source for the pipeline, calls for isolated
            stages, pairs for comparisons.
        pair_repeats: a separate budget for isolated stages and comparisons (``None``: ``repeats``); their calls
            take milliseconds where a pass over the source takes seconds.
        visual_batch: face crops per visual graph call (``None``: the runtime's choice, i.e. the batch measured for
            this machine offline and the frames waiting in stream mode; the isolated stages and comparisons then
            use :data:`ISOLATED_BATCH`).
        face_detector: ``dnn`` (the bundle's BlazeFace) or ``haar``.
        detect_every: detect at least every N frames and track in between.
        faces: ``one`` subject or ``all`` faces, each with its own track (``edgeaff infer --faces``).
        max_faces: with ``faces="all"``, the most faces followed at once (``None``: the runtime's limit).
        compare: run the side-by-side comparisons.
        peak: measure the machine's practical peaks first and report each graph's fraction of them
            (:mod:`edgeaff.bench.peak`, :mod:`edgeaff.bench.efficiency`).
    """

    source: str | None = None
    backend: BackendOptions = dataclasses.field(default_factory=BackendOptions)
    mode: Mode = Mode.OFFLINE
    repeats: Repeats = dataclasses.field(default_factory=Repeats)
    pair_repeats: Repeats | None = None
    visual_batch: int | None = None
    face_detector: DetectorKind = DetectorKind.DNN
    detect_every: int = 10
    faces: Faces | str | None = None
    max_faces: int | None = None
    compare: bool = True
    peak: bool = True

    def __post_init__(self) -> None:
        _ = self.pipeline_options  # validates mode, batch, detector and detection interval

    @property
    def call_repeats(self) -> Repeats:
        """The budget of the isolated stages and the comparisons."""
        return self.pair_repeats or self.repeats

    @property
    def isolated_batch(self) -> int:
        """Crops or examples per call of the isolated network stages and the comparisons."""
        return self.visual_batch or ISOLATED_BATCH

    @property
    def pipeline_options(self) -> PipelineOptions:
        """The options of the pipeline the end-to-end passes run."""
        return PipelineOptions(
            backend=self.backend,
            mode=Mode.parse(self.mode),
            face_detector=DetectorKind.parse(self.face_detector),
            detect_every=self.detect_every,
            faces=Faces.parse(self.faces if self.faces is not None else Faces.ONE),
            max_faces=self.max_faces,
            batch=self.visual_batch,
        )


def _stats(entries: dict[str, LatencyStats], where: str) -> dict[str, dict[str, Any]]:
    return {name: {"where": where, **stats.to_dict()} for name, stats in entries.items()}


def bundle_settings(bundle: Bundle) -> dict[str, Any]:
    """What the bundle holds: model count, folds, dimensions, kinds, backbone, shared trunk, precisions."""
    models = bundle.models
    folds = sorted({m.fold for m in models if m.fold is not None})
    return {
        "bundle": str(bundle.root),
        "models": len(models),
        "folds": len(folds),
        "dimensions": sorted({m.dimension.value for m in models}),
        "kinds": sorted({m.kind.value for m in models}),
        "backbone": sorted({m.backbone for m in models}),
        "shared_trunk": bundle.shared_trunk,
        "bundle_precisions": [p.value for p in bundle.precisions],
        "window": bundle.feature_spec.window.length,
        "hop": bundle.feature_spec.window.hop,
    }


@dataclasses.dataclass
class _Findings:
    """What one bench run has measured so far, gathered by its steps."""

    stages: dict[str, dict[str, Any]] = dataclasses.field(default_factory=dict)
    comparisons: list[PairedTiming] = dataclasses.field(default_factory=list)
    skipped: list[compare.Skipped] = dataclasses.field(default_factory=list)
    notes: list[str] = dataclasses.field(default_factory=list)
    end_to_end: dict[str, Any] | None = None
    crops: list[Any] | None = None  # the face crops the pipeline saw, for the precision comparisons


def run_bench(
    bundle_path: str | Path,
    *,
    options: BenchOptions,
    echo: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Benchmark a bundle and return the document (:func:`edgeaff.bench.report.build_document`).

    Args:
        bundle_path: bundle directory written by ``edgeaff export``.
        options: what to measure.
        echo: progress lines.

    Raises:
        BundleError: a missing or invalid bundle.
        InvalidInputError: bad options, a precision the bundle lacks, or a live / unreadable source.
        MissingDependencyError: the backend's or the source's library is missing.
    """
    load_before = load_average()
    machine = device_stamp()
    bundle = load_bundle(bundle_path)
    backend = options.backend
    if backend.precision not in bundle.precisions:
        raise InvalidInputError(
            f"the bundle {bundle.root} has no {backend.precision} graphs (it has {', '.join(bundle.precisions)})"
        )
    settings = _settings(bundle, options)
    found = _Findings()
    peaks = _measure_peaks(options, echo, found.skipped) if options.peak else None
    if options.source is not None:
        _measure_source(bundle, options.source, options, settings=settings, found=found, echo=echo)
    else:
        _measure_synthetic(bundle, options, found, echo)
    if options.compare:
        _compare(bundle, options, found, echo, gpu=machine["gpu"] is not None)
    counts = _count_graphs(bundle, backend, echo, found.skipped)
    offline_run = Mode.parse(options.mode) is Mode.OFFLINE or options.source is None
    report = efficiency.efficiency(
        counts=counts, stages=found.stages, peaks=peaks, offline=offline_run, end_to_end=found.end_to_end
    )
    settings["threads_per_graph"] = _threads_per_graph(bundle, backend)
    if "temporal_stream" in bundle.graphs and not backend.backend.gpu:
        settings["stream_threads"] = tuned_stream_threads(bundle, backend).to_dict()
    stamp = make_stamp(settings=settings, load_before=load_before, machine=machine)
    return build_document(
        stamp=stamp,
        stages=found.stages,
        end_to_end=found.end_to_end,
        comparisons=[c.to_dict() for c in found.comparisons],
        skipped=[s.to_dict() for s in found.skipped],
        notes=found.notes,
        peaks=None if peaks is None else peaks.to_dict(),
        efficiency=report if counts else None,
    )


def _settings(bundle: Bundle, options: BenchOptions) -> dict[str, Any]:
    """The stamp's settings: what ran, on which bundle, with which batches, threads and repeats."""
    backend = options.backend
    source = options.source is not None
    pipeline = options.pipeline_options
    return {
        "backend": backend.backend.value,
        "precision": str(backend.precision),
        "mode": Mode.parse(options.mode).value if source else None,
        **bundle_settings(bundle),
        "visual_batch": options.visual_batch,
        "isolated_batch": options.isolated_batch,
        "threads": backend.threads,
        "face_detector": DetectorKind.parse(options.face_detector).value if source else None,
        "detect_every": options.detect_every if source else None,
        "faces": pipeline.faces.value if source else None,
        "max_faces": pipeline.track_options().max_faces if source and pipeline.multi_face else None,
        "repeats": dataclasses.asdict(options.repeats),
        "call_repeats": dataclasses.asdict(options.call_repeats),
        "source": None,
    }


def _measure_source(
    bundle: Bundle,
    uri: str,
    options: BenchOptions,
    *,
    settings: dict[str, Any],
    found: _Findings,
    echo: Callable[[str], None],
) -> None:
    """The public pipeline over ``uri``, repeatedly, then the audio front ends on the same source in isolation."""
    backend = options.backend
    with tempfile.TemporaryDirectory(prefix="edgeaff-bench-") as scratch:
        echo(f"end to end: {settings['mode']} over {uri} ({backend.backend.value}, {backend.precision})")
        with PipelineSession(bundle, uri, options=options.pipeline_options, out_dir=Path(scratch)) as session:
            measured = measure_pipeline(session, options.repeats)
            found.crops = None if session.faces is None or not session.faces.crops else session.faces.crops
            found.notes += session.notes
            info = session.info
            if not session.splits_transfers and backend.backend in (Backend.ORT_CUDA, Backend.ORT_TRT):
                found.notes.append("ONNX Runtime does not report host/device copy times; only native trt does")
    assert info is not None
    found.stages |= _stats(measured.stages, "pipeline")
    found.end_to_end = measured.end_to_end
    summary = measured.summary
    settings["source"] = {
        "uri": info.uri, "kind": info.kind.value, "fps": info.fps, "width": info.width, "height": info.height,
        "frames": summary["frames"], "audio": info.has_audio,
    }  # fmt: skip
    settings["graphs"] = summary.get("graphs")
    settings["batches"] = summary.get("batches")
    settings["face_counts"] = (summary.get("face_detector") or {}).get("counts")
    if info.has_audio and bundle.multimodal:
        echo("isolated: MFCC and log-mel front ends")

        def reopen() -> Source:
            return open_source(uri)

        chunks, fps = components.source_audio(reopen)
        found.stages |= _stats(components.audio_front_ends(bundle, chunks, fps, options.call_repeats), "isolated")


def _measure_synthetic(bundle: Bundle, options: BenchOptions, found: _Findings, echo: Callable[[str], None]) -> None:
    """Without a source: the network and ensembling stages on synthetic inputs."""
    backend = options.backend
    calls = options.call_repeats
    echo(f"network stages on synthetic inputs ({backend.backend.value}, {backend.precision})")
    found.stages |= _stats(components.network_stages(bundle, backend, calls, batch=options.isolated_batch), "isolated")
    found.stages |= _stats(components.ensemble_stages(bundle, calls, frames=SYNTHETIC_ENSEMBLE_FRAMES), "isolated")
    for what in ("decode", "face detection, tracking and alignment", "MFCC and log-mel", "writing"):
        found.skipped.append(compare.Skipped(what, "no --source: only the network stages ran, on synthetic inputs"))


def _compare(
    bundle: Bundle, options: BenchOptions, found: _Findings, echo: Callable[[str], None], *, gpu: bool
) -> None:
    """Side by side: the streaming update against the window, the precisions, TensorRT against ONNX Runtime."""
    backend = options.backend
    calls, batch = options.call_repeats, options.isolated_batch
    echo("side by side: streaming update vs window re-run")
    stream = compare.stream_step_vs_window(bundle, backend, calls)
    found.comparisons.append(stream)
    found.stages["temporal_step"] = {"where": "isolated", **stream.a.to_dict()}
    found.stages["temporal_window"] = {"where": "isolated", **stream.b.to_dict()}
    echo("side by side: precisions")
    crops = None if found.crops is None else _stack(found.crops)
    present, missing = compare.precision_comparisons(bundle, backend, calls, batch=batch, crops=crops)
    found.comparisons += present
    found.skipped += missing
    if len(bundle.precisions) == 1:
        found.skipped.append(compare.Skipped("precision comparisons", "the bundle has FP32 graphs only"))
    present, missing = compare.tensorrt_vs_onnxruntime(bundle, backend, calls, batch=batch, gpu=gpu)
    found.comparisons += present
    found.skipped += missing


def _measure_peaks(options: BenchOptions, echo: Callable[[str], None], skipped: list[compare.Skipped]) -> Peaks | None:
    echo("the machine's practical peak (GEMM and convolution at each precision)")
    try:
        peaks = measure_peaks(options.backend, echo=echo)
    except MissingDependencyError as exc:
        skipped.append(compare.Skipped("peaks and fractions of peak", str(exc)))
        return None
    skipped += [compare.Skipped(f"peak {name}", why) for name, why in peaks.skipped.items()]
    return peaks


def _count_graphs(
    bundle: Bundle, backend: BackendOptions, echo: Callable[[str], None], skipped: list[compare.Skipped]
) -> dict[str, efficiency.GraphCount]:
    items = {"visual": "face crop", "vggish": "log-mel example", "temporal": "frame of a window",
             "temporal_stream": "frame"}  # fmt: skip
    echo("FLOPs per graph")
    counts = {}
    for role, item in items.items():
        if role not in bundle.graphs:
            continue
        try:
            counts[role] = efficiency.count_graph(bundle, role, backend, item=item)
        except MissingDependencyError as exc:
            skipped.append(compare.Skipped("FLOPs and GOP/s per graph", str(exc)))
            return {}
    return counts


def _threads_per_graph(bundle: Bundle, backend: BackendOptions) -> dict[str, int] | None:
    if backend.backend.gpu:
        return None
    roles = ("visual", "vggish", "temporal", "temporal_stream", "face_detector")
    threads = {role: graph_threads(role, backend.threads) for role in roles if role in bundle.graphs}
    if "temporal_stream" in threads:  # measured once per machine, as the pipeline runs it
        threads["temporal_stream"] = tuned_stream_threads(bundle, backend).threads
    return threads


def _stack(crops: list[Any]) -> Any:
    import numpy as np

    return np.stack(crops)
