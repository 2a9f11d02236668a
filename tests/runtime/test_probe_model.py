"""The hand-serialised probe graph is a valid ONNX model that ONNX Runtime runs (checked with the onnx package)."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort

from edgeaff.doctor.probe_model import PROBE_INPUT, PROBE_OUTPUT, PROBE_SHAPE, probe_model_bytes


def test_probe_model_passes_the_onnx_checker() -> None:
    model = onnx.load_from_string(probe_model_bytes())
    onnx.checker.check_model(model, full_check=True)
    assert [node.op_type for node in model.graph.node] == ["Add"]
    assert [i.name for i in model.graph.input] == [PROBE_INPUT]
    assert [o.name for o in model.graph.output] == [PROBE_OUTPUT]
    dims = [d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim]
    assert tuple(dims) == PROBE_SHAPE
    assert model.opset_import[0].version == 13 and model.ir_version == 8


def test_probe_model_matches_the_onnx_helper_build() -> None:
    """An independent construction with onnx.helper serialises to the same graph."""
    helper = onnx.helper
    x = helper.make_tensor_value_info(PROBE_INPUT, onnx.TensorProto.FLOAT, list(PROBE_SHAPE))
    y = helper.make_tensor_value_info(PROBE_OUTPUT, onnx.TensorProto.FLOAT, list(PROBE_SHAPE))
    node = helper.make_node("Add", [PROBE_INPUT, PROBE_INPUT], [PROBE_OUTPUT], name="add")
    graph = helper.make_graph([node], "edgeaff_probe", [x], [y])
    expected = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], producer_name="edgeaff doctor")
    expected.ir_version = 8
    assert onnx.load_from_string(probe_model_bytes()).graph == expected.graph


def test_probe_model_runs_on_onnxruntime_cpu() -> None:
    session = ort.InferenceSession(probe_model_bytes(), providers=["CPUExecutionProvider"])
    x = np.linspace(-1.0, 1.0, 4, dtype=np.float32).reshape(PROBE_SHAPE)
    (y,) = session.run(None, {PROBE_INPUT: x})
    np.testing.assert_array_equal(y, x + x)  # exact: a single float32 addition
