"""Write small TFLite flatbuffers for converter tests, with the ``tflite`` schema package's builder functions.

Only what the tests need: float32 activations, constant tensors (float32, float16 or quantised int8), builtin
operators with the option tables the converter reads.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any

import flatbuffers
import numpy as np
import tflite

_TYPES = {np.dtype(np.float32): 0, np.dtype(np.float16): 1, np.dtype(np.int32): 2, np.dtype(np.int8): 9}


@dataclasses.dataclass
class _Tensor:
    name: str
    shape: tuple[int, ...]
    dtype: np.dtype
    data: np.ndarray | None
    scale: np.ndarray | None = None
    zero_point: np.ndarray | None = None
    axis: int = 0


@dataclasses.dataclass
class _Op:
    code: int
    inputs: list[int]
    outputs: list[int]
    options_type: int
    options: Callable[[flatbuffers.Builder], int] | None


class TfliteModelBuilder:
    """Collect tensors and operators, then :meth:`save` a ``.tflite`` file.

    Example::

        m = TfliteModelBuilder()
        x = m.input("x", (1, 8, 8, 3))
        w = m.const("w", np.ones((4, 3, 3, 3), np.float32))
        y = m.op("CONV_2D", [x, w, m.const("b", np.zeros(4, np.float32))], (1, 8, 8, 4), conv2d_options())
        m.output(y); m.save("tiny.tflite")
    """

    def __init__(self) -> None:
        self.tensors: list[_Tensor] = []
        self.ops: list[_Op] = []
        self.inputs: list[int] = []
        self.outputs: list[int] = []

    def _add(self, tensor: _Tensor) -> int:
        self.tensors.append(tensor)
        return len(self.tensors) - 1

    def input(self, name: str, shape: tuple[int, ...]) -> int:
        index = self._add(_Tensor(name, shape, np.dtype(np.float32), None))
        self.inputs.append(index)
        return index

    def const(self, name: str, value: np.ndarray, *, scale: np.ndarray | None = None, axis: int = 0) -> int:
        zero = None if scale is None else np.zeros(np.size(scale), np.int64)
        return self._add(_Tensor(name, value.shape, value.dtype, value, scale, zero, axis))

    def op(
        self,
        kind: str,
        inputs: list[int],
        shape: tuple[int, ...],
        options: tuple[int, Callable[[flatbuffers.Builder], int]] | None = None,
        *,
        name: str | None = None,
    ) -> int:
        out = self._add(_Tensor(name or f"{kind.lower()}_{len(self.tensors)}", shape, np.dtype(np.float32), None))
        code = getattr(tflite.BuiltinOperator, kind)
        options_type, build = options if options is not None else (0, None)
        self.ops.append(_Op(code, inputs, [out], options_type, build))
        return out

    def output(self, index: int) -> None:
        self.outputs.append(index)

    def save(self, path: str | Path) -> Path:
        b = flatbuffers.Builder(4096)
        buffers = [self._buffer(b, None)]
        tensor_offsets = []
        for tensor in self.tensors:
            buffer_index = 0
            if tensor.data is not None:
                buffers.append(self._buffer(b, np.ascontiguousarray(tensor.data).tobytes()))
                buffer_index = len(buffers) - 1
            tensor_offsets.append(self._tensor(b, tensor, buffer_index))
        codes = sorted({op.code for op in self.ops})
        code_offsets = []
        for code in codes:
            tflite.OperatorCodeStart(b)
            tflite.OperatorCodeAddDeprecatedBuiltinCode(b, min(code, 127))
            tflite.OperatorCodeAddBuiltinCode(b, code)
            tflite.OperatorCodeAddVersion(b, 1)
            code_offsets.append(tflite.OperatorCodeEnd(b))
        op_offsets = []
        for op in self.ops:
            options = op.options(b) if op.options is not None else None
            ins = b.CreateNumpyVector(np.array(op.inputs, dtype=np.int32))
            outs = b.CreateNumpyVector(np.array(op.outputs, dtype=np.int32))
            tflite.OperatorStart(b)
            tflite.OperatorAddOpcodeIndex(b, codes.index(op.code))
            tflite.OperatorAddInputs(b, ins)
            tflite.OperatorAddOutputs(b, outs)
            if options is not None:
                tflite.OperatorAddBuiltinOptionsType(b, op.options_type)
                tflite.OperatorAddBuiltinOptions(b, options)
            op_offsets.append(tflite.OperatorEnd(b))
        tensors = _vector(b, tflite.SubGraphStartTensorsVector, tensor_offsets)
        operators = _vector(b, tflite.SubGraphStartOperatorsVector, op_offsets)
        inputs = b.CreateNumpyVector(np.array(self.inputs, dtype=np.int32))
        outputs = b.CreateNumpyVector(np.array(self.outputs, dtype=np.int32))
        name = b.CreateString("main")
        tflite.SubGraphStart(b)
        tflite.SubGraphAddTensors(b, tensors)
        tflite.SubGraphAddInputs(b, inputs)
        tflite.SubGraphAddOutputs(b, outputs)
        tflite.SubGraphAddOperators(b, operators)
        tflite.SubGraphAddName(b, name)
        subgraph = tflite.SubGraphEnd(b)
        subgraphs = _vector(b, tflite.ModelStartSubgraphsVector, [subgraph])
        code_vector = _vector(b, tflite.ModelStartOperatorCodesVector, code_offsets)
        buffer_vector = _vector(b, tflite.ModelStartBuffersVector, buffers)
        description = b.CreateString("edgeaff converter test model")
        tflite.ModelStart(b)
        tflite.ModelAddVersion(b, 3)
        tflite.ModelAddOperatorCodes(b, code_vector)
        tflite.ModelAddSubgraphs(b, subgraphs)
        tflite.ModelAddDescription(b, description)
        tflite.ModelAddBuffers(b, buffer_vector)
        b.Finish(tflite.ModelEnd(b), file_identifier=b"TFL3")
        file = Path(path)
        file.write_bytes(bytes(b.Output()))
        return file

    @staticmethod
    def _buffer(b: flatbuffers.Builder, data: bytes | None) -> int:
        vector = None
        if data:
            b.StartVector(1, len(data), 16)
            b.head = b.head - len(data)
            b.Bytes[b.head : b.head + len(data)] = data
            vector = b.EndVector()
        tflite.BufferStart(b)
        if vector is not None:
            tflite.BufferAddData(b, vector)
        return tflite.BufferEnd(b)

    @staticmethod
    def _tensor(b: flatbuffers.Builder, tensor: _Tensor, buffer_index: int) -> int:
        name = b.CreateString(tensor.name)
        shape = b.CreateNumpyVector(np.array(tensor.shape, dtype=np.int32))
        quant = None
        if tensor.scale is not None and tensor.zero_point is not None:
            scale = b.CreateNumpyVector(np.asarray(tensor.scale, dtype=np.float32))
            zero = b.CreateNumpyVector(np.asarray(tensor.zero_point, dtype=np.int64))
            tflite.QuantizationParametersStart(b)
            tflite.QuantizationParametersAddScale(b, scale)
            tflite.QuantizationParametersAddZeroPoint(b, zero)
            tflite.QuantizationParametersAddQuantizedDimension(b, tensor.axis)
            quant = tflite.QuantizationParametersEnd(b)
        tflite.TensorStart(b)
        tflite.TensorAddShape(b, shape)
        tflite.TensorAddType(b, _TYPES[tensor.dtype])
        tflite.TensorAddBuffer(b, buffer_index)
        tflite.TensorAddName(b, name)
        if quant is not None:
            tflite.TensorAddQuantization(b, quant)
        return tflite.TensorEnd(b)


def _vector(b: flatbuffers.Builder, start: Callable[[Any, int], Any], offsets: list[int]) -> int:
    start(b, len(offsets))
    for offset in reversed(offsets):
        b.PrependUOffsetTRelative(offset)
    return b.EndVector()


# -- option tables -----------------------------------------------------------------------------------------------
SAME, VALID = 0, 1
ACT = {"none": 0, "relu": 1, "relu_n1_to_1": 2, "relu6": 3, "tanh": 4}


def conv2d_options(stride: int = 1, padding: int = SAME, activation: str = "none", dilation: int = 1) -> Any:
    def build(b: flatbuffers.Builder) -> int:
        tflite.Conv2DOptionsStart(b)
        tflite.Conv2DOptionsAddPadding(b, padding)
        tflite.Conv2DOptionsAddStrideW(b, stride)
        tflite.Conv2DOptionsAddStrideH(b, stride)
        tflite.Conv2DOptionsAddDilationWFactor(b, dilation)
        tflite.Conv2DOptionsAddDilationHFactor(b, dilation)
        tflite.Conv2DOptionsAddFusedActivationFunction(b, ACT[activation])
        return tflite.Conv2DOptionsEnd(b)

    return tflite.BuiltinOptions.Conv2DOptions, build


def depthwise_options(multiplier: int, stride: int = 1, padding: int = SAME, dilation: int = 1) -> Any:
    def build(b: flatbuffers.Builder) -> int:
        tflite.DepthwiseConv2DOptionsStart(b)
        tflite.DepthwiseConv2DOptionsAddPadding(b, padding)
        tflite.DepthwiseConv2DOptionsAddStrideW(b, stride)
        tflite.DepthwiseConv2DOptionsAddStrideH(b, stride)
        tflite.DepthwiseConv2DOptionsAddDepthMultiplier(b, multiplier)
        tflite.DepthwiseConv2DOptionsAddDilationWFactor(b, dilation)
        tflite.DepthwiseConv2DOptionsAddDilationHFactor(b, dilation)
        return tflite.DepthwiseConv2DOptionsEnd(b)

    return tflite.BuiltinOptions.DepthwiseConv2DOptions, build


def pool_options(size: int, stride: int, padding: int = SAME) -> Any:
    def build(b: flatbuffers.Builder) -> int:
        tflite.Pool2DOptionsStart(b)
        tflite.Pool2DOptionsAddPadding(b, padding)
        tflite.Pool2DOptionsAddStrideW(b, stride)
        tflite.Pool2DOptionsAddStrideH(b, stride)
        tflite.Pool2DOptionsAddFilterWidth(b, size)
        tflite.Pool2DOptionsAddFilterHeight(b, size)
        return tflite.Pool2DOptionsEnd(b)

    return tflite.BuiltinOptions.Pool2DOptions, build


def activation_options(kind: str, activation: str = "none") -> Any:
    """AddOptions / MulOptions / SubOptions with a fused activation."""
    table = {"ADD": "AddOptions", "MUL": "MulOptions", "SUB": "SubOptions"}[kind]

    def build(b: flatbuffers.Builder) -> int:
        getattr(tflite, f"{table}Start")(b)
        getattr(tflite, f"{table}AddFusedActivationFunction")(b, ACT[activation])
        return getattr(tflite, f"{table}End")(b)

    return getattr(tflite.BuiltinOptions, table), build


def concat_options(axis: int) -> Any:
    def build(b: flatbuffers.Builder) -> int:
        tflite.ConcatenationOptionsStart(b)
        tflite.ConcatenationOptionsAddAxis(b, axis)
        return tflite.ConcatenationOptionsEnd(b)

    return tflite.BuiltinOptions.ConcatenationOptions, build


def resize_options(*, align_corners: bool = False, half_pixel_centers: bool = False) -> Any:
    def build(b: flatbuffers.Builder) -> int:
        tflite.ResizeBilinearOptionsStart(b)
        tflite.ResizeBilinearOptionsAddAlignCorners(b, align_corners)
        tflite.ResizeBilinearOptionsAddHalfPixelCenters(b, half_pixel_centers)
        return tflite.ResizeBilinearOptionsEnd(b)

    return tflite.BuiltinOptions.ResizeBilinearOptions, build


def nearest_options(*, align_corners: bool = False, half_pixel_centers: bool = False) -> Any:
    def build(b: flatbuffers.Builder) -> int:
        tflite.ResizeNearestNeighborOptionsStart(b)
        tflite.ResizeNearestNeighborOptionsAddAlignCorners(b, align_corners)
        tflite.ResizeNearestNeighborOptionsAddHalfPixelCenters(b, half_pixel_centers)
        return tflite.ResizeNearestNeighborOptionsEnd(b)

    return tflite.BuiltinOptions.ResizeNearestNeighborOptions, build


def reshape_options(shape: tuple[int, ...]) -> Any:
    def build(b: flatbuffers.Builder) -> int:
        vector = b.CreateNumpyVector(np.array(shape, dtype=np.int32))
        tflite.ReshapeOptionsStart(b)
        tflite.ReshapeOptionsAddNewShape(b, vector)
        return tflite.ReshapeOptionsEnd(b)

    return tflite.BuiltinOptions.ReshapeOptions, build
