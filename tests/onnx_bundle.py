"""Tiny but real bundles built with ``onnx.helper`` only (no torch), for runtime and pipeline tests.

:func:`build_bundle` writes a bundle directory that :func:`edgeaff.runtime.artifacts.bundle.load_bundle` accepts:
real ONNX graphs with the tensor names, shapes and dtypes of an exported bundle, and a manifest written through the
typed schema (:class:`edgeaff.runtime.artifacts.manifest.Manifest`). The graphs are small enough to run in
milliseconds and simple enough to check against numpy (:class:`TinyBundle` carries the weights and a numpy
reference of every graph):

* ``visual``: uint8 crops (N, S, S, 3) → centre crop to the feature spec's crop size, ``(x/255 - 0.5)/0.5``, one
  Gemm for all models, tanh → embeddings (N, M, E);
* ``vggish`` (when a model is multimodal): log-mel (N, 96, 64) → mean over time → Gemm → (N, 128);
* ``temporal``: per model, the frame's features (its embedding, and for a multimodal model the raw VGGish and MFCC
  normalised with that model's statistics) go through a causal convolution over time of kernel K (zero history
  before the window's first frame), then a per-model head ``a·tanh(y) + c`` → predictions (B, L, M);
* ``temporal_stream``: the same with explicit state, the last K-1 frames of convolution inputs, zeros at the start.
  A stream started from zeros therefore equals the windowed graph on a window starting at the same frame, and
  after K frames every output equals any window's output that has seen K frames (receptive field K);
* ``face_detector`` (optional): the shipped BlazeFace converted by the exporter's torch-free converter (needs the
  ``onnx`` and ``tflite`` packages);
* FP16 variants (every graph) and INT8 variants (the visual graph in ONNX Runtime's two CPU forms and TensorRT's
  form) made with the exporter's own torch-free precision tools, when ``precisions`` asks for them.

Example::

    built = build_bundle(tmp_path, models=[(0, "valence"), (0, "arousal")], multimodal=True)
    bundle = load_bundle(built.path)
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from edgeaff.export.bundle import graph_entry, publish, staging_directory, write_manifest
from edgeaff.export.manifest import graph_descriptions
from edgeaff.runtime.artifacts.manifest import (
    CheckpointEntry,
    Dimension,
    GraphEntries,
    GraphEntry,
    Manifest,
    ModelEntry,
    ModelKind,
    Precision,
    StateSegment,
    StreamingEntry,
    TensorEntry,
    VggishEntry,
    VisualEntry,
)
from edgeaff.runtime.spec import AudioNormalization, FeatureSpec, ScalarStats

OPSET = 18
DEFAULT_MODELS: tuple[tuple[int | None, str], ...] = ((0, "valence"), (1, "valence"), (0, "arousal"))
ModelLike = tuple[int | None, str] | tuple[int | None, str, str]


@dataclasses.dataclass(frozen=True)
class TinyWeights:
    """Every parameter of the tiny graphs (float32), for numpy references."""

    visual_w: np.ndarray  # (C*C*3, M*E)
    visual_b: np.ndarray  # (M*E,)
    vggish_w: np.ndarray | None  # (mel_bins, D)
    vggish_b: np.ndarray | None  # (D,)
    conv_w: np.ndarray  # (M, W, K): per model, input channel, tap (tap K-1 reads the current frame)
    conv_b: np.ndarray  # (M,)
    head_a: np.ndarray  # (M,)
    head_c: np.ndarray  # (M,)
    audio_mean: np.ndarray  # (M, D+Kmf): per model, the mean subtracted from [vggish | mfcc]
    audio_std: np.ndarray  # (M, D+Kmf)
    audio_mask: np.ndarray  # (M, 1): 1 for multimodal models, 0 for unimodal ones (they ignore audio)


@dataclasses.dataclass(frozen=True)
class TinyBundle:
    """A built bundle: its directory, manifest, weights and numpy references of its graphs."""

    path: Path
    manifest: Manifest
    weights: TinyWeights
    spec: FeatureSpec
    kernel: int

    @property
    def models(self) -> tuple[ModelEntry, ...]:
        """The manifest's models."""
        return self.manifest.models

    @property
    def normalizations(self) -> tuple[AudioNormalization | None, ...]:
        """Each model's audio statistics (``None`` for a unimodal model), in manifest order."""
        return tuple(model.normalization for model in self.models)

    @property
    def receptive_field(self) -> int:
        """Frames of history one prediction depends on: the convolution's length K."""
        return self.kernel

    @property
    def multimodal(self) -> bool:
        """Whether the temporal graphs take audio."""
        return self.weights.vggish_w is not None

    def visual(self, frames: np.ndarray) -> np.ndarray:
        """numpy reference of the visual graph: (N, S, S, 3) uint8 → (N, M, E) float64."""
        face = self.spec.face
        o, c = face.crop_offset, face.crop_size
        crop = frames[:, o : o + c, o : o + c, :].astype(np.float64)
        x = ((crop / 255.0 - face.scale_mean) / face.scale_std).reshape(len(frames), -1)
        out = np.tanh(x @ self.weights.visual_w.astype(np.float64) + self.weights.visual_b)
        return out.reshape(len(frames), len(self.models), -1)

    def vggish(self, log_mel: np.ndarray) -> np.ndarray:
        """numpy reference of the VGGish stand-in: (N, F, B) → (N, D) float64."""
        assert self.weights.vggish_w is not None and self.weights.vggish_b is not None
        return log_mel.astype(np.float64).mean(axis=1) @ self.weights.vggish_w + self.weights.vggish_b

    def temporal(
        self, embeddings: np.ndarray, vggish: np.ndarray | None = None, mfcc: np.ndarray | None = None
    ) -> np.ndarray:
        """numpy reference of the windowed temporal graph on one window: (L, M, E) [+ (L, D), (L, K)] → (L, M)."""
        w = self.weights
        length, count = embeddings.shape[0], embeddings.shape[1]
        features = [embeddings.astype(np.float64)]
        if self.multimodal:
            assert vggish is not None and mfcc is not None
            audio = np.concatenate([vggish, mfcc], axis=1).astype(np.float64)[:, None, :]
            features.append((audio - w.audio_mean) / w.audio_std * w.audio_mask)
        f = np.concatenate(features, axis=2)  # (L, M, W)
        k = self.kernel
        history = np.concatenate([np.zeros((k - 1, *f.shape[1:])), f])  # zeros before the window's first frame
        out = np.zeros((length, count))
        for tap in range(k):  # tap k-1 reads frame t itself, tap 0 reads frame t-(k-1)
            out += np.einsum("lmw,mw->lm", history[tap : tap + length], w.conv_w[:, :, tap].astype(np.float64))
        out += w.conv_b
        return w.head_a * np.tanh(out) + w.head_c


def _model_specs(models: Sequence[ModelLike] | int, multimodal: bool) -> list[tuple[int | None, Dimension, ModelKind]]:
    default_kind = ModelKind.MULTIMODAL if multimodal else ModelKind.UNIMODAL
    if isinstance(models, int):
        models = [(i, "valence") for i in range(models)]
    specs = []
    for entry in models:
        fold, dimension = entry[0], Dimension.parse(entry[1])
        kind = ModelKind.parse(entry[2]) if len(entry) == 3 else default_kind
        specs.append((fold, dimension, kind))
    return specs


def _tensor(name: str, elem: int, shape: Sequence[int | str]) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(name, elem, list(shape))


def _const(name: str, value: np.ndarray) -> onnx.TensorProto:
    return numpy_helper.from_array(np.asarray(value), name)


def _save(nodes: list, name: str, inputs: list, outputs: list, initializers: list, path: Path) -> None:
    graph = helper.make_graph(nodes, name, inputs, outputs, initializer=initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="tests.onnx_bundle")
    model.ir_version = 8
    onnx.checker.check_model(model, full_check=True)
    onnx.save(model, str(path))


def _visual_graph(path: Path, spec: FeatureSpec, w: TinyWeights, count: int, width: int) -> tuple[list, list]:
    face = spec.face
    o, c, s = face.crop_offset, face.crop_size, face.image_size
    nodes = [
        helper.make_node("Slice", ["frames", "crop_start", "crop_end", "crop_axes"], ["crop"]),
        helper.make_node("Cast", ["crop"], ["crop_f"], to=TensorProto.FLOAT),
        helper.make_node("Div", ["crop_f", "c255"], ["unit"]),
        helper.make_node("Sub", ["unit", "scale_mean"], ["centred"]),
        helper.make_node("Div", ["centred", "scale_std"], ["scaled"]),
        helper.make_node("Reshape", ["scaled", "flat_shape"], ["flat"]),
        helper.make_node("Gemm", ["flat", "visual_w", "visual_b"], ["projected"]),
        helper.make_node("Tanh", ["projected"], ["activated"]),
        helper.make_node("Reshape", ["activated", "out_shape"], ["embeddings"]),
    ]
    initializers = [
        _const("crop_start", np.array([o, o], np.int64)),
        _const("crop_end", np.array([o + c, o + c], np.int64)),
        _const("crop_axes", np.array([1, 2], np.int64)),
        _const("c255", np.array(255.0, np.float32)),
        _const("scale_mean", np.array(face.scale_mean, np.float32)),
        _const("scale_std", np.array(face.scale_std, np.float32)),
        _const("flat_shape", np.array([-1, c * c * 3], np.int64)),
        _const("visual_w", w.visual_w),
        _const("visual_b", w.visual_b),
        _const("out_shape", np.array([-1, count, width], np.int64)),
    ]
    inputs = [TensorEntry("frames", ("frames", s, s, 3), "uint8")]
    outputs = [TensorEntry("embeddings", ("frames", count, width), "float32")]
    _save(
        nodes,
        "visual",
        [_tensor("frames", TensorProto.UINT8, inputs[0].shape)],
        [_tensor("embeddings", TensorProto.FLOAT, outputs[0].shape)],
        initializers,
        path,
    )
    return inputs, outputs


def _vggish_graph(path: Path, spec: FeatureSpec, w: TinyWeights) -> tuple[list, list]:
    v = spec.vggish
    nodes = [
        helper.make_node("ReduceMean", ["log_mel", "time_axis"], ["mean"], keepdims=0),
        helper.make_node("Gemm", ["mean", "vggish_w", "vggish_b"], ["vggish"]),
    ]
    assert w.vggish_w is not None and w.vggish_b is not None
    initializers = [
        _const("time_axis", np.array([1], np.int64)),
        _const("vggish_w", w.vggish_w),
        _const("vggish_b", w.vggish_b),
    ]
    inputs = [TensorEntry("log_mel", ("examples", v.example_frames, v.mel_bins), "float32")]
    outputs = [TensorEntry("vggish", ("examples", v.embedding_dim), "float32")]
    _save(
        nodes,
        "vggish",
        [_tensor("log_mel", TensorProto.FLOAT, inputs[0].shape)],
        [_tensor("vggish", TensorProto.FLOAT, outputs[0].shape)],
        initializers,
        path,
    )
    return inputs, outputs


def _features(w: TinyWeights, multimodal: bool) -> tuple[list, list]:
    """Nodes turning the inputs into F (B, T, M, W): embeddings [| normalised, masked vggish | mfcc]."""
    if not multimodal:
        return [helper.make_node("Identity", ["embeddings"], ["features"])], []
    nodes = [
        helper.make_node("Concat", ["vggish", "mfcc"], ["audio"], axis=-1),
        helper.make_node("Unsqueeze", ["audio", "model_axis"], ["audio_1"]),
        helper.make_node("Sub", ["audio_1", "audio_mean"], ["audio_c"]),
        helper.make_node("Div", ["audio_c", "audio_std"], ["audio_n"]),
        helper.make_node("Mul", ["audio_n", "audio_mask"], ["audio_m"]),
        helper.make_node("Concat", ["embeddings", "audio_m"], ["features"], axis=-1),
    ]
    initializers = [
        _const("model_axis", np.array([2], np.int64)),
        _const("audio_mean", w.audio_mean),
        _const("audio_std", w.audio_std),
        _const("audio_mask", w.audio_mask),
    ]
    return nodes, initializers


def _head(w: TinyWeights) -> tuple[list, list]:
    """(B, M, T) convolution output → predictions (B, T, M)."""
    nodes = [
        helper.make_node("Tanh", ["conv"], ["conv_t"]),
        helper.make_node("Mul", ["conv_t", "head_a"], ["scaled_out"]),
        helper.make_node("Add", ["scaled_out", "head_c"], ["heads"]),
        helper.make_node("Transpose", ["heads"], ["predictions"], perm=[0, 2, 1]),
    ]
    initializers = [_const("head_a", w.head_a[:, None]), _const("head_c", w.head_c[:, None])]
    return nodes, initializers


def _temporal_inputs(spec: FeatureSpec, count: int, width: int, multimodal: bool) -> list[TensorEntry]:
    inputs = [TensorEntry("embeddings", ("batch", "steps", count, width), "float32")]
    if multimodal:
        inputs += [
            TensorEntry("vggish", ("batch", "steps", spec.vggish.embedding_dim), "float32"),
            TensorEntry("mfcc", ("batch", "steps", spec.mfcc.dim), "float32"),
        ]
    return inputs


def _temporal_graph(path: Path, spec: FeatureSpec, w: TinyWeights, kernel: int, multimodal: bool) -> tuple[list, list]:
    count, channels = w.conv_w.shape[:2]
    width = w.visual_w.shape[1] // count
    feature_nodes, feature_init = _features(w, multimodal)
    head_nodes, head_init = _head(w)
    nodes = [
        *feature_nodes,
        helper.make_node("Transpose", ["features"], ["features_t"], perm=[0, 2, 3, 1]),
        helper.make_node("Reshape", ["features_t", "conv_in_shape"], ["conv_in"]),
        helper.make_node("Conv", ["conv_in", "conv_w", "conv_b"], ["conv"], group=count, pads=[kernel - 1, 0]),
        *head_nodes,
    ]
    initializers = [
        *feature_init,
        *head_init,
        _const("conv_in_shape", np.array([0, count * channels, -1], np.int64)),
        _const("conv_w", w.conv_w),
        _const("conv_b", w.conv_b),
    ]
    inputs = _temporal_inputs(spec, count, width, multimodal)
    outputs = [TensorEntry("predictions", ("batch", "steps", count), "float32")]
    _save(
        nodes,
        "temporal",
        [_tensor(t.name, TensorProto.FLOAT, t.shape) for t in inputs],
        [_tensor("predictions", TensorProto.FLOAT, outputs[0].shape)],
        initializers,
        path,
    )
    return inputs, outputs


def _stream_graph(path: Path, spec: FeatureSpec, w: TinyWeights, kernel: int, multimodal: bool) -> tuple[list, list]:
    count, channels = w.conv_w.shape[:2]
    width = w.visual_w.shape[1] // count
    state_size = count * channels * (kernel - 1)
    feature_nodes, feature_init = _features(w, multimodal)
    head_nodes, head_init = _head(w)
    nodes = [
        *feature_nodes,
        helper.make_node("Transpose", ["features"], ["features_t"], perm=[0, 2, 3, 1]),
        helper.make_node("Reshape", ["state", "history_shape"], ["history_steps"]),
        helper.make_node("Transpose", ["history_steps"], ["history"], perm=[0, 1, 3, 2]),
        helper.make_node("Concat", ["history", "features_t"], ["full"], axis=3),
        helper.make_node("Reshape", ["full", "conv_in_shape"], ["conv_in"]),
        helper.make_node("Conv", ["conv_in", "conv_w", "conv_b"], ["conv"], group=count),
        *head_nodes,
        helper.make_node("Slice", ["full", "keep_start", "keep_end", "time_axis"], ["kept"]),
        helper.make_node("Transpose", ["kept"], ["kept_steps"], perm=[0, 1, 3, 2]),
        helper.make_node("Reshape", ["kept_steps", "state_shape"], ["state_out"]),
    ]
    initializers = [
        *feature_init,
        *head_init,
        _const("history_shape", np.array([-1, count, kernel - 1, channels], np.int64)),
        _const("conv_in_shape", np.array([0, count * channels, -1], np.int64)),
        _const("conv_w", w.conv_w),
        _const("conv_b", w.conv_b),
        _const("keep_start", np.array([-(kernel - 1)], np.int64)),
        _const("keep_end", np.array([np.iinfo(np.int64).max], np.int64)),
        _const("time_axis", np.array([3], np.int64)),
        _const("state_shape", np.array([-1, state_size], np.int64)),
    ]
    inputs = [*_temporal_inputs(spec, count, width, multimodal), TensorEntry("state", ("batch", state_size), "float32")]
    outputs = [
        TensorEntry("predictions", ("batch", "steps", count), "float32"),
        TensorEntry("state_out", ("batch", state_size), "float32"),
    ]
    _save(
        nodes,
        "temporal_stream",
        [_tensor(t.name, TensorProto.FLOAT, t.shape) for t in inputs],
        [_tensor(t.name, TensorProto.FLOAT, t.shape) for t in outputs],
        initializers,
        path,
    )
    return inputs, outputs


def _weights(
    rng: np.random.Generator, spec: FeatureSpec, kinds: list[ModelKind], width: int, kernel: int, multimodal: bool
) -> tuple[TinyWeights, list[AudioNormalization | None]]:
    count = len(kinds)
    pixels = spec.face.crop_size**2 * 3
    audio_width = spec.vggish.embedding_dim + spec.mfcc.dim if multimodal else 0
    channels = width + audio_width
    normalizations: list[AudioNormalization | None] = []
    means, stds = np.zeros((count, audio_width)), np.ones((count, audio_width))
    for m, kind in enumerate(kinds):
        if kind is ModelKind.MULTIMODAL:
            stats = AudioNormalization(
                mfcc=ScalarStats(float(rng.uniform(-1, 1)), float(rng.uniform(2, 6))),
                vggish=ScalarStats(float(rng.uniform(-0.2, 0.2)), float(rng.uniform(0.3, 0.8))),
            )
            means[m, : spec.vggish.embedding_dim], stds[m, : spec.vggish.embedding_dim] = (
                stats.vggish.mean,
                stats.vggish.std,
            )
            means[m, spec.vggish.embedding_dim :], stds[m, spec.vggish.embedding_dim :] = (
                stats.mfcc.mean,
                stats.mfcc.std,
            )
            normalizations.append(stats)
        else:
            normalizations.append(None)
    mask = np.array([[1.0 if k is ModelKind.MULTIMODAL else 0.0] for k in kinds])
    conv_w = rng.normal(0.0, 1.0 / np.sqrt(channels * kernel), (count, channels, kernel))
    conv_w[:, width:, :] *= mask[:, :, None]  # unimodal models read no audio
    f32 = np.float32
    vggish_shape = (spec.vggish.mel_bins, spec.vggish.embedding_dim)
    weights = TinyWeights(
        visual_w=rng.normal(0.0, 2.0 / np.sqrt(pixels), (pixels, count * width)).astype(f32),
        visual_b=rng.normal(0.0, 0.1, count * width).astype(f32),
        vggish_w=rng.normal(0.0, 0.3, vggish_shape).astype(f32) if multimodal else None,
        vggish_b=rng.normal(0.0, 0.1, spec.vggish.embedding_dim).astype(f32) if multimodal else None,
        conv_w=conv_w.astype(f32),
        conv_b=rng.normal(0.0, 0.1, count).astype(f32),
        head_a=rng.uniform(0.5, 0.9, count).astype(f32),
        head_c=rng.normal(0.0, 0.05, count).astype(f32),
        audio_mean=means.astype(f32).reshape(count, audio_width),
        audio_std=stds.astype(f32).reshape(count, audio_width),
        audio_mask=mask.astype(f32),
    )
    return weights, normalizations


def _segments(kinds: list[ModelKind], channels: int, kernel: int) -> tuple[StateSegment, ...]:
    """The state is (M, K-1, W) row-major: per model, the last K-1 frames of its one convolution's W input channels
    (the embedding, then, in multimodal bundles, VGGish and MFCC), oldest first; one segment per model."""
    size = channels * (kernel - 1)
    return tuple(StateSegment(model, "visual", 0, 1, channels, kernel - 1, model * size) for model in range(len(kinds)))


def _digest(*arrays: np.ndarray) -> str:
    digest = hashlib.sha256()
    for array in arrays:
        digest.update(np.ascontiguousarray(array).tobytes())
    return digest.hexdigest()


def build_bundle(
    directory: Path,
    *,
    models: Sequence[ModelLike] | int = DEFAULT_MODELS,
    multimodal: bool = True,
    precisions: Sequence[Precision | str] = ("fp32",),
    fp16_roles: Sequence[str] | None = None,
    face_detector: bool = False,
    embedding_dim: int = 8,
    kernel: int = 4,
    spec: FeatureSpec | None = None,
    seed: int = 0,
    name: str = "bundle",
) -> TinyBundle:
    """Write a tiny bundle to ``directory / name`` (see the module docstring) and return it.

    Args:
        directory: where the bundle directory goes (e.g. pytest's ``tmp_path``).
        models: ``(fold, dimension)`` or ``(fold, dimension, kind)`` per model, in manifest order; or a count of
            valence models.
        multimodal: the kind of models given without one (multimodal models read VGGish and MFCC).
        precisions: ``fp32`` and optionally ``fp16`` (every graph) and ``int8`` (the visual graph, all three forms).
        fp16_roles: the graphs that get an FP16 variant (default: every graph); the others fall back to FP32.
        face_detector: ship the converted BlazeFace (needs ``onnx`` and ``tflite``; no torch).
        embedding_dim: E, the width of each model's embedding.
        kernel: K, the causal convolution's length (>= 2); the receptive field.
        spec: the feature spec (default: the reference's).
        seed: weights seed.
        name: the bundle directory's name.
    """
    from edgeaff.export import precision as precision_tools

    if kernel < 2:
        raise ValueError("kernel must be at least 2 (the stream keeps kernel - 1 frames)")
    spec = spec or FeatureSpec()
    entries = _model_specs(models, multimodal)
    kinds = [kind for _, _, kind in entries]
    audio = any(kind is ModelKind.MULTIMODAL for kind in kinds)
    wanted = [Precision.parse(p) for p in precisions]
    rng = np.random.default_rng(seed)
    weights, normalizations = _weights(rng, spec, kinds, embedding_dim, kernel, audio)
    count = len(entries)
    channels = weights.conv_w.shape[1]
    output = Path(directory) / name
    with staging_directory(output) as staging:
        tensors = {
            "visual": _visual_graph(staging / "visual.onnx", spec, weights, count, embedding_dim),
            "temporal": _temporal_graph(staging / "temporal.onnx", spec, weights, kernel, audio),
            "temporal_stream": _stream_graph(staging / "temporal_stream.onnx", spec, weights, kernel, audio),
        }
        if audio:
            tensors["vggish"] = _vggish_graph(staging / "vggish.onnx", spec, weights)
        files = {role: {"fp32": f"{role}.onnx"} for role in tensors}
        recipes = {}
        if Precision.FP16 in wanted:
            for role in tensors if fp16_roles is None else fp16_roles:
                precision_tools.convert_fp16(staging / f"{role}.onnx", staging / f"{role}.fp16.onnx")
                files[role]["fp16"] = f"{role}.fp16.onnx"
            recipes["fp16"] = {"tool": "edgeaff.export.precision.convert_fp16"}
        if Precision.INT8 in wanted:
            size = spec.face.image_size
            batches = [rng.integers(0, 256, (8, size, size, 3), dtype=np.uint8) for _ in range(4)]
            for form in precision_tools.INT8_FORMS:
                target = staging / f"visual.{form.file_suffix}.onnx"  # the exporter's names
                recipes[form.key] = precision_tools.quantize_int8(
                    staging / "visual.onnx", target, input_name="frames", batches=batches, form=form
                )
                files["visual"][form.key] = target.name
        descriptions = graph_descriptions(spec)
        graphs: dict[str, GraphEntry | None] = {
            role: graph_entry(
                staging, description=descriptions[role], inputs=inputs, outputs=outputs, files=files[role], opset=OPSET
            )
            for role, (inputs, outputs) in tensors.items()
        }
        if face_detector:
            from edgeaff.export.detector_bundle import add_face_detector

            graphs["face_detector"] = add_face_detector(staging)
        model_entries = tuple(
            ModelEntry(
                index=m,
                fold=fold,
                dimension=dimension,
                kind=kind,
                fusion="paper" if kind is ModelKind.MULTIMODAL else None,
                backbone="onnx-tiny",
                receptive_field=kernel,
                checkpoint=CheckpointEntry(
                    file=f"fold{'-' if fold is None else fold}_{dimension}_{kind}.safetensors",
                    sha256=_digest(weights.conv_w[m], weights.conv_b[m : m + 1]),
                    weights_sha256=_digest(weights.conv_w[m]),
                    created="2026-01-01T00:00:00+00:00",
                    provenance={"built_by": "tests/onnx_bundle.py", "seed": seed},
                ),
                metrics={},
                normalization=normalizations[m],
            )
            for m, (fold, dimension, kind) in enumerate(entries)
        )
        slices = [weights.visual_w[:, m * embedding_dim : (m + 1) * embedding_dim] for m in range(count)]
        manifest = Manifest(
            created="2026-01-01T00:00:00+00:00",
            versions={"built_by": "tests/onnx_bundle.py"},
            models=model_entries,
            feature_spec=spec,
            visual=VisualEntry(
                shared_trunk=False,
                trunk_groups=tuple((m,) for m in range(count)),
                trunk_sha256=tuple(_digest(s) for s in slices),
                trunk_units=0,
                embedding_dim=embedding_dim,
            ),
            vggish=VggishEntry(source=f"onnx-tiny:{seed}", sha256=_digest(weights.vggish_w)) if audio else None,
            streaming=StreamingEntry(
                state_input="state",
                state_output="state_out",
                state_size=count * channels * (kernel - 1),
                receptive_field=kernel,
                segments=_segments(kinds, channels, kernel),
            ),
            graphs=GraphEntries(**graphs),
            precisions=tuple(p for p in Precision if p in wanted or p is Precision.FP32),
            precision_recipes=recipes,
            parity={"built_by": "tests/onnx_bundle.py: no PyTorch models to compare with"},
        )
        write_manifest(staging, manifest)
        publish(staging, output, force=True)
    return TinyBundle(output, manifest, weights, spec, kernel)
