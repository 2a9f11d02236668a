"""The issue's end-to-end check: a converted reference IR-50 (abaw2) model, exported, run through ONNX Runtime
(visual graph → temporal graph), against the independent float64 implementation; plus the streaming graph."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
import reference_numpy as rn
import torch
from helpers import to_numpy64

from edgeaff.export.parity import run_stream
from edgeaff.export.precision import convert_fp16
from edgeaff.runtime.artifacts.bundle import load_bundle, zero_stream_state
from edgeaff.runtime.artifacts.manifest import TensorEntry
from edgeaff.runtime.backends.ort import OrtRunner
from edgeaff.runtime.spec import AudioNormalization, ScalarStats

pytestmark = pytest.mark.slow  # exports real graphs: tens of seconds per bundle (built once per session)

TOLERANCE = 1e-4  # float32 ONNX Runtime vs float64 numpy, outputs of magnitude ~1
STREAM_TOLERANCE = 1e-5  # two float32 computations of the same causal convolutions
MFCC_STATS, VGGISH_STATS = (0.5, 2.0), (-0.105, 0.4476)


def _raw_audio(rng: np.random.Generator, length: int) -> tuple[np.ndarray, np.ndarray]:
    vggish = rng.normal(VGGISH_STATS[0], VGGISH_STATS[1], (1, length, 128)).astype(np.float32)
    mfcc = rng.normal(MFCC_STATS[0], MFCC_STATS[1], (1, length, 39)).astype(np.float32)
    return vggish, mfcc


def test_onnx_runtime_matches_float64_reference(reference_export: tuple[dict[str, torch.Tensor], Path]) -> None:
    state, path = reference_export
    bundle = load_bundle(path)
    rng = np.random.default_rng(7)
    frames = rng.integers(0, 256, (6, 48, 48, 3), dtype=np.uint8)
    vggish, mfcc = _raw_audio(rng, 6)
    with OrtRunner(bundle.graphs["visual"].file()) as visual:
        embeddings = visual.infer({"frames": frames})["embeddings"]
    with OrtRunner(bundle.graphs["temporal"].file()) as temporal:
        ours = temporal.infer({"embeddings": embeddings[None], "vggish": vggish, "mfcc": mfcc})["predictions"]

    crops = frames[:, 4:44, 4:44, :].astype(np.float64).transpose(0, 3, 1, 2)
    scaled = (crops / 255.0 - 0.5) / 0.5
    v = (vggish.astype(np.float64) - VGGISH_STATS[0]) / VGGISH_STATS[1]
    m = (mfcc.astype(np.float64) - MFCC_STATS[0]) / MFCC_STATS[1]
    expected = rn.multimodal(scaled[None], v, m, to_numpy64(state))
    assert ours.shape == (1, 6, 1)
    assert np.abs(ours[..., 0] - expected).max() < TOLERANCE
    assert np.abs(expected).max() > 0.1


def test_manifest_of_the_reference_bundle(reference_export: tuple[dict[str, torch.Tensor], Path]) -> None:
    _, path = reference_export
    bundle = load_bundle(path)
    manifest = bundle.manifest
    (model,) = bundle.models
    assert (model.fold, model.dimension, model.kind, model.fusion) == (2, "arousal", "multimodal", "abaw2")
    assert model.normalization == AudioNormalization(mfcc=ScalarStats(0.5, 2.0), vggish=ScalarStats(-0.105, 0.4476))
    assert model.checkpoint.provenance["source"] == "reference-conversion"
    assert manifest.vggish is not None and manifest.vggish.source == "random:0" and len(manifest.vggish.sha256) == 64
    assert [role for role, _ in manifest.graphs.items()] == [
        "visual",
        "vggish",
        "temporal",
        "temporal_stream",
        "face_detector",
    ]
    assert bundle.shared_trunk is False and bundle.embedding_dim == 512
    for name, agreement in manifest.parity["fp32_vs_pytorch"].items():
        assert agreement["scaled"] <= 1e-4, name
    assert [t.name for t in manifest.graphs.temporal.inputs] == ["embeddings", "vggish", "mfcc"]
    assert manifest.graphs.vggish is not None
    assert manifest.graphs.vggish.inputs[0] == TensorEntry("log_mel", ("examples", 96, 64), "float32")
    detector = bundle.face_detector
    assert detector is not None and detector.detector_spec is not None and detector.spec_file is not None


def test_stream_from_zero_state_equals_the_window(reference_export: tuple[dict[str, torch.Tensor], Path]) -> None:
    _, path = reference_export
    bundle = load_bundle(path)
    rng = np.random.default_rng(8)
    length = 300
    embeddings = rng.normal(0, 1, (1, length, 1, 512)).astype(np.float32)
    embeddings /= np.linalg.norm(embeddings, axis=-1, keepdims=True)
    vggish, mfcc = _raw_audio(rng, length)
    with OrtRunner(bundle.graphs["temporal"].file()) as temporal:
        window = temporal.infer({"embeddings": embeddings, "vggish": vggish, "mfcc": mfcc})["predictions"]
    state = zero_stream_state(bundle)
    assert state.shape == (1, bundle.streaming.state_size)
    assert state.shape[1] == sum(s.channels * s.steps for s in bundle.streaming.segments)
    streamed, _ = run_stream(
        bundle.graphs["temporal_stream"].file(), embeddings, vggish, mfcc, state_size=state.shape[1], chunks=(1, 7, 50)
    )
    assert np.abs(streamed - window).max() < STREAM_TOLERANCE


def test_long_stream_equals_any_window_once_the_receptive_field_is_filled(
    reference_export: tuple[dict[str, torch.Tensor], Path],
) -> None:
    _, path = reference_export
    bundle = load_bundle(path)
    field = bundle.streaming.receptive_field
    assert field == 121
    rng = np.random.default_rng(9)
    length, start = 420, 150
    embeddings = rng.normal(0, 1, (1, length, 1, 512)).astype(np.float32)
    embeddings /= np.linalg.norm(embeddings, axis=-1, keepdims=True)
    vggish, mfcc = _raw_audio(rng, length)
    size = bundle.streaming.state_size
    streamed, _ = run_stream(
        bundle.graphs["temporal_stream"].file(), embeddings, vggish, mfcc, state_size=size, chunks=(1,) * 3 + (16,)
    )
    with OrtRunner(bundle.graphs["temporal"].file()) as temporal:
        window = temporal.infer(
            {"embeddings": embeddings[:, start:], "vggish": vggish[:, start:], "mfcc": mfcc[:, start:]}
        )["predictions"]
    filled = field - 1  # the first output whose whole history lies inside the window
    assert np.abs(streamed[:, start + filled :] - window[:, filled:]).max() < STREAM_TOLERANCE
    # Before that the window's zero padding shows: the comparison above is not vacuous.
    assert np.abs(streamed[:, start : start + 10] - window[:, :10]).max() > 1e-3


def test_fp16_keeps_layernorm_and_softmax_in_float32(
    reference_export: tuple[dict[str, torch.Tensor], Path], tmp_path: Path
) -> None:
    _, path = reference_export
    bundle = load_bundle(path)
    target = tmp_path / "temporal.fp16.onnx"
    convert_fp16(bundle.graphs["temporal"].file(), target)
    model = onnx.shape_inference.infer_shapes(onnx.load(str(target)), strict_mode=True)
    types = {v.name: v.type.tensor_type.elem_type for v in [*model.graph.value_info, *model.graph.input]}
    sensitive = [n for n in model.graph.node if n.op_type in ("LayerNormalization", "Softmax")]
    assert len(sensitive) == 2
    for node in sensitive:
        assert types[node.input[0]] == onnx.TensorProto.FLOAT, node.name
    convs = [n for n in model.graph.node if n.op_type == "Conv"]
    assert convs and all(types.get(n.output[0]) == onnx.TensorProto.FLOAT16 for n in convs)
    assert all(
        v.type.tensor_type.elem_type == onnx.TensorProto.FLOAT for v in [*model.graph.input, *model.graph.output]
    )
    rng = np.random.default_rng(10)
    embeddings = rng.normal(0, 0.05, (1, 64, 1, 512)).astype(np.float32)
    vggish, mfcc = _raw_audio(rng, 64)
    feed = {"embeddings": embeddings, "vggish": vggish, "mfcc": mfcc}
    with OrtRunner(bundle.graphs["temporal"].file()) as full, OrtRunner(target) as half:
        reference, reduced = full.infer(feed)["predictions"], half.infer(feed)["predictions"]
    assert np.abs(reference - reduced).max() < 2e-2 * max(1.0, float(np.abs(reference).max()))
