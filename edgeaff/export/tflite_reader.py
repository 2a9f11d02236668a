"""Read a TensorFlow Lite flatbuffer into plain Python objects (tensors with their constant data, operators with
their options), using the ``tflite`` schema package. No TensorFlow, no interpreter: just the file's content."""

from __future__ import annotations

import dataclasses
import struct
from pathlib import Path
from typing import Any

import numpy as np

from edgeaff.runtime.errors import InvalidInputError, require

# TensorType values of the TFLite schema that a converted graph can contain.
_TENSOR_DTYPES: dict[int, np.dtype] = {
    0: np.dtype(np.float32),
    1: np.dtype(np.float16),
    2: np.dtype(np.int32),
    3: np.dtype(np.uint8),
    4: np.dtype(np.int64),
    7: np.dtype(np.int16),
    9: np.dtype(np.int8),
}

# Options table class (in the ``tflite`` package) of each builtin operator the converter reads options from.
MAX_TFLITE_BYTES = 64 * 1024 * 1024  # BlazeFace models are a few hundred kB

_OPTION_TABLES = {
    "CONV_2D": "Conv2DOptions",
    "DEPTHWISE_CONV_2D": "DepthwiseConv2DOptions",
    "ADD": "AddOptions",
    "MUL": "MulOptions",
    "SUB": "SubOptions",
    "MAX_POOL_2D": "Pool2DOptions",
    "AVERAGE_POOL_2D": "Pool2DOptions",
    "RESHAPE": "ReshapeOptions",
    "CONCATENATION": "ConcatenationOptions",
    "RESIZE_BILINEAR": "ResizeBilinearOptions",
    "RESIZE_NEAREST_NEIGHBOR": "ResizeNearestNeighborOptions",
}

# Accessors read from each options table, as (key in TfliteOperator.options, method name).
_OPTION_FIELDS = {
    "Conv2DOptions": [
        ("padding", "Padding"),
        ("stride_h", "StrideH"),
        ("stride_w", "StrideW"),
        ("dilation_h", "DilationHFactor"),
        ("dilation_w", "DilationWFactor"),
        ("activation", "FusedActivationFunction"),
    ],
    "DepthwiseConv2DOptions": [
        ("padding", "Padding"),
        ("stride_h", "StrideH"),
        ("stride_w", "StrideW"),
        ("dilation_h", "DilationHFactor"),
        ("dilation_w", "DilationWFactor"),
        ("depth_multiplier", "DepthMultiplier"),
        ("activation", "FusedActivationFunction"),
    ],
    "AddOptions": [("activation", "FusedActivationFunction")],
    "MulOptions": [("activation", "FusedActivationFunction")],
    "SubOptions": [("activation", "FusedActivationFunction")],
    "Pool2DOptions": [
        ("padding", "Padding"),
        ("stride_h", "StrideH"),
        ("stride_w", "StrideW"),
        ("filter_h", "FilterHeight"),
        ("filter_w", "FilterWidth"),
        ("activation", "FusedActivationFunction"),
    ],
    "ReshapeOptions": [("new_shape", "NewShapeAsNumpy")],
    "ConcatenationOptions": [("axis", "Axis"), ("activation", "FusedActivationFunction")],
    "ResizeBilinearOptions": [("align_corners", "AlignCorners"), ("half_pixel_centers", "HalfPixelCenters")],
    "ResizeNearestNeighborOptions": [("align_corners", "AlignCorners"), ("half_pixel_centers", "HalfPixelCenters")],
}

# Enum values of the schema used in options.
PADDING_SAME, PADDING_VALID = 0, 1
ACTIVATIONS = {0: None, 1: "RELU", 2: "RELU_N1_TO_1", 3: "RELU6", 4: "TANH"}


@dataclasses.dataclass(frozen=True)
class Quantization:
    """Affine quantisation parameters of a tensor: ``real = scale * (q - zero_point)`` along ``axis``."""

    scale: np.ndarray
    zero_point: np.ndarray
    axis: int


@dataclasses.dataclass(frozen=True)
class TfliteTensor:
    """One tensor of the subgraph; ``data`` holds the raw constant values, ``None`` for activations."""

    index: int
    name: str
    shape: tuple[int, ...]
    dtype: np.dtype
    data: np.ndarray | None
    quantization: Quantization | None


@dataclasses.dataclass(frozen=True)
class TfliteOperator:
    """One operator: builtin name, input/output tensor indices (-1: optional input absent), parsed options."""

    kind: str
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]
    options: dict[str, Any]


@dataclasses.dataclass(frozen=True)
class TfliteGraph:
    """The single subgraph of a TFLite model, in execution order."""

    tensors: tuple[TfliteTensor, ...]
    operators: tuple[TfliteOperator, ...]
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]
    description: str


def read_tflite(path: str | Path) -> TfliteGraph:
    """Parse a ``.tflite`` file.

    Args:
        path: the TFLite flatbuffer.

    Returns:
        Its (only) subgraph with constant tensor data and operator options.

    Raises:
        MissingDependencyError: the ``tflite`` schema package is not installed.
        InvalidInputError: the file is missing, not a TFLite model, has several subgraphs, or uses custom operators
            or tensor types the converter does not know.
    """
    tfl: Any = require("tflite", extra="export", purpose="reading a TFLite face detector")
    file = Path(path)
    if not file.is_file():
        raise InvalidInputError(f"TFLite model not found: {file}")
    with open(file, "rb") as handle:
        buf = handle.read(MAX_TFLITE_BYTES + 1)
    if len(buf) > MAX_TFLITE_BYTES:
        raise InvalidInputError(
            f"{file}: larger than {MAX_TFLITE_BYTES >> 20} MiB; not a face detector edgeaff supports"
        )
    if len(buf) < 8 or buf[4:8] != b"TFL3":
        raise InvalidInputError(f"{file}: not a TFLite flatbuffer (no 'TFL3' identifier)")
    try:
        model = tfl.Model.GetRootAsModel(buf, 0)
        if model.SubgraphsLength() != 1:
            raise InvalidInputError(f"{file}: expected one subgraph, found {model.SubgraphsLength()}")
        graph = model.Subgraphs(0)
        tensors = tuple(_read_tensor(model, graph.Tensors(i), i, buf, file) for i in range(graph.TensorsLength()))
        codes = [_builtin_name(tfl, model.OperatorCodes(i), file) for i in range(model.OperatorCodesLength())]
        operators = tuple(_read_operator(tfl, graph.Operators(i), codes) for i in range(graph.OperatorsLength()))
        description = model.Description().decode() if model.Description() else ""
        inputs = tuple(int(i) for i in graph.InputsAsNumpy())
        outputs = tuple(int(i) for i in graph.OutputsAsNumpy())
    except (struct.error, IndexError, ValueError, TypeError, AttributeError, OverflowError) as exc:
        # A damaged flatbuffer sends the generated accessors past the buffer or into garbage.
        raise InvalidInputError(f"{file}: a damaged TFLite flatbuffer ({type(exc).__name__}: {exc})") from None
    if not all(0 <= i < len(tensors) for i in (*inputs, *outputs)):
        raise InvalidInputError(f"{file}: a damaged TFLite flatbuffer (graph inputs/outputs name missing tensors)")
    return TfliteGraph(tensors=tensors, operators=operators, inputs=inputs, outputs=outputs, description=description)


def _builtin_name(tfl: Any, code: Any, file: Path) -> str:
    # Files from schema v3a on store builtin codes > 127 in BuiltinCode; older ones in DeprecatedBuiltinCode.
    value = max(int(code.BuiltinCode()), int(code.DeprecatedBuiltinCode()))
    if value == tfl.BuiltinOperator.CUSTOM:
        custom = code.CustomCode().decode() if code.CustomCode() else "?"
        raise InvalidInputError(f"{file}: custom operator '{custom}' cannot be converted")
    return str(tfl.utils.opcode2name(value))


def _read_tensor(model: Any, tensor: Any, index: int, buf: bytes, file: Path) -> TfliteTensor:
    name = tensor.Name().decode()
    dtype = _TENSOR_DTYPES.get(int(tensor.Type()))
    if dtype is None:
        raise InvalidInputError(f"{file}: tensor '{name}' has TFLite type {tensor.Type()}, which is not supported")
    if tensor.Sparsity() is not None:
        raise InvalidInputError(f"{file}: tensor '{name}' is sparse; use a dense model")
    shape_array = tensor.ShapeAsNumpy()
    shape = tuple(int(d) for d in shape_array) if isinstance(shape_array, np.ndarray) else ()
    data = _buffer_data(model.Buffers(tensor.Buffer()), buf)
    values = None
    if data is not None and data.size:
        values = np.frombuffer(data.tobytes(), dtype=dtype.newbyteorder("<")).astype(dtype).reshape(shape)
    quant = tensor.Quantization()
    quantization = None
    if quant is not None and quant.ScaleLength() > 0:
        quantization = Quantization(
            scale=np.asarray(quant.ScaleAsNumpy(), dtype=np.float64),
            zero_point=np.asarray(quant.ZeroPointAsNumpy(), dtype=np.int64),
            axis=int(quant.QuantizedDimension()),
        )
    return TfliteTensor(index, name, shape, dtype, values, quantization)


def _buffer_data(buffer: Any, buf: bytes) -> np.ndarray | None:
    # Models over 2 GB keep data outside the flatbuffer, addressed by offset and size; small ones inline.
    offset = int(buffer.Offset()) if hasattr(buffer, "Offset") else 0
    if offset > 1:
        size = int(buffer.Size())
        return np.frombuffer(buf, dtype=np.uint8, count=size, offset=offset)
    data = buffer.DataAsNumpy()
    return data if isinstance(data, np.ndarray) else None


def _read_operator(tfl: Any, op: Any, codes: list[str]) -> TfliteOperator:
    kind = codes[op.OpcodeIndex()]
    options: dict[str, Any] = {}
    table_name = _OPTION_TABLES.get(kind)
    table = op.BuiltinOptions()
    if table_name is not None and table is not None:
        parsed = getattr(tfl, table_name)()
        parsed.Init(table.Bytes, table.Pos)
        for key, accessor in _OPTION_FIELDS[table_name]:
            value = getattr(parsed, accessor)()
            options[key] = tuple(int(v) for v in value) if isinstance(value, np.ndarray) else value
    return TfliteOperator(
        kind=kind,
        inputs=tuple(int(i) for i in op.InputsAsNumpy()),
        outputs=tuple(int(i) for i in op.OutputsAsNumpy()),
        options=options,
    )
