"""FLOPs of an ONNX graph, counted per node from its tensor shapes.

The rule is the usual one for networks (and the one ``torch.utils.flop_counter`` applies, which
``benchmarks/jetson_ceilings.py`` uses): a multiply-accumulate is 2 FLOPs, and only the operators that multiply
matrices count, because they are what the machine's peak is measured on:

==========================================  ============================================================================
``Conv``, ``ConvInteger``, ``QLinearConv``  2 × N × C_out × prod(output spatial) × (C_in / group) × prod(kernel)
``ConvTranspose``                           2 × N × C_in × prod(input spatial) × (C_out / group) × prod(kernel)
``Gemm``, ``QGemm`` (com.microsoft)         2 × M × N × K (``transA`` / ``transB`` honoured)
``MatMul``, ``MatMulInteger``,              2 × prod(output shape) × K (batch axes broadcast, 1-D operands as ONNX
``QLinearMatMul``                           promotes them)
==========================================  ============================================================================

Bias additions, activations, normalisations and data movement are not counted (they are listed, by operator, in
:attr:`GraphFlops.other_ops`). Each counted node also gets the precision it runs in: ``int8`` for the quantised
operators and for a QDQ node (an input coming from ``DequantizeLinear``, the form ``edgeaff export --int8`` writes),
else the element type of its first input (``fp32``, ``fp16``, ``bf16``).

Shapes come from ONNX's shape inference after the graph's symbolic axes are given values (``frames``,
``examples``, ``batch``, ``steps``, ...), so the count is for one call of that size. Needs the ``onnx`` package
(``pip install 'edgeaff[bench]'``); torch is never imported.
"""

from __future__ import annotations

import dataclasses
import math
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from edgeaff.runtime.errors import InvalidInputError, require

CONV_OPS = frozenset({"Conv", "ConvInteger", "QLinearConv"})
GEMM_OPS = frozenset({"Gemm", "QGemm"})
MATMUL_OPS = frozenset({"MatMul", "MatMulInteger", "QLinearMatMul"})
QUANTISED_OPS = frozenset({"ConvInteger", "QLinearConv", "QGemm", "MatMulInteger", "QLinearMatMul"})
COUNTED_OPS = CONV_OPS | GEMM_OPS | MATMUL_OPS | {"ConvTranspose"}

# Initialisers larger than this many elements lose their values before shape inference (it needs their dims only;
# small ones, e.g. the target shape of a Reshape, keep their values for ONNX's data propagation).
_KEEP_VALUES = 4096
# ONNX element types -> precision names.
_PRECISION = {1: "fp32", 10: "fp16", 16: "bf16", 11: "fp64", 2: "int8", 3: "int8"}


@dataclasses.dataclass(frozen=True)
class NodeFlops:
    """One counted node: its name, operator, precision and FLOPs for the call counted."""

    name: str
    op: str
    precision: str
    flops: int


@dataclasses.dataclass(frozen=True)
class GraphFlops:
    """The FLOPs of one call of a graph at given input sizes.

    Attributes:
        total: FLOPs of the counted operators.
        by_precision: the same split by the precision each node runs in (``fp32``, ``int8``, ...).
        by_op: split by operator.
        nodes: every counted node.
        other_ops: operators not counted (elementwise, normalisation, data movement), with their node counts.
        unresolved: counted-kind nodes whose shapes shape inference could not resolve (their FLOPs are missing
            from ``total``; empty for the bundles edgeaff exports).
        symbols: the values given to the graph's symbolic axes.
    """

    total: int
    by_precision: dict[str, int]
    by_op: dict[str, int]
    nodes: tuple[NodeFlops, ...]
    other_ops: dict[str, int]
    unresolved: tuple[str, ...]
    symbols: dict[str, int]

    def to_dict(self, *, nodes: bool = False) -> dict[str, Any]:
        """JSON-ready form (the per-node list only when asked for)."""
        document: dict[str, Any] = {
            "total": self.total,
            "by_precision": dict(self.by_precision),
            "by_op": dict(self.by_op),
            "counted_nodes": len(self.nodes),
            "other_ops": dict(self.other_ops),
            "unresolved": list(self.unresolved),
            "symbols": dict(self.symbols),
        }
        if nodes:
            document["nodes"] = [dataclasses.asdict(node) for node in self.nodes]
        return document


def _onnx() -> Any:
    return require("onnx", extra="bench", purpose="counting a graph's FLOPs")


def load_graph(path: str | Path) -> Any:
    """The ONNX model at ``path`` (an ``onnx.ModelProto``).

    Raises:
        MissingDependencyError: the ``onnx`` package is not installed.
        InvalidInputError: the file is missing or not an ONNX model.
    """
    onnx = _onnx()
    file = Path(path)
    if not file.is_file():
        raise InvalidInputError(f"ONNX graph not found: {file}")
    try:
        return onnx.load(str(file))
    except Exception as exc:  # protobuf raises its own DecodeError types
        raise InvalidInputError(f"{file}: not a readable ONNX graph ({exc})") from None


def graph_symbols(model: Any) -> list[str]:
    """The names of the symbolic axes of the model's inputs, in order of first appearance."""
    names: list[str] = []
    initialisers = {init.name for init in model.graph.initializer}
    for tensor in model.graph.input:
        if tensor.name in initialisers:
            continue
        for dim in tensor.type.tensor_type.shape.dim:
            if dim.dim_param and dim.dim_param not in names:
                names.append(dim.dim_param)
    return names


def _concrete(model: Any, symbols: Mapping[str, int]) -> Any:
    """A copy of ``model`` with its symbolic input axes set and its large initialisers emptied."""
    onnx = _onnx()
    copy = onnx.ModelProto()
    copy.CopyFrom(model)
    missing = [name for name in graph_symbols(copy) if name not in symbols]
    if missing:
        raise InvalidInputError(f"give a size for the graph's symbolic axes {missing} to count its FLOPs")
    for tensor in copy.graph.input:
        for dim in tensor.type.tensor_type.shape.dim:
            if dim.dim_param:
                value = int(symbols[dim.dim_param])
                if value < 1:
                    raise InvalidInputError(f"axis '{dim.dim_param}' must be at least 1, got {value}")
                dim.Clear()
                dim.dim_value = value
    for initialiser in copy.graph.initializer:
        if math.prod(initialiser.dims) > _KEEP_VALUES:
            for field in ("raw_data", "float_data", "int32_data", "int64_data", "double_data"):
                initialiser.ClearField(field)
    return copy


def _shapes(model: Any) -> tuple[dict[str, tuple[int, ...] | None], dict[str, int]]:
    """Shape and element type of every tensor shape inference resolved (``None`` where an axis is unknown)."""
    shapes: dict[str, tuple[int, ...] | None] = {}
    types: dict[str, int] = {}
    graph = model.graph
    for value in (*graph.input, *graph.value_info, *graph.output):
        tensor = value.type.tensor_type
        types[value.name] = int(tensor.elem_type)
        if not tensor.HasField("shape"):
            shapes[value.name] = None
            continue
        dims = tuple(d.dim_value if d.HasField("dim_value") else -1 for d in tensor.shape.dim)
        shapes[value.name] = None if any(d < 0 for d in dims) else dims
    for initialiser in graph.initializer:
        shapes[initialiser.name] = tuple(int(d) for d in initialiser.dims)
        types[initialiser.name] = int(initialiser.data_type)
    for node in graph.node:  # Constant nodes: shape inference records their outputs only sometimes
        if node.op_type == "Constant":
            for attribute in node.attribute:
                if attribute.name == "value":
                    shapes.setdefault(node.output[0], tuple(int(d) for d in attribute.t.dims))
                    types.setdefault(node.output[0], int(attribute.t.data_type))
    return shapes, types


def _attribute(node: Any, name: str, default: Any) -> Any:
    onnx = _onnx()
    for attribute in node.attribute:
        if attribute.name == name:
            return onnx.helper.get_attribute_value(attribute)
    return default


def _conv_flops(node: Any, shapes: Mapping[str, tuple[int, ...] | None]) -> int | None:
    weight_index = 3 if node.op_type == "QLinearConv" else 1
    output, weight = shapes.get(node.output[0]), shapes.get(node.input[weight_index])
    if output is None or weight is None or len(output) < 3 or len(weight) != len(output):
        return None
    n, c_out, spatial = output[0], output[1], output[2:]
    per_output = math.prod(weight[1:])  # (C_in / group) × kernel
    if weight[0] != c_out:
        return None
    return 2 * n * c_out * math.prod(spatial) * per_output


def _conv_transpose_flops(node: Any, shapes: Mapping[str, tuple[int, ...] | None]) -> int | None:
    data, weight = shapes.get(node.input[0]), shapes.get(node.input[1])
    if data is None or weight is None or len(data) < 3 or len(weight) != len(data):
        return None
    n, c_in, spatial = data[0], data[1], data[2:]
    return 2 * n * c_in * math.prod(spatial) * math.prod(weight[1:])  # weight: (C_in, C_out / group, *kernel)


def _gemm_flops(node: Any, shapes: Mapping[str, tuple[int, ...] | None]) -> int | None:
    b_index = 3 if node.op_type == "QGemm" else 1
    a, b = shapes.get(node.input[0]), shapes.get(node.input[b_index])
    if a is None or b is None or len(a) != 2 or len(b) != 2:
        return None
    m, k = (a[1], a[0]) if _attribute(node, "transA", 0) else a
    k_b, n = (b[1], b[0]) if _attribute(node, "transB", 0) else b
    if k != k_b:
        return None
    return 2 * m * n * k


def _matmul_flops(node: Any, shapes: Mapping[str, tuple[int, ...] | None]) -> int | None:
    b_index = 3 if node.op_type == "QLinearMatMul" else 1
    a, b, output = shapes.get(node.input[0]), shapes.get(node.input[b_index]), shapes.get(node.output[0])
    if a is None or b is None or output is None or not a or not b:
        return None
    k = a[-1]
    if (b[0] if len(b) == 1 else b[-2]) != k:
        return None
    return 2 * math.prod(output) * k


def _precision(
    node: Any, producers: Mapping[str, str], types: Mapping[str, int], quantised_inputs: Sequence[int]
) -> str:
    if node.op_type in QUANTISED_OPS:
        return "int8"
    if all(i < len(node.input) and producers.get(node.input[i]) == "DequantizeLinear" for i in quantised_inputs):
        return "int8"  # a QDQ node: ONNX Runtime and TensorRT fuse it into an INT8 kernel
    return _PRECISION.get(types.get(node.input[0], 0), "other")


def count_flops(model: Any, symbols: Mapping[str, int] | None = None) -> GraphFlops:
    """Count the FLOPs of one call of ``model`` (see the module docstring).

    Args:
        model: an ``onnx.ModelProto`` or the path of an ``.onnx`` file.
        symbols: a size for every symbolic axis of the graph's inputs, e.g. ``{"frames": 16}`` or
            ``{"batch": 1, "steps": 300}`` (:func:`graph_symbols` lists them).

    Raises:
        MissingDependencyError: the ``onnx`` package is not installed.
        InvalidInputError: a symbolic axis without a size, a size below 1, or an unreadable graph.

    Example:
        >>> count_flops("visual.onnx", {"frames": 1}).total  # doctest: +SKIP
        6055000000
    """
    onnx = _onnx()
    proto = load_graph(model) if isinstance(model, (str, Path)) else model
    given = {str(k): int(v) for k, v in (symbols or {}).items()}
    concrete = _concrete(proto, given)
    try:
        inferred = onnx.shape_inference.infer_shapes(concrete, data_prop=True)
    except Exception as exc:  # onnx raises InferenceError and friends
        raise InvalidInputError(f"ONNX shape inference failed on the graph ({exc})") from None
    shapes, types = _shapes(inferred)
    producers = {output: node.op_type for node in inferred.graph.node for output in node.output}
    counted: list[NodeFlops] = []
    unresolved: list[str] = []
    others: Counter[str] = Counter()
    for index, node in enumerate(inferred.graph.node):
        op = node.op_type
        if op not in COUNTED_OPS or (op == "QGemm" and node.domain != "com.microsoft"):
            others[op] += 1
            continue
        if op in CONV_OPS:
            flops = _conv_flops(node, shapes)
        elif op == "ConvTranspose":
            flops = _conv_transpose_flops(node, shapes)
        elif op in GEMM_OPS:
            flops = _gemm_flops(node, shapes)
        else:
            flops = _matmul_flops(node, shapes)
        name = node.name or f"{op}_{index}"
        if flops is None:
            unresolved.append(name)
            continue
        counted.append(NodeFlops(name, op, _precision(node, producers, types, (0, 1)), int(flops)))
    by_precision: Counter[str] = Counter()
    by_op: Counter[str] = Counter()
    for node_flops in counted:
        by_precision[node_flops.precision] += node_flops.flops
        by_op[node_flops.op] += node_flops.flops
    return GraphFlops(
        total=sum(n.flops for n in counted),
        by_precision=dict(by_precision),
        by_op=dict(by_op),
        nodes=tuple(counted),
        other_ops=dict(sorted(others.items())),
        unresolved=tuple(unresolved),
        symbols=given,
    )
