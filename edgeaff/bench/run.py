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

from edgeaff.bench import compare, components
from edgeaff.bench.pipeline import PipelineSession, measure_pipeline
from edgeaff.bench.report import build_document
from edgeaff.bench.stamp import device_stamp, load_average, make_stamp
from edgeaff.bench.stats import LatencyStats, PairedTiming, Repeats
from edgeaff.runtime.artifacts.bundle import Bundle, load_bundle
from edgeaff.runtime.backends.graphs import BackendOptions, check_precision
from edgeaff.runtime.errors import InvalidInputError
from edgeaff.runtime.io.open import open_source
from edgeaff.runtime.io.sources import Source
from edgeaff.runtime.pipeline.infer import MODES, InferOptions

SYNTHETIC_ENSEMBLE_FRAMES = 600


@dataclasses.dataclass(frozen=True)
class BenchOptions:
    """What ``edgeaff bench`` was asked to measure.

    Attributes:
        source: video file (or folder of faces / prepared trial path) to run end to end; ``None``: network stages
            on synthetic inputs only.
        backend: ``ort-cpu``, ``ort-cuda``, ``ort-trt`` or ``trt``.
        precision: ``fp32``, ``fp16`` or ``int8`` (as exported in the bundle).
        mode: ``offline`` (windows) or ``stream`` (per-frame causal updates).
        repeats: iterations or duration, and warm-up: passes over the source for the pipeline, calls for isolated
            stages, pairs for comparisons.
        pair_repeats: a separate budget for isolated stages and comparisons (``None``: ``repeats``); their calls
            take milliseconds where a pass over the source takes seconds.
        threads: ONNX Runtime intra-op threads per graph (``None``: ONNX Runtime's default).
        visual_batch: face crops per visual graph call (offline mode; stream mode uses 1).
        face_detector: ``dnn`` (the bundle's BlazeFace) or ``haar``.
        detect_every: detect at least every N frames and track in between.
        compare: run the side-by-side comparisons.
        engine_cache: TensorRT engine cache directory.
    """

    source: str | None = None
    backend: str = "ort-cpu"
    precision: str = "fp32"
    mode: str = "offline"
    repeats: Repeats = dataclasses.field(default_factory=Repeats)
    pair_repeats: Repeats | None = None
    threads: int | None = None
    visual_batch: int = 16
    face_detector: str = "dnn"
    detect_every: int = 10
    compare: bool = True
    engine_cache: Path | None = None

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise InvalidInputError(f"unknown mode '{self.mode}'; choose one of {', '.join(MODES)}")
        _ = self.infer_options  # validates backend, precision, threads, batch, detector and detection interval

    @property
    def backend_options(self) -> BackendOptions:
        """The runtime's backend options for these settings (validates backend, precision and threads)."""
        return BackendOptions(
            backend=self.backend, precision=self.precision, threads=self.threads, engine_cache=self.engine_cache
        )

    @property
    def infer_options(self) -> InferOptions:
        """The ``edgeaff infer`` options the pipeline runs with."""
        return InferOptions(
            backend=self.backend_options,
            mode=self.mode,
            face_detector=self.face_detector,
            detect_every=self.detect_every,
            batch=self.visual_batch if self.mode == "offline" else 1,
        )


def _stats(entries: dict[str, LatencyStats], where: str) -> dict[str, dict[str, Any]]:
    return {name: {"where": where, **stats.to_dict()} for name, stats in entries.items()}


def bundle_settings(bundle: Bundle) -> dict[str, Any]:
    """What the bundle holds: model count, folds, dimensions, kinds, backbone, shared trunk, precisions."""
    models = bundle.models
    folds = sorted({int(m["fold"]) for m in models if m.get("fold") is not None})
    return {
        "bundle": str(bundle.root),
        "models": len(models),
        "folds": len(folds),
        "dimensions": sorted({str(m["dimension"]) for m in models}),
        "kinds": sorted({str(m["kind"]) for m in models}),
        "backbone": sorted({str(m.get("backbone")) for m in models}),
        "shared_trunk": bool(bundle.manifest.get("visual", {}).get("shared_trunk")),
        "bundle_precisions": bundle.precisions,
        "window": bundle.feature_spec.window.length,
        "hop": bundle.feature_spec.window.hop,
    }


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
    backend = options.backend_options
    check_precision(bundle, backend)
    repeats = options.repeats
    calls = options.pair_repeats or repeats
    settings: dict[str, Any] = {
        "backend": options.backend,
        "precision": options.precision,
        "mode": options.mode if options.source else None,
        **bundle_settings(bundle),
        "visual_batch": options.visual_batch if options.mode == "offline" else 1,
        "threads": options.threads,
        "face_detector": options.face_detector if options.source else None,
        "detect_every": options.detect_every if options.source else None,
        "repeats": dataclasses.asdict(repeats),
        "call_repeats": dataclasses.asdict(calls),
        "source": None,
    }
    stages: dict[str, dict[str, Any]] = {}
    comparisons: list[PairedTiming] = []
    skipped: list[compare.Skipped] = []
    notes: list[str] = []
    end_to_end = None
    crops = None
    if options.source is not None:
        uri = options.source
        spec = bundle.feature_spec

        def reopen() -> Source:
            return open_source(uri, crop_size=spec.face.image_size)

        with tempfile.TemporaryDirectory(prefix="edgeaff-bench-") as scratch:
            echo(f"end to end: {options.mode} over {uri} ({options.backend}, {options.precision})")
            with PipelineSession(bundle, reopen, options=options.infer_options, out_dir=Path(scratch)) as session:
                measured = measure_pipeline(session, repeats)
                crops = None if session.faces is None or not session.faces.crops else session.faces.crops
                notes += session.notes
                info = session.info
                if not session.splits_transfers and options.backend in ("ort-cuda", "ort-trt"):
                    notes.append("ONNX Runtime does not report host/device copy times; only native trt does")
        assert info is not None
        stages |= _stats(measured.stages, "pipeline")
        end_to_end = measured.end_to_end
        summary = measured.summary
        settings["source"] = {
            "uri": info.uri, "kind": info.kind.value, "fps": info.fps, "width": info.width, "height": info.height,
            "frames": summary["frames"], "audio": info.has_audio,
        }  # fmt: skip
        settings["graphs"] = summary.get("graphs")
        settings["face_counts"] = (summary.get("face_detector") or {}).get("counts")
        if info.has_audio and bundle.multimodal:
            echo("isolated: MFCC and log-mel front ends")
            chunks, fps = components.source_audio(reopen)
            stages |= _stats(components.audio_front_ends(bundle, chunks, fps, calls), "isolated")
    else:
        echo(f"network stages on synthetic inputs ({options.backend}, {options.precision})")
        stages |= _stats(components.network_stages(bundle, backend, calls, batch=options.visual_batch), "isolated")
        stages |= _stats(components.ensemble_stages(bundle, calls, frames=SYNTHETIC_ENSEMBLE_FRAMES), "isolated")
        for what in ("decode", "face detection, tracking and alignment", "MFCC and log-mel", "writing"):
            skipped.append(compare.Skipped(what, "no --source: only the network stages ran, on synthetic inputs"))
    if options.compare:
        echo("side by side: streaming update vs window re-run")
        stream = compare.stream_step_vs_window(bundle, backend, calls)
        comparisons.append(stream)
        stages["temporal_step"] = {"where": "isolated", **stream.a.to_dict()}
        stages["temporal_window"] = {"where": "isolated", **stream.b.to_dict()}
        echo("side by side: precisions")
        found, missing = compare.precision_comparisons(
            bundle, backend, calls, batch=options.visual_batch, crops=None if crops is None else _stack(crops)
        )
        comparisons += found
        skipped += missing
        if len(bundle.precisions) == 1:
            skipped.append(compare.Skipped("precision comparisons", "the bundle has FP32 graphs only"))
        gpu = machine["gpu"] is not None
        found, missing = compare.tensorrt_vs_onnxruntime(bundle, backend, calls, batch=options.visual_batch, gpu=gpu)
        comparisons += found
        skipped += missing
    stamp = make_stamp(settings=settings, load_before=load_before, machine=machine)
    return build_document(
        stamp=stamp,
        stages=stages,
        end_to_end=end_to_end,
        comparisons=[c.to_dict() for c in comparisons],
        skipped=[s.to_dict() for s in skipped],
        notes=notes,
    )


def _stack(crops: list[Any]) -> Any:
    import numpy as np

    return np.stack(crops)
