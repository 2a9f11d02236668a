"""PRelu rewritten for ONNX Runtime's CPU kernels gives bit-identical results, for slopes inside and outside [0, 1]."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from edgeaff.export.precision import rewrite_prelu


def _prelu_graph(path: Path, slopes: np.ndarray) -> None:
    channels = len(slopes)
    nodes = [
        helper.make_node("Conv", ["x", "w"], ["y"], pads=[1, 1, 1, 1]),
        helper.make_node("PRelu", ["y", "slope"], ["z"], name="prelu"),
    ]
    rng = np.random.default_rng(0)
    graph = helper.make_graph(
        nodes,
        "prelu",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", channels, 6, 6])],
        [helper.make_tensor_value_info("z", TensorProto.FLOAT, ["n", channels, 6, 6])],
        [
            numpy_helper.from_array(rng.normal(0, 0.5, (channels, channels, 3, 3)).astype(np.float32), "w"),
            numpy_helper.from_array(slopes.reshape(channels, 1, 1).astype(np.float32), "slope"),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 9
    onnx.save(model, str(path))


def _run(path: Path, x: np.ndarray) -> np.ndarray:
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]


@pytest.mark.parametrize(
    ("slopes", "ops"),
    [
        (np.array([0.0, 0.25, 0.7, 1.0]), {"Mul", "Max"}),
        (np.array([-0.3, 0.25, 1.5, 0.1]), {"Relu", "Min", "Mul", "Add"}),
    ],
)
def test_the_rewrite_is_exact(tmp_path: Path, slopes: np.ndarray, ops: set[str]) -> None:
    path = tmp_path / "prelu.onnx"
    _prelu_graph(path, slopes)
    x = np.random.default_rng(1).normal(0, 1, (3, 4, 6, 6)).astype(np.float32)
    before = _run(path, x)
    description = rewrite_prelu(path)
    after = _run(path, x)
    assert description is not None and "PRelu as" in description
    kinds = {n.op_type for n in onnx.load(str(path)).graph.node}
    assert "PRelu" not in kinds and ops <= kinds
    assert np.array_equal(before, after)
    negative = x < 0
    assert negative.any() and (before[before < 0].size > 0)  # both branches of PRelu were exercised
    assert rewrite_prelu(path) is None  # nothing left to rewrite
