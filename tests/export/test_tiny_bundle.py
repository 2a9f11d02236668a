"""A three-fold ir-tiny bundle with FP16 and INT8 variants: manifest, runtime parity, shared trunk, precisions."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from export_support import TINY_ENTRIES

from edgeaff.export import visual_graph
from edgeaff.export.parity import preprocess_frames
from edgeaff.export.torch2onnx import export_module
from edgeaff.runtime.artifacts.bundle import load_bundle
from edgeaff.runtime.artifacts.manifest import Dimension, ModelKind, Precision, TensorEntry
from edgeaff.runtime.artifacts.prepared import load_prepared_dataset
from edgeaff.runtime.backends.ort import OrtRunner
from edgeaff.runtime.files import sha256_file
from edgeaff.runtime.spec import FaceSpec

pytestmark = pytest.mark.slow  # exports real graphs: tens of seconds per bundle (built once per session)

TOLERANCE = 1e-4  # ONNX Runtime float32 vs PyTorch float32
SHARED_TOLERANCE = 1e-5  # shared-trunk graph vs per-fold graph: the same float32 arithmetic


def test_manifest_describes_the_bundle(tiny_bundle: Path, tiny_set) -> None:
    _, paths = tiny_set
    bundle = load_bundle(tiny_bundle)
    manifest = bundle.manifest
    assert manifest.schema_version == 3
    assert [(m.fold, m.dimension) for m in bundle.models] == TINY_ENTRIES
    assert all(m.kind is ModelKind.UNIMODAL for m in bundle.models) and bundle.models[2].dimension is Dimension.AROUSAL
    assert [m.checkpoint.sha256 for m in bundle.models] == [sha256_file(p) for p in paths]
    assert manifest.models[1].metrics == {"ccc": pytest.approx(0.41)}
    assert bundle.shared_trunk is True and manifest.visual.trunk_groups == ((0, 1, 2),)
    assert bundle.embedding_dim == 64
    assert set(bundle.graphs) == {"visual", "temporal", "temporal_stream", "face_detector"}  # unimodal: no VGGish
    assert bundle.precisions == (Precision.FP32, Precision.FP16, Precision.INT8)
    assert set(manifest.graphs.visual.variants) == {"fp32", "fp16", "int8", "int8_avx2", "int8_trt"}
    assert set(manifest.graphs.temporal.variants) == {"fp32", "fp16"}
    assert manifest.graphs.visual.inputs == (TensorEntry("frames", ("frames", 48, 48, 3), "uint8"),)
    assert manifest.graphs.visual.outputs[0].shape == ("frames", 3, 64)
    assert {"edgeaff", "torch", "onnx", "onnxruntime"} <= set(manifest.versions)
    assert manifest.audio_normalization.location == "temporal_graph"
    assert manifest.precision_recipes["int8"]["calibration_trials"] == ["t01", "t02"]
    for name, agreement in manifest.parity["fp32_vs_pytorch"].items():
        assert agreement["scaled"] <= TOLERANCE, name
    ccc = manifest.parity["ccc"]
    assert ccc["trials"] == ["v01"] and ccc["frames"] == 330
    assert min(ccc["fp16"]["ccc_vs_fp32"]) > 0.999
    assert max(abs(d) for d in ccc["fp16"]["ccc_drop"]) <= 0.005
    for form in ("int8", "int8_avx2", "int8_trt"):  # each INT8 form's accuracy is measured
        assert len(ccc[form]["ccc_vs_fp32"]) == 3 and len(ccc[form]["ccc_drop"]) == 3
        assert manifest.precision_recipes[form]["quantized_graphs"] == ["visual"]


def test_visual_then_temporal_under_onnx_runtime_equals_the_pytorch_models(
    tiny_bundle: Path, tiny_set, prepared_dir: Path
) -> None:
    models, _ = tiny_set
    bundle = load_bundle(tiny_bundle)
    frames = np.asarray(load_prepared_dataset(prepared_dir).arrays("v01").frame[:40])
    with OrtRunner(bundle.graphs["visual"].file()) as visual, OrtRunner(bundle.graphs["temporal"].file()) as temporal:
        predictions = temporal.infer({"embeddings": visual.infer({"frames": frames})["embeddings"][None]})
    crops = preprocess_frames(frames, FaceSpec())[None]
    with torch.no_grad():
        expected = torch.stack([m(crops) for m in models], dim=-1).numpy()
    assert predictions["predictions"].shape == (1, 40, 3)
    assert np.abs(predictions["predictions"] - expected).max() < TOLERANCE


def test_shared_trunk_equals_per_fold_backbones_and_is_smaller(tiny_bundle: Path, tiny_set, tmp_path: Path) -> None:
    models, _ = tiny_set
    bundle = load_bundle(tiny_bundle)
    separate = visual_graph.TrunkPlan(False, ((0,), (1,), (2,)), ("a", "b", "c"), trunk_units=2)
    path = tmp_path / "per_fold.onnx"
    export_module(
        visual_graph.VisualEnsemble(models, FaceSpec(), separate),
        path,
        name="visual",
        inputs=[TensorEntry("frames", ("frames", 48, 48, 3), "uint8")],
        outputs=[TensorEntry("embeddings", ("frames", 3, 64), "float32")],
        example=[torch.zeros(2, 48, 48, 3, dtype=torch.uint8)],
        opset=18,
    )
    frames = np.random.default_rng(4).integers(0, 256, (16, 48, 48, 3), dtype=np.uint8)
    with OrtRunner(bundle.graphs["visual"].file()) as shared, OrtRunner(path) as per_fold:
        difference = np.abs(
            shared.infer({"frames": frames})["embeddings"] - per_fold.infer({"frames": frames})["embeddings"]
        )
    assert difference.max() < SHARED_TOLERANCE
    shared_graph = onnx.load(str(bundle.graphs["visual"].file()))
    per_fold_graph = onnx.load(str(path))
    count = lambda g: sum(1 for n in g.graph.node if n.op_type == "Conv")  # noqa: E731
    assert count(shared_graph) < count(per_fold_graph)
    assert bundle.graphs["visual"].file().stat().st_size < path.stat().st_size


def test_a_different_trunk_is_not_shared(tiny_set) -> None:
    models, _ = tiny_set
    import copy

    changed = copy.deepcopy(models[1])
    changed.backbone.stem_bn.running_mean += 1e-6  # a BatchNorm statistic, not a parameter
    plan = visual_graph.plan_trunks([models[0], changed, models[2]])
    assert plan.shared is False and plan.groups == ((0,), (1,), (2,))
    assert visual_graph.plan_trunks(models).shared is True


def _types(model: onnx.ModelProto) -> dict[str, int]:
    inferred = onnx.shape_inference.infer_shapes(model, strict_mode=True)
    values = [*inferred.graph.value_info, *inferred.graph.input, *inferred.graph.output]
    return {v.name: v.type.tensor_type.elem_type for v in values}


def test_fp16_graphs_keep_float32_io_and_norms(tiny_bundle: Path) -> None:
    bundle = load_bundle(tiny_bundle)
    for name in ("visual", "temporal", "temporal_stream"):
        model = onnx.load(str(bundle.graphs[name].file("fp16")))
        onnx.checker.check_model(model, full_check=True)
        reference = onnx.load(str(bundle.graphs[name].file("fp32")))
        io = lambda m: [(v.name, v.type.tensor_type.elem_type) for v in [*m.graph.input, *m.graph.output]]  # noqa: E731
        assert io(model) == io(reference)
        assert any(i.data_type == onnx.TensorProto.FLOAT16 for i in model.graph.initializer)
        types = _types(model)
        for node in model.graph.node:
            if node.op_type == "ReduceL2":
                assert types[node.input[0]] == onnx.TensorProto.FLOAT, (name, node.name)


def test_int8_visual_graph_is_qdq_u8s8_per_channel(tiny_bundle: Path) -> None:
    bundle = load_bundle(tiny_bundle)
    model = onnx.load(str(bundle.graphs["visual"].file("int8")))
    initializers = {i.name: i for i in model.graph.initializer}
    quantize = [n for n in model.graph.node if n.op_type == "QuantizeLinear"]
    assert quantize and all(initializers[n.input[2]].data_type == onnx.TensorProto.UINT8 for n in quantize)
    weight_dq = [n for n in model.graph.node if n.op_type == "DequantizeLinear" and n.input[0] in initializers]
    conv_weights = [n for n in weight_dq if initializers[n.input[0]].data_type == onnx.TensorProto.INT8]
    assert conv_weights and any(len(initializers[n.input[1]].dims) == 1 for n in conv_weights)  # per-channel
    producers = {o: n for n in model.graph.node for o in n.output}
    for node in model.graph.node:
        if node.op_type == "ReduceL2":
            assert producers[node.input[0]].op_type != "DequantizeLinear"  # the L2 norm stays float
    # The stem convolution reads the scaled image in float with float weights.
    stem = next(n for n in model.graph.node if n.op_type == "Conv")
    assert all(producers[name].op_type != "DequantizeLinear" for name in stem.input if name in producers)
    assert stem.input[1] in initializers and initializers[stem.input[1]].data_type == onnx.TensorProto.FLOAT
    assert bundle.graphs["temporal"].file("int8") == bundle.graphs["temporal"].file("fp32")


def _weights_of(path: Path) -> list[np.ndarray]:
    from onnx import numpy_helper

    model = onnx.load(str(path))
    initializers = {i.name: i for i in model.graph.initializer}
    return [
        numpy_helper.to_array(initializers[n.input[0]])
        for n in model.graph.node
        if n.op_type == "DequantizeLinear"
        and n.input[0] in initializers
        and initializers[n.input[0]].data_type == onnx.TensorProto.INT8
        and len(initializers[n.input[0]].dims) > 1
    ]


def test_the_cpu_int8_forms_differ_in_weight_range_and_run_prelu_as_max(tiny_bundle: Path) -> None:
    """``int8`` uses the whole int8 range (VNNI sums exactly), ``int8_avx2`` 7 bits (AVX2's 16-bit sums do not
    saturate); both replace PRelu by max(x, a*x), TensorRT's form keeps it."""
    visual = load_bundle(tiny_bundle).graphs["visual"]
    full, seven = _weights_of(visual.variants["int8"].path), _weights_of(visual.variants["int8_avx2"].path)
    assert full and len(full) == len(seven)
    assert max(int(np.abs(w).max()) for w in full) == 127
    assert all(int(np.abs(w).max()) <= 64 for w in seven)  # 255 * 64 * 2 = 32640 fits in 16 bits
    for key in ("int8", "int8_avx2"):
        ops = [n.op_type for n in onnx.load(str(visual.variants[key].path)).graph.node]
        assert "PRelu" not in ops and "Max" in ops, key
    assert "PRelu" in [n.op_type for n in onnx.load(str(visual.variants["int8_trt"].path)).graph.node]


@pytest.mark.slow
def test_int8_tensorrt_variant_is_signed_and_symmetric(tiny_bundle: Path) -> None:
    """TensorRT accepts only int8 Q/DQ with zero points 0; the bundle carries that form beside ONNX Runtime's U8S8."""
    from onnx import numpy_helper

    from edgeaff.runtime.engines.bundle import bundle_engine_requests

    bundle = load_bundle(tiny_bundle)
    visual = bundle.graphs["visual"]
    trt_file = visual.file("int8", tensorrt=True)
    assert trt_file != visual.file("int8") and trt_file.name == "visual.int8-trt.onnx"
    assert bundle.precisions == ("fp32", "fp16", "int8")  # int8_trt is a form of int8, not a precision
    model = onnx.load(str(trt_file))
    initializers = {i.name: i for i in model.graph.initializer}
    zero_points = [
        initializers[n.input[2]] for n in model.graph.node if n.op_type in ("QuantizeLinear", "DequantizeLinear")
    ]
    assert zero_points and all(z.data_type == onnx.TensorProto.INT8 for z in zero_points)
    assert all(not np.any(numpy_helper.to_array(z)) for z in zero_points)
    requests = {e.role: e.request for e in bundle_engine_requests(bundle, "int8")}
    assert requests["visual"].onnx_path == trt_file and requests["visual"].precision.value == "int8"
    # It still computes the embeddings: close to FP32 under ONNX Runtime.
    import onnxruntime as ort

    frames = np.random.default_rng(9).integers(0, 256, (8, 48, 48, 3), dtype=np.uint8)
    reference = ort.InferenceSession(str(visual.file("fp32"))).run(None, {"frames": frames})[0]
    quantised = ort.InferenceSession(str(trt_file)).run(None, {"frames": frames})[0]
    cosine = (reference * quantised).sum(-1) / np.linalg.norm(reference, axis=-1) / np.linalg.norm(quantised, axis=-1)
    assert cosine.min() > 0.9
