"""A minimal ONNX graph, serialised by hand, for checking that an execution provider really runs.

The runtime does not depend on the ``onnx`` package, so the few protobuf fields needed are written here directly.
The graph is ``y = x + x`` on a float32 tensor of shape (1, 4): ONNX Runtime places it on any execution provider,
and TensorRT builds an engine for it in well under a second.
"""

from __future__ import annotations

PROBE_INPUT = "x"
PROBE_OUTPUT = "y"
PROBE_SHAPE = (1, 4)
_FLOAT = 1  # TensorProto.DataType.FLOAT


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _int_field(number: int, value: int) -> bytes:
    return _varint(number << 3) + _varint(value)


def _bytes_field(number: int, value: bytes | str) -> bytes:
    data = value.encode() if isinstance(value, str) else value
    return _varint((number << 3) | 2) + _varint(len(data)) + data


def _value_info(name: str, shape: tuple[int, ...]) -> bytes:
    dims = b"".join(_bytes_field(1, _int_field(1, size)) for size in shape)  # Dimension.dim_value
    tensor_type = _int_field(1, _FLOAT) + _bytes_field(2, dims)  # TypeProto.Tensor: elem_type, shape
    return _bytes_field(1, name) + _bytes_field(2, _bytes_field(1, tensor_type))  # ValueInfoProto: name, type


def probe_model_bytes(*, opset: int = 13, ir_version: int = 8) -> bytes:
    """Serialised ``ModelProto`` of ``y = x + x`` (float32, shape (1, 4)).

    Args:
        opset: default-domain operator set version.
        ir_version: ONNX IR version (8 is read by every ONNX Runtime since 1.10).

    Returns:
        Bytes that ``onnxruntime.InferenceSession`` accepts in place of a file path.
    """
    node = _bytes_field(1, PROBE_INPUT) + _bytes_field(1, PROBE_INPUT) + _bytes_field(2, PROBE_OUTPUT)
    node += _bytes_field(3, "add") + _bytes_field(4, "Add")
    graph = _bytes_field(1, node) + _bytes_field(2, "edgeaff_probe")
    graph += _bytes_field(11, _value_info(PROBE_INPUT, PROBE_SHAPE))
    graph += _bytes_field(12, _value_info(PROBE_OUTPUT, PROBE_SHAPE))
    model = _int_field(1, ir_version) + _bytes_field(2, "edgeaff doctor") + _bytes_field(7, graph)
    model += _bytes_field(8, _int_field(2, opset))  # OperatorSetIdProto: version (default domain)
    return model
