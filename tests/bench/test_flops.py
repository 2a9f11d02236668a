"""FLOP counting of ONNX graphs (edgeaff.bench.flops) against counts made by hand, node by node."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edgeaff.runtime.errors import InvalidInputError

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from edgeaff.bench.flops import count_flops, graph_symbols  # noqa: E402


def _init(name: str, shape: tuple[int, ...], dtype: type = np.float32) -> onnx.TensorProto:
    return numpy_helper.from_array(np.ones(shape, dtype=dtype), name)


def _small_graph() -> onnx.ModelProto:
    """x (N, 3, 8, 8) → Conv 3→4 k3 pad 1 → Relu → Conv 4→6 k3 stride 2 group 2 pad 1 → Flatten → Gemm 96→5 (transB)
    → MatMul (5×7); plus a 1-D MatMul and a batched MatMul on a side input y (N, 2, 3, 4) · (4, 6)."""
    nodes = [
        helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c1"], ["r1"]),
        helper.make_node("Conv", ["r1", "w2"], ["c2"], kernel_shape=[3, 3], pads=[1, 1, 1, 1], strides=[2, 2], group=2),
        helper.make_node("Flatten", ["c2"], ["f"]),
        helper.make_node("Gemm", ["f", "wg", "bg"], ["g"], transB=1),
        helper.make_node("MatMul", ["g", "wm"], ["out"]),
        helper.make_node("MatMul", ["y", "wy"], ["side"]),
        helper.make_node("MatMul", ["side", "v"], ["dot"]),  # (N, 2, 3, 6) · (6,) → (N, 2, 3)
    ]
    initialisers = [
        _init("w1", (4, 3, 3, 3)), _init("b1", (4,)), _init("w2", (6, 2, 3, 3)), _init("wg", (5, 96)),
        _init("bg", (5,)), _init("wm", (5, 7)), _init("wy", (4, 6)), _init("v", (6,)),
    ]  # fmt: skip
    graph = helper.make_graph(
        nodes,
        "small",
        [
            helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 3, 8, 8]),
            helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 2, 3, 4]),
        ],
        [
            helper.make_tensor_value_info("out", TensorProto.FLOAT, ["n", 7]),
            helper.make_tensor_value_info("dot", TensorProto.FLOAT, ["n", 2, 3]),
        ],
        initializer=initialisers,
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])


def _hand_count(n: int) -> dict[str, int]:
    conv1 = 2 * n * 4 * (8 * 8) * (3 * 3 * 3)  # every output element: C_in × k × k MACs
    conv2 = 2 * n * 6 * (4 * 4) * (2 * 3 * 3)  # stride 2 → 4×4 outputs; group 2 → 2 input channels per output
    gemm = 2 * n * 5 * 96
    matmul = 2 * n * 7 * 5 + 2 * (n * 2 * 3 * 6) * 4 + 2 * (n * 2 * 3) * 6
    return {"Conv": conv1 + conv2, "Gemm": gemm, "MatMul": matmul}


@pytest.mark.parametrize("n", [1, 3])
def test_counts_equal_a_hand_count(n: int) -> None:
    counted = count_flops(_small_graph(), {"n": n})
    expected = _hand_count(n)
    assert counted.by_op == expected
    assert counted.total == sum(expected.values())
    assert counted.by_precision == {"fp32": counted.total}
    assert len(counted.nodes) == 6 and not counted.unresolved
    assert counted.other_ops == {"Flatten": 1, "Relu": 1}  # listed, not counted


def test_count_from_a_file_names_its_symbols(tmp_path: Path) -> None:
    path = tmp_path / "small.onnx"
    onnx.save(_small_graph(), path)
    assert graph_symbols(onnx.load(path)) == ["n"]
    assert count_flops(path, {"n": 2}).total == sum(_hand_count(2).values())
    with pytest.raises(InvalidInputError, match=r"symbolic axes \['n'\]"):
        count_flops(path)
    with pytest.raises(InvalidInputError, match="at least 1"):
        count_flops(path, {"n": 0})
    with pytest.raises(InvalidInputError, match="not found"):
        count_flops(tmp_path / "missing.onnx", {"n": 1})


def _quantised_graph() -> onnx.ModelProto:
    """The three INT8 forms: QLinearConv, ConvInteger, MatMulInteger, and a QDQ Conv, with a float Conv beside."""
    scale = _init("s", ())
    zp_u8 = numpy_helper.from_array(np.array(0, np.uint8), "zu")
    zp_s8 = numpy_helper.from_array(np.array(0, np.int8), "zs")
    w8 = numpy_helper.from_array(np.ones((8, 4, 3, 3), np.int8), "w8")
    nodes = [
        helper.make_node("QLinearConv", ["xq", "s", "zu", "w8", "s", "zs", "s", "zu"], ["q1"], kernel_shape=[3, 3]),
        helper.make_node("ConvInteger", ["xq", "w8", "zu", "zs"], ["q2"], kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
        helper.make_node("MatMulInteger", ["aq", "m8", "zu", "zs"], ["q3"]),
        helper.make_node("DequantizeLinear", ["xq", "s", "zu"], ["xd"]),
        helper.make_node("DequantizeLinear", ["w8", "s", "zs"], ["wd"]),
        helper.make_node("Conv", ["xd", "wd"], ["q4"], kernel_shape=[3, 3]),
        helper.make_node("Conv", ["xf", "wf"], ["f1"], kernel_shape=[1, 1]),
    ]
    m8 = numpy_helper.from_array(np.ones((16, 5), np.int8), "m8")
    wf = numpy_helper.from_array(np.ones((2, 4, 1, 1), np.float16), "wf")
    initialisers = [scale, zp_u8, zp_s8, w8, m8, wf]
    inputs = [
        helper.make_tensor_value_info("xq", TensorProto.UINT8, [2, 4, 6, 6]),
        helper.make_tensor_value_info("aq", TensorProto.UINT8, [3, 16]),
        helper.make_tensor_value_info("xf", TensorProto.FLOAT16, [2, 4, 6, 6]),
    ]
    outputs = [helper.make_tensor_value_info(name, TensorProto.UNDEFINED, None) for name in ("q1", "q2", "q3", "q4")]
    outputs.append(helper.make_tensor_value_info("f1", TensorProto.FLOAT16, None))
    graph = helper.make_graph(nodes, "quantised", inputs, outputs, initializer=initialisers)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])


def test_quantised_forms_count_as_int8() -> None:
    counted = count_flops(_quantised_graph())
    valid = 2 * 2 * 8 * (4 * 4) * (4 * 3 * 3)  # no padding: 6 → 4
    same = 2 * 2 * 8 * (6 * 6) * (4 * 3 * 3)  # padding 1 keeps 6×6
    matmul = 2 * 3 * 5 * 16
    float_conv = 2 * 2 * 2 * (6 * 6) * 4
    by_node = {node.op: (node.precision, node.flops) for node in counted.nodes}
    assert by_node["QLinearConv"] == ("int8", valid)
    assert by_node["ConvInteger"] == ("int8", same)
    assert by_node["MatMulInteger"] == ("int8", matmul)
    conv_nodes = sorted((node.precision, node.flops) for node in counted.nodes if node.op == "Conv")
    assert conv_nodes == [("fp16", float_conv), ("int8", valid)]  # the QDQ Conv runs in INT8, the other in FP16
    assert counted.by_precision == {"int8": 2 * valid + same + matmul, "fp16": float_conv}
