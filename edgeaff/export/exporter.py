"""``edgeaff export``: fold checkpoints → a bundle of ONNX graphs with FP32 parity and optional FP16/INT8 variants.

Steps: collect and check the checkpoints, export the FP32 graphs, compare them with the PyTorch models under ONNX
Runtime (must agree within :data:`~edgeaff.export.parity.FP32_TOLERANCE`), build the requested variants, measure
their accuracy cost, write the manifest, and publish the bundle directory atomically.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from edgeaff.export import accuracy, bundle, calibration, int8_variants, parity, precision, sources, torch2onnx
from edgeaff.export.detector_bundle import add_face_detector
from edgeaff.export.face_detector import check_face_detector
from edgeaff.export.manifest import build_manifest
from edgeaff.export.vggish_weights import resolve_vggish
from edgeaff.runtime.artifacts.manifest import Manifest
from edgeaff.runtime.artifacts.prepared import PreparedDataset, load_prepared_dataset
from edgeaff.runtime.errors import EdgeaffError, InvalidInputError
from edgeaff.runtime.spec import AudioNormalization, FeatureSpec
from edgeaff.runtime.versions import EXPORT_LIBRARIES, versions
from edgeaff.train.checkpoint import CheckpointMetadata, load_checkpoint

if TYPE_CHECKING:
    from edgeaff.train.model import EmotionModel

PARITY_FRAMES = 16
CALIBRATION_FRAMES = 512
EVALUATION_FRAMES_PER_TRIAL = 600


class ParityError(EdgeaffError):
    """An exported FP32 graph disagrees with PyTorch beyond the tolerance."""


@dataclasses.dataclass(frozen=True)
class ExportOptions:
    """What ``edgeaff export`` was asked to do (see the CLI for the meaning of each)."""

    fp16: bool = False
    int8: bool = False
    calib: Path | None = None
    opset: int = torch2onnx.DEFAULT_OPSET
    vggish_weights: str | None = None
    force: bool = False
    face_detector: str | Path | None = None
    parity_frames: int = PARITY_FRAMES
    calibration_frames: int = CALIBRATION_FRAMES
    evaluation_frames_per_trial: int | None = EVALUATION_FRAMES_PER_TRIAL


@dataclasses.dataclass(frozen=True)
class ExportResult:
    """The published bundle and its manifest."""

    path: Path
    manifest: Manifest


@dataclasses.dataclass(frozen=True)
class ParityInputs:
    """Real (or synthetic) inputs every parity check uses."""

    frames: np.ndarray
    window_frames: np.ndarray | None
    embedding_seed: int
    vggish: np.ndarray | None
    mfcc: np.ndarray | None
    log_mel: np.ndarray
    source: str


def _parity_inputs(
    data: tuple[PreparedDataset, list[str]] | None,
    spec: FeatureSpec,
    normalizations: Sequence[AudioNormalization | None],
    *,
    frames: int,
    audio: bool,
) -> ParityInputs:
    rng = np.random.default_rng(20211)
    window = spec.window.length
    log_mel = rng.normal(-2.0, 2.0, (4, spec.vggish.example_frames, spec.vggish.mel_bins)).astype(np.float32)
    if data is not None:
        dataset, trials = data
        name = max(trials, key=lambda t: dataset.trials[t].length)
        trial = dataset.arrays(name)
        length = min(window, trial.length)
        window_frames = np.asarray(trial.frame[:length])
        vggish = np.asarray(trial.vggish[None, :length]) if audio else None
        mfcc = np.asarray(trial.mfcc[None, :length]) if audio else None
        return ParityInputs(window_frames[:frames], window_frames, 0, vggish, mfcc, log_mel, f"prepared:{name}")
    size = spec.face.image_size
    stats = next((n for n in normalizations if n is not None), None)
    vggish = mfcc = None
    if audio and stats is not None:
        vggish = rng.normal(stats.vggish.mean, stats.vggish.std, (1, window, spec.vggish.embedding_dim))
        mfcc = rng.normal(stats.mfcc.mean, stats.mfcc.std, (1, window, spec.mfcc.dim))
        vggish, mfcc = vggish.astype(np.float32), mfcc.astype(np.float32)
    synthetic_frames = rng.integers(0, 256, (frames, size, size, 3), dtype=np.uint8)
    # Synthetic windows take random unit embeddings directly: running the backbones on noise proves nothing more.
    return ParityInputs(synthetic_frames, None, 20212, vggish, mfcc, log_mel, "synthetic")


def _window_embeddings(visual: Path, inputs: ParityInputs, models: int, window: int) -> np.ndarray:
    """(1, L, M, E) embeddings of the parity window: the visual graph's on real frames, else random unit vectors."""
    if inputs.window_frames is not None:
        with accuracy.OrtRunner(visual) as runner:
            return accuracy.embed_frames(runner, inputs.window_frames)[None]
    with accuracy.OrtRunner(visual) as runner:
        width = runner.outputs[0].shape[-1]
    assert isinstance(width, int)
    values = np.random.default_rng(inputs.embedding_seed).normal(0.0, 1.0, (1, window, models, width))
    return (values / np.linalg.norm(values, axis=-1, keepdims=True)).astype(np.float32)


def check_opset(opset: int) -> int:
    """``opset`` if the exporter and the installed ``onnx`` both support it.

    Raises:
        InvalidInputError: below :data:`~edgeaff.export.torch2onnx.MIN_OPSET` or above what ``onnx`` knows.
    """
    import onnx

    newest = int(onnx.defs.onnx_opset_version())
    if not torch2onnx.MIN_OPSET <= opset <= newest:
        raise InvalidInputError(
            f"--opset must be between {torch2onnx.MIN_OPSET} and {newest} (the newest the installed onnx knows), "
            f"got {opset}"
        )
    return opset


@dataclasses.dataclass(frozen=True)
class _Request:
    """An export request checked in full: the checkpoints, their common feature spec and the calibration data."""

    checkpoints: list[sources.CheckpointSource]
    spec: FeatureSpec
    dataset: PreparedDataset | None


def _check_request(arguments: Sequence[str | Path], out: Path, options: ExportOptions) -> _Request:
    """Everything that can be refused, checked before the expensive steps (see :func:`export_bundle`)."""
    read_paths = [*arguments, *(p for p in (options.calib, options.face_detector) if p is not None)]
    if options.vggish_weights is not None and not options.vggish_weights.startswith("random:"):
        read_paths.append(options.vggish_weights)
    bundle.check_destination(out, force=options.force, inputs=read_paths)
    if options.int8 and options.calib is None:
        raise InvalidInputError(
            "--int8 needs --calib PREPARED_DIR: INT8 scales are calibrated on real frames, never guessed"
        )
    check_opset(options.opset)
    checkpoint_sources = sources.collect_sources(arguments)
    for source in checkpoint_sources:
        try:
            CheckpointMetadata.from_dict(source.metadata)
        except EdgeaffError as exc:
            raise InvalidInputError(f"{source.path}: {exc}") from None
    spec = FeatureSpec.from_dict(sources.check_compatible(checkpoint_sources))
    check_face_detector(options.face_detector)
    dataset = None
    if options.calib is not None:
        dataset = load_prepared_dataset(options.calib)
        calibration.check_features(dataset, spec)
    return _Request(checkpoint_sources, spec, dataset)


def _fp32_parity(
    graph_set: torch2onnx.GraphSet,
    models: Sequence[EmotionModel],
    normalizations: Sequence[AudioNormalization | None],
    *,
    inputs: ParityInputs,
    window_embeddings: np.ndarray,
    spec: FeatureSpec,
    vggish: Any,
    log: Callable[[str], None],
) -> dict[str, parity.Agreement]:
    """Every FP32 graph against the PyTorch models on the parity inputs.

    Raises:
        ParityError: a graph differs beyond :data:`~edgeaff.export.parity.FP32_TOLERANCE`.
    """
    graphs = graph_set.graphs
    started = time.perf_counter()
    embeddings, vggish_rows, mfcc = window_embeddings, inputs.vggish, inputs.mfcc
    fp32 = {
        "visual": parity.check_visual(graphs["visual"].path, models, inputs.frames, spec.face),
        "temporal": parity.check_temporal(
            graphs["temporal"].path, models, normalizations, embeddings=embeddings, vggish=vggish_rows, mfcc=mfcc
        ),
        "temporal_stream": parity.check_stream(
            graphs["temporal_stream"].path,
            models,
            normalizations,
            embeddings=embeddings,
            vggish=vggish_rows,
            mfcc=mfcc,
            state_size=graph_set.state_size,
        ),
    }
    if vggish is not None:
        fp32["vggish"] = parity.check_vggish(graphs["vggish"].path, vggish, inputs.log_mel)
    for name, agreement in fp32.items():
        log(
            f"parity fp32 {name}: max abs difference {agreement.max_abs:.2e} on outputs up to "
            f"{agreement.reference_max:.2g} (tolerance {parity.FP32_TOLERANCE:.0e})"
        )
    log(f"parity checks took {time.perf_counter() - started:.1f} s")
    failed = {k: v for k, v in fp32.items() if not v.scaled <= parity.FP32_TOLERANCE}
    if failed:
        raise ParityError(
            f"exported graphs differ from PyTorch beyond {parity.FP32_TOLERANCE:.0e}: "
            + ", ".join(f"{k} {v.max_abs:.2e}" for k, v in failed.items())
            + "; the bundle was not written"
        )
    return fp32


def _reduced_precision(
    graphs: dict[str, torch2onnx.ExportedGraph],
    options: ExportOptions,
    calibration_data: tuple[PreparedDataset, list[str]] | None,
    log: Callable[[str], None],
) -> tuple[dict[str, dict[str, str]], dict[str, Any]]:
    """The FP16 and INT8 variants asked for: file names per graph and precision, and how each was made."""
    files: dict[str, dict[str, str]] = {name: {"fp32": g.path.name} for name, g in graphs.items()}
    recipes: dict[str, Any] = {}
    if options.fp16:
        for name, graph in graphs.items():
            target = graph.path.with_name(f"{name}.fp16.onnx")
            precision.convert_fp16(graph.path, target)
            files[name]["fp16"] = target.name
        recipes["fp16"] = {
            "tool": "onnxruntime.transformers.float16",
            "float32_ops": list(precision.FP16_BLOCKED_OPS),
            "io": "float32",
            "checked_with": "onnx.checker (full type inference) and onnxruntime CPUExecutionProvider, which runs "
            "float16 operators lacking CPU float16 kernels in float32 between float16 tensors",
        }
        log("built FP16 variants")
    if options.int8:
        assert calibration_data is not None  # --int8 without --calib was refused before
        dataset, trials = calibration_data
        quantisable: dict[str, Path] = {role: graphs[role].path for role in ("visual", "vggish") if role in graphs}
        int8 = int8_variants.build_int8_variants(
            quantisable, dataset, trials, frames=options.calibration_frames, log=log
        )
        for role, per_form in int8.files.items():
            files[role].update(per_form)
        recipes.update(int8.recipes)
    return files, recipes


def export_bundle(
    arguments: Sequence[str | Path],
    output: str | Path,
    *,
    options: ExportOptions,
    log: Callable[[str], None] = lambda _: None,
) -> ExportResult:
    """Export fold checkpoints (files or run directories) into a bundle directory at ``output``.

    Raises:
        InvalidInputError: bad arguments (nothing to export, malformed or mixed checkpoint metadata, duplicate models,
            ``--int8`` without ``--calib``, an existing output without ``--force``, an output that is not a bundle
            or is an input, an unsupported face detector, VGGish weights that do not match).
        ParityError: an FP32 graph differs from PyTorch by more than the tolerance.
        EdgeaffError: other export failures, with the reason.
    """
    out = Path(output)
    request = _check_request(arguments, out, options)
    spec, dataset = request.spec, request.dataset
    removed = bundle.remove_stale_staging(out)
    if removed:
        names = ", ".join(p.name for p in removed)
        log(f"removed {len(removed)} unfinished export folder(s) that a killed export left: {names}")
    log(f"exporting {len(request.checkpoints)} model(s): {', '.join(s.label for s in request.checkpoints)}")
    loaded = [load_checkpoint(s.path) for s in request.checkpoints]
    models = [model for model, _ in loaded]
    metadata = [meta for _, meta in loaded]
    normalizations = [meta.normalization for meta in metadata]
    audio = any(m.config.multimodal for m in models)
    vggish_model, vggish_info = resolve_vggish(spec.vggish, options.vggish_weights) if audio else (None, None)
    calibration_trials, evaluation_trials = calibration.split_trials(dataset) if dataset is not None else ([], [])
    evaluation = (dataset, evaluation_trials) if dataset is not None else None
    if dataset is not None:
        calibration.check_labelled(dataset, evaluation_trials)

    with bundle.staging_directory(out) as staging:
        graph_set = torch2onnx.build_graphs(
            models,
            normalizations,
            feature_spec=spec,
            vggish=vggish_model,
            directory=staging,
            opset=options.opset,
            log=log,
        )
        graphs = graph_set.graphs
        log(f"exported FP32 graphs: {', '.join(graphs)}; shared trunk: {graph_set.trunks.shared}")
        inputs = _parity_inputs(evaluation, spec, normalizations, frames=options.parity_frames, audio=audio)
        window_embeddings = _window_embeddings(graphs["visual"].path, inputs, len(models), spec.window.length)
        fp32 = _fp32_parity(
            graph_set,
            models,
            normalizations,
            inputs=inputs,
            window_embeddings=window_embeddings,
            spec=spec,
            vggish=vggish_model,
            log=log,
        )
        calibration_data = (dataset, calibration_trials) if dataset is not None else None
        files, recipes = _reduced_precision(graphs, options, calibration_data, log)
        started = time.perf_counter()
        quality = _variant_quality(
            staging,
            files=files,
            inputs=inputs,
            window_embeddings=window_embeddings,
            evaluation=evaluation,
            dimensions=[m.dimension for m in metadata],
            spec=spec,
            options=options,
            audio=audio,
            state_size=graph_set.state_size,
        )
        if quality:
            log(f"precision comparisons took {time.perf_counter() - started:.1f} s")
        face_detector = add_face_detector(staging, source=options.face_detector)
        assert face_detector.source is not None
        log(f"added the face detector ({face_detector.source.origin})")
        manifest = build_manifest(
            staging,
            sources=request.checkpoints,
            metadata=metadata,
            feature_spec=spec,
            graph_set=graph_set,
            files=files,
            vggish=vggish_info,
            face_detector=face_detector,
            parity={
                "fp32_vs_pytorch": {k: v.to_dict() for k, v in fp32.items()},
                "tolerance": parity.FP32_TOLERANCE,
                "tolerance_rule": "max_abs / max(1, reference_max_abs) <= tolerance",
                "inputs": inputs.source,
                **quality,
            },
            recipes=recipes,
            versions=versions(EXPORT_LIBRARIES),
            created=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        )
        bundle.write_manifest(staging, manifest)
        bundle.publish(staging, out, force=options.force)
    return ExportResult(out, manifest)


def _variant_quality(
    directory: Path,
    *,
    files: dict[str, dict[str, str]],
    inputs: ParityInputs,
    window_embeddings: np.ndarray,
    evaluation: tuple[PreparedDataset, list[str]] | None,
    dimensions: Sequence[str],
    spec: FeatureSpec,
    options: ExportOptions,
    audio: bool,
    state_size: int,
) -> dict[str, Any]:
    """Max abs difference of every reduced-precision graph against FP32 on the parity inputs, and CCC figures."""
    variants = sorted({p for per_graph in files.values() for p in per_graph} - {"fp32"})
    if not variants:
        return {}
    report: dict[str, Any] = {}
    for variant in variants:
        differences = {}
        for name, per_graph in files.items():
            if variant not in per_graph:
                continue
            differences[name] = _max_abs_between(
                directory / per_graph["fp32"],
                directory / per_graph[variant],
                name=name,
                inputs=inputs,
                window_embeddings=window_embeddings,
                state_size=state_size,
            )
        report[f"{variant}_max_abs_vs_fp32"] = differences
    if evaluation is not None:
        dataset, trials = evaluation
        log_mel: dict[str, np.ndarray] = {}
        audio_source = "the prepared VGGish features (the VGGish graphs are not part of this comparison)"
        if audio and "vggish" in files:
            log_mel, why = int8_variants.audio_examples_for(
                dataset,
                trials,
                directory / files["vggish"]["fp32"],
                frames_per_trial=options.evaluation_frames_per_trial,
            )
            if log_mel:
                audio_source = "log-mel examples re-computed from the raw audio, through each precision's VGGish graph"
            else:
                audio_source += f": {why}"

        def chosen(role: str, p: str) -> Path:
            return directory / files[role].get(p, files[role]["fp32"])

        paths = {
            p: accuracy.GraphPaths(chosen("visual", p), chosen("temporal", p), chosen("vggish", p) if log_mel else None)
            for p in ["fp32", *variants]
        }
        report["ccc"] = accuracy.compare_variants(
            paths,
            dataset,
            trials,
            dimensions=dimensions,
            window=spec.window.length,
            hop=spec.window.hop,
            frames_per_trial=options.evaluation_frames_per_trial,
            audio=audio,
            log_mel=log_mel or None,
        )
        report["ccc"]["runtime"] = "onnxruntime CPUExecutionProvider"
        report["ccc"]["audio_features"] = audio_source
    return report


def _max_abs_between(
    reference: Path,
    variant: Path,
    *,
    name: str,
    inputs: ParityInputs,
    window_embeddings: np.ndarray,
    state_size: int,
) -> float:
    feed: dict[str, np.ndarray]
    if name == "visual":
        feed = {"frames": inputs.frames}
    elif name == "vggish":
        feed = {"log_mel": inputs.log_mel}
    else:
        feed = {"embeddings": window_embeddings}
        if inputs.vggish is not None and inputs.mfcc is not None:
            feed |= {"vggish": inputs.vggish, "mfcc": inputs.mfcc}
        if name == "temporal_stream":
            feed["state"] = np.zeros((1, state_size), np.float32)
    results = []
    for path in (reference, variant):
        with accuracy.OrtRunner(path) as runner:
            results.append(next(iter(runner.infer(feed).values())))
    return float(np.abs(results[0] - results[1]).max())
