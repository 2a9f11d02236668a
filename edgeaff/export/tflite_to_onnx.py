"""Rebuild a float TFLite graph (as read by :mod:`edgeaff.export.tflite_reader`) as an ONNX graph.

TFLite computes in NHWC; ONNX convolutions are NCHW. Every 4-D activation is therefore kept in NCHW inside the
ONNX graph, and a transpose back to the file's own (NHWC) layout is inserted only where an operator depends on the
memory layout (reshape, graph outputs, concatenation of tensors of other ranks). Inputs keep the TFLite layout, so
the ONNX graph takes and returns exactly what the ``.tflite`` does.

Constant weights stored as float16 or int8/uint8 (with quantisation parameters) are dequantised to float32 when
the graph is built: DEQUANTIZE operators on constants disappear. Graphs with quantised *activations* (fully integer
models) are refused. Padding is written as explicit pads (TensorFlow's SAME puts the odd pixel at the end), which
TensorRT and ONNX Runtime both accept.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from edgeaff.export.tflite_reader import ACTIVATIONS, PADDING_SAME, PADDING_VALID, TfliteGraph, TfliteOperator
from edgeaff.runtime.errors import InvalidInputError, require

OPSET = 17
IR_VERSION = 8  # readable by every ONNX Runtime >= 1.10 and TensorRT >= 8.4
_TO_NCHW = (0, 3, 1, 2)
_TO_NHWC = (0, 2, 3, 1)
_NHWC_AXIS_TO_NCHW = {0: 0, 1: 2, 2: 3, 3: 1}


def _same_pads(size: int, kernel: int, stride: int, dilation: int) -> tuple[int, int]:
    """TensorFlow SAME padding (begin, end) along one axis."""
    out = -(-size // stride)
    total = max((out - 1) * stride + (kernel - 1) * dilation + 1 - size, 0)
    return total // 2, total - total // 2


class _Builder:
    """Translate operators one by one, tracking each tensor's ONNX name and layout ("nchw" or "native")."""

    def __init__(self, graph: TfliteGraph, helper: Any, numpy_helper: Any) -> None:
        self.graph = graph
        self.helper = helper
        self.numpy_helper = numpy_helper
        self.nodes: list[Any] = []
        self.initializers: list[Any] = []
        self.consts: dict[int, np.ndarray] = {}
        self.values: dict[tuple[int, str], str] = {}
        self.layout: dict[int, str] = {}
        self._counter = 0
        for tensor in graph.tensors:
            if tensor.data is not None:
                self.consts[tensor.index] = _dequantize(tensor.data, tensor.quantization)

    # -- names and layouts ---------------------------------------------------------------------------------------
    def fresh(self, hint: str) -> str:
        self._counter += 1
        return f"{hint}__{self._counter}"

    def constant(self, array: np.ndarray, hint: str) -> str:
        name = self.fresh(hint)
        self.initializers.append(self.numpy_helper.from_array(np.ascontiguousarray(array), name))
        return name

    def node(self, op: str, inputs: list[str], hint: str, **attrs: Any) -> str:
        out = self.fresh(hint)
        self.nodes.append(self.helper.make_node(op, inputs, [out], name=out, **attrs))
        return out

    def set_value(self, index: int, name: str, layout: str) -> None:
        self.values[(index, layout)] = name
        self.layout[index] = layout

    def get(self, index: int, layout: str) -> str:
        """ONNX name of tensor ``index`` in ``layout``, inserting (and caching) a transpose if needed."""
        if (index, layout) in self.values:
            return self.values[(index, layout)]
        if index in self.consts:
            value = self.consts[index]
            if layout == "nchw" and value.ndim == 4:
                value = value.transpose(_TO_NCHW)
            name = self.constant(value.astype(np.float32) if value.dtype.kind == "f" else value, "const")
            self.values[(index, layout)] = name
            return name
        current = self.layout.get(index)
        if current is None:
            raise InvalidInputError(f"tensor '{self.graph.tensors[index].name}' is used before it is computed")
        perm = _TO_NCHW if layout == "nchw" else _TO_NHWC
        name = self.node("Transpose", [self.values[(index, current)]], "transpose", perm=list(perm))
        self.values[(index, layout)] = name
        return name

    def rank(self, index: int) -> int:
        return len(self.graph.tensors[index].shape)

    def const(self, index: int, what: str) -> np.ndarray:
        if index not in self.consts:
            raise InvalidInputError(f"{what} '{self.graph.tensors[index].name}' must be a constant to be converted")
        return self.consts[index]

    def activation(self, name: str, code: int | None) -> str:
        kind = ACTIVATIONS.get(int(code or 0), "unknown")
        if kind is None:
            return name
        if kind == "RELU":
            return self.node("Relu", [name], "relu")
        if kind == "RELU6":
            return self._clip(name, 0.0, 6.0)
        if kind == "RELU_N1_TO_1":
            return self._clip(name, -1.0, 1.0)
        if kind == "TANH":
            return self.node("Tanh", [name], "tanh")
        raise InvalidInputError(f"fused activation {code} is not supported")

    def _clip(self, name: str, low: float, high: float) -> str:
        lo = self.constant(np.array(low, dtype=np.float32), "clip_min")
        hi = self.constant(np.array(high, dtype=np.float32), "clip_max")
        return self.node("Clip", [name, lo, hi], "clip")

    # -- operators ------------------------------------------------------------------------------------------------
    def convert(self, op: TfliteOperator) -> None:
        handler = _HANDLERS.get(op.kind)
        if handler is None:
            supported = ", ".join(sorted(_HANDLERS))
            raise InvalidInputError(
                f"TFLite operator {op.kind} is not supported by the converter (supported: {supported})"
            )
        for index in op.inputs:
            tensor = self.graph.tensors[index] if index >= 0 else None
            if tensor is not None and tensor.data is None and tensor.dtype.kind in "iu" and tensor.quantization:
                raise InvalidInputError(f"quantised activation '{tensor.name}': fully integer models are not supported")
        handler(self, op)

    def conv(self, op: TfliteOperator, *, depthwise: bool) -> None:
        x, w_index = op.inputs[0], op.inputs[1]
        weight = self.const(w_index, "convolution weight").astype(np.float32)
        _, height, width, channels = self.graph.tensors[x].shape
        opts = op.options
        if depthwise:
            # TFLite [1, KH, KW, C*M] -> ONNX [C*M, 1, KH, KW], one group per input channel.
            weight = weight[0].transpose(2, 0, 1)[:, None, :, :]
            group = channels
        else:
            weight = weight.transpose(0, 3, 1, 2)  # [O, KH, KW, I] -> [O, I, KH, KW]
            group = 1
        kh, kw = weight.shape[2], weight.shape[3]
        pads = self._pads(opts, (height, width), (kh, kw), (opts.get("dilation_h", 1), opts.get("dilation_w", 1)))
        inputs = [self.get(x, "nchw"), self.constant(weight, "weight")]
        if len(op.inputs) > 2 and op.inputs[2] >= 0:
            inputs.append(self.constant(self.const(op.inputs[2], "bias").astype(np.float32), "bias"))
        out = self.node(
            "Conv",
            inputs,
            "conv",
            kernel_shape=[kh, kw],
            strides=[opts["stride_h"], opts["stride_w"]],
            dilations=[opts.get("dilation_h", 1), opts.get("dilation_w", 1)],
            pads=pads,
            group=group,
        )
        self.set_value(op.outputs[0], self.activation(out, opts.get("activation")), "nchw")

    def pool(self, op: TfliteOperator, onnx_op: str) -> None:
        x = op.inputs[0]
        _, height, width, _ = self.graph.tensors[x].shape
        opts = op.options
        kh, kw = opts["filter_h"], opts["filter_w"]
        attrs: dict[str, Any] = {
            "kernel_shape": [kh, kw],
            "strides": [opts["stride_h"], opts["stride_w"]],
            "pads": self._pads(opts, (height, width), (kh, kw), (1, 1)),
        }
        if onnx_op == "AveragePool":
            attrs["count_include_pad"] = 0  # TensorFlow averages over the valid pixels only
        out = self.node(onnx_op, [self.get(x, "nchw")], onnx_op.lower(), **attrs)
        self.set_value(op.outputs[0], self.activation(out, opts.get("activation")), "nchw")

    @staticmethod
    def _pads(
        opts: dict[str, Any], size: tuple[int, int], kernel: tuple[int, int], dilation: tuple[int, int]
    ) -> list[int]:
        """ONNX pads (top, left, bottom, right) for TFLite's padding mode on an input of ``size`` (H, W)."""
        if opts["padding"] == PADDING_VALID:
            return [0, 0, 0, 0]
        if opts["padding"] != PADDING_SAME:
            raise InvalidInputError(f"padding mode {opts['padding']} is not supported")
        top, bottom = _same_pads(size[0], kernel[0], opts["stride_h"], dilation[0])
        left, right = _same_pads(size[1], kernel[1], opts["stride_w"], dilation[1])
        return [top, left, bottom, right]

    def binary(self, op: TfliteOperator, onnx_op: str) -> None:
        a, b = op.inputs[0], op.inputs[1]
        layout = self._common_layout([a, b])
        names = [self._broadcast_operand(i, layout) for i in (a, b)]
        out = self.node(onnx_op, names, onnx_op.lower())
        self.set_value(op.outputs[0], self.activation(out, op.options.get("activation")), layout)

    def _common_layout(self, indices: list[int]) -> str:
        variable = [i for i in indices if i not in self.consts]
        if variable and all(self.rank(i) == 4 for i in variable):
            return "nchw"
        return "native"

    def _broadcast_operand(self, index: int, layout: str) -> str:
        """A constant operand broadcast against a 4-D NCHW tensor is padded to rank 4 (NHWC) and transposed."""
        if index in self.consts and layout == "nchw":
            value = self.consts[index].astype(np.float32)
            value = value.reshape((1,) * (4 - value.ndim) + value.shape).transpose(_TO_NCHW)
            return self.constant(value, "operand")
        return self.get(index, layout)

    def unary(self, op: TfliteOperator, onnx_op: str, **attrs: Any) -> None:
        x = op.inputs[0]
        layout = self.layout.get(x, "native")
        out = self.node(onnx_op, [self.get(x, layout)], onnx_op.lower(), **attrs)
        self.set_value(op.outputs[0], out, layout)

    def prelu(self, op: TfliteOperator) -> None:
        x, alpha = op.inputs[0], op.inputs[1]
        layout = "nchw" if self.rank(x) == 4 else "native"
        out = self.node("PRelu", [self.get(x, layout), self._broadcast_operand(alpha, layout)], "prelu")
        self.set_value(op.outputs[0], out, layout)

    def pad(self, op: TfliteOperator) -> None:
        x = op.inputs[0]
        paddings = self.const(op.inputs[1], "paddings").astype(np.int64)
        layout = "nchw" if self.rank(x) == 4 else "native"
        if layout == "nchw":
            paddings = paddings[list(_TO_NCHW)]
        pads = self.constant(np.concatenate([paddings[:, 0], paddings[:, 1]]), "pads")
        if len(op.inputs) > 2 and op.inputs[2] >= 0 and float(self.const(op.inputs[2], "pad value")) != 0.0:
            raise InvalidInputError("PAD with a non-zero constant is not supported")
        out = self.node("Pad", [self.get(x, layout), pads], "pad", mode="constant")
        self.set_value(op.outputs[0], out, layout)

    def reshape(self, op: TfliteOperator) -> None:
        x = op.inputs[0]
        if len(op.inputs) > 1 and op.inputs[1] >= 0 and op.inputs[1] in self.consts:
            shape = self.consts[op.inputs[1]]
        elif op.options.get("new_shape"):
            shape = np.asarray(op.options["new_shape"])
        else:
            shape = np.asarray(self.graph.tensors[op.outputs[0]].shape)
        target = self.constant(shape.astype(np.int64), "shape")
        out = self.node("Reshape", [self.get(x, "native"), target], "reshape")
        self.set_value(op.outputs[0], out, "native")

    def concat(self, op: TfliteOperator) -> None:
        rank = self.rank(op.outputs[0])
        axis = int(op.options["axis"]) % rank
        layout = self._common_layout(list(op.inputs)) if rank == 4 else "native"
        if layout == "nchw":
            axis = _NHWC_AXIS_TO_NCHW[axis]
        out = self.node("Concat", [self.get(i, layout) for i in op.inputs], "concat", axis=axis)
        self.set_value(op.outputs[0], self.activation(out, op.options.get("activation")), layout)

    def resize(self, op: TfliteOperator, mode: str) -> None:
        x = op.inputs[0]
        size = self.const(op.inputs[1], "resize size").astype(np.int64)
        batch, _, _, channels = self.graph.tensors[x].shape
        if op.options.get("align_corners"):
            transform = "align_corners"
        elif op.options.get("half_pixel_centers"):
            transform = "half_pixel"
        else:
            transform = "asymmetric"
        sizes = self.constant(np.array([batch, channels, size[0], size[1]], dtype=np.int64), "sizes")
        attrs: dict[str, Any] = {"mode": mode, "coordinate_transformation_mode": transform}
        if mode == "nearest":
            # TFLite: floor(x * scale) by default, round-half-up with align_corners or half-pixel centres
            # (floor((x + 0.5) * scale) == round_prefer_ceil((x + 0.5) * scale - 0.5)).
            plain = not (op.options.get("align_corners") or op.options.get("half_pixel_centers"))
            attrs["nearest_mode"] = "floor" if plain else "round_prefer_ceil"
        out = self.node("Resize", [self.get(x, "nchw"), "", "", sizes], "resize", **attrs)
        self.set_value(op.outputs[0], out, "nchw")

    def dequantize(self, op: TfliteOperator) -> None:
        source = self.graph.tensors[op.inputs[0]]
        if op.inputs[0] not in self.consts:
            raise InvalidInputError(f"DEQUANTIZE of the activation '{source.name}' is not supported")
        self.consts[op.outputs[0]] = self.consts[op.inputs[0]].astype(np.float32)


def _dequantize(data: np.ndarray, quantization: Any) -> np.ndarray:
    """Float32 values of a constant: float16 widened, int8/uint8 scaled (per tensor or per ``axis``)."""
    if data.dtype == np.float16:
        return data.astype(np.float32)
    if data.dtype.kind in "iu" and quantization is not None and data.dtype.itemsize == 1:
        shape = [1] * data.ndim
        if quantization.scale.size > 1:
            shape[quantization.axis] = quantization.scale.size
        scale = quantization.scale.reshape(shape)
        zero = quantization.zero_point.reshape(shape) if quantization.zero_point.size > 1 else quantization.zero_point
        return ((data.astype(np.int64) - zero) * scale).astype(np.float32)
    return data


_HANDLERS: dict[str, Callable[[_Builder, TfliteOperator], None]] = {
    "CONV_2D": lambda b, op: b.conv(op, depthwise=False),
    "DEPTHWISE_CONV_2D": lambda b, op: b.conv(op, depthwise=True),
    "MAX_POOL_2D": lambda b, op: b.pool(op, "MaxPool"),
    "AVERAGE_POOL_2D": lambda b, op: b.pool(op, "AveragePool"),
    "ADD": lambda b, op: b.binary(op, "Add"),
    "MUL": lambda b, op: b.binary(op, "Mul"),
    "SUB": lambda b, op: b.binary(op, "Sub"),
    "RELU": lambda b, op: b.unary(op, "Relu"),
    "TANH": lambda b, op: b.unary(op, "Tanh"),
    "LOGISTIC": lambda b, op: b.unary(op, "Sigmoid"),
    "RELU6": lambda b, op: _relu_n(b, op, 0.0, 6.0),
    "RELU_N1_TO_1": lambda b, op: _relu_n(b, op, -1.0, 1.0),
    "PRELU": _Builder.prelu,
    "PAD": _Builder.pad,
    "RESHAPE": _Builder.reshape,
    "CONCATENATION": _Builder.concat,
    "RESIZE_BILINEAR": lambda b, op: b.resize(op, "linear"),
    "RESIZE_NEAREST_NEIGHBOR": lambda b, op: b.resize(op, "nearest"),
    "DEQUANTIZE": _Builder.dequantize,
}


def _relu_n(builder: _Builder, op: TfliteOperator, low: float, high: float) -> None:
    x = op.inputs[0]
    layout = builder.layout.get(x, "native")
    builder.set_value(op.outputs[0], builder._clip(builder.get(x, layout), low, high), layout)


def tflite_to_onnx(graph: TfliteGraph, *, graph_name: str = "tflite_graph") -> Any:
    """Build an ONNX ``ModelProto`` computing the same function as ``graph``.

    Args:
        graph: a float TFLite graph (weights may be float16 or int8-quantised constants).
        graph_name: the ONNX graph's name.

    Returns:
        The model (opset 17, IR version 8), checked with ``onnx.checker``.

    Raises:
        MissingDependencyError: ``onnx`` is not installed.
        InvalidInputError: the graph uses an operator, option or tensor type the converter does not support.
    """
    onnx: Any = require("onnx", extra="export", purpose="converting a TFLite model to ONNX")
    builder = _Builder(graph, onnx.helper, onnx.numpy_helper)
    inputs = []
    for index in graph.inputs:
        tensor = graph.tensors[index]
        if tensor.dtype != np.float32:
            raise InvalidInputError(f"graph input '{tensor.name}' is {tensor.dtype}; only float32 inputs are supported")
        inputs.append(onnx.helper.make_tensor_value_info(tensor.name, onnx.TensorProto.FLOAT, list(tensor.shape)))
        builder.set_value(index, tensor.name, "native")
    for op in graph.operators:
        builder.convert(op)
    outputs = []
    for index in graph.outputs:
        tensor = graph.tensors[index]
        builder.nodes.append(onnx.helper.make_node("Identity", [builder.get(index, "native")], [tensor.name]))
        outputs.append(onnx.helper.make_tensor_value_info(tensor.name, onnx.TensorProto.FLOAT, list(tensor.shape)))
    onnx_graph = onnx.helper.make_graph(builder.nodes, graph_name, inputs, outputs, builder.initializers)
    model = onnx.helper.make_model(onnx_graph, opset_imports=[onnx.helper.make_opsetid("", OPSET)])
    model.ir_version = IR_VERSION
    model.producer_name = "edgeaff"
    onnx.checker.check_model(model, full_check=True)
    return model
