"""FP16 and INT8 variants of the bundle's FP32 ONNX graphs (no torch).

FP16 (``design.md`` §4): float tensors and weights become float16 except around numerically sensitive operators (L2
normalisation, LayerNorm, softmax, reductions, exp/log/pow/sqrt), which stay float32 behind explicit Cast nodes; graph
inputs and outputs stay float32 (the runtime feeds the same arrays as for FP32). The conversion is ONNX Runtime's
maintained ``transformers.float16`` tool with a block list; the result is checked with the ONNX checker (full type
inference: every operator sees one consistent float type, which the strongly typed TensorRT path needs) and loaded in
ONNX Runtime.

INT8: explicit Q/DQ nodes from static calibration on real frames (ONNX Runtime ``quantize_static`` after
``quant_pre_process``): unsigned 8-bit activations, signed per-channel 8-bit weights (U8S8, the fast form on x86 CPUs,
``feasibility.md`` §3), MinMax calibration. The U8S8 weights use a 7-bit range (``reduce_range``): x86 CPUs without VNNI
(AVX2 only, like the development machine) multiply U8S8 pairs with an instruction whose 16-bit sums saturate at full
8-bit range; measured on the demo's trained models, full-range weights lost up to 0.069 CCC against FP32 and 7-bit
weights 0.0013. Only convolutions, matrix products and the residual additions are quantised; the input scaling, the stem
convolution that reads the image, the embedding layer's output, L2 normalisation, fusion and heads stay float.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import logging
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from edgeaff.runtime.artifacts.manifest import INT8_CPU, INT8_CPU_AVX2, TENSORRT_INT8
from edgeaff.runtime.errors import EdgeaffError

FP16_BLOCKED_OPS = (
    "ReduceL2",
    "ReduceL1",
    "ReduceSum",
    "ReduceSumSquare",
    "ReduceMean",
    "ReduceMax",
    "ReduceMin",
    "ReduceProd",
    "ReduceLogSumExp",
    "LayerNormalization",
    "Softmax",
    "LogSoftmax",
    "Exp",
    "Log",
    "Pow",
    "Sqrt",
    "Reciprocal",
)
INT8_OP_TYPES = ("Conv", "Gemm", "MatMul", "Add")
INT8_CALIBRATION = "MinMax"


class PrecisionError(EdgeaffError):
    """A reduced-precision variant could not be built or failed its checks."""


def _consumers_of(model: Any, tensor: str) -> list[Any]:
    return [node for node in model.graph.node if tensor in node.input]


def fp16_node_block_list(model: Any) -> list[str]:
    """Names of nodes that must stay float32: blocked operators plus any Div/Mul that rescales by a norm."""
    blocked: list[str] = []
    for node in model.graph.node:
        if node.op_type in FP16_BLOCKED_OPS:
            blocked.append(node.name)
            if node.op_type in ("ReduceL2", "Sqrt"):
                blocked += [c.name for c in _consumers_of(model, node.output[0]) if c.op_type in ("Div", "Mul")]
    return blocked


def convert_fp16(source: Path, target: Path) -> None:
    """Write the FP16 variant of ``source`` to ``target`` (inputs/outputs float32, sensitive ops float32).

    Raises:
        PrecisionError: the converted graph fails the ONNX checker or does not load in ONNX Runtime.
    """
    import onnx
    from onnxruntime.transformers import float16

    model = onnx.load(str(source))
    _name_unnamed_nodes(model)
    blocked_nodes = fp16_node_block_list(model)
    with _quiet():
        converted = float16.convert_float_to_float16(
            model,
            keep_io_types=True,
            op_block_list=list(FP16_BLOCKED_OPS),
            node_block_list=blocked_nodes,
        )
    _sort_topologically(converted)
    # The tool's intermediate type annotations can disagree with what it actually built; drop them and let the
    # checker's strict inference derive every type from the weights and the Casts.
    del converted.graph.value_info[:]
    check_fp16_graph(converted, where=source.name)
    onnx.save(converted, str(target))
    _check_loads(target)


def check_fp16_graph(model: Any, *, where: str) -> None:
    """Full ONNX check (strict type inference) plus edgeaff's rules for FP16 graphs.

    Raises:
        PrecisionError: a checker failure, a graph input/output that is not float32 where the FP32 graph had one,
            a double-precision tensor, or no float16 weights at all.
    """
    import onnx

    try:
        onnx.checker.check_model(model, full_check=True)
    except onnx.checker.ValidationError as exc:
        raise PrecisionError(f"{where}: the FP16 graph fails the ONNX checker: {exc}") from None
    float16 = onnx.TensorProto.FLOAT16
    for value in [*model.graph.input, *model.graph.output]:
        if value.type.tensor_type.elem_type == float16:
            raise PrecisionError(f"{where}: FP16 graph {value.name} is float16; inputs and outputs must stay float32")
    if not any(init.data_type == float16 for init in model.graph.initializer):
        raise PrecisionError(f"{where}: the FP16 graph has no float16 weights")
    inferred = onnx.shape_inference.infer_shapes(model, strict_mode=True)
    doubles = [v.name for v in inferred.graph.value_info if v.type.tensor_type.elem_type == onnx.TensorProto.DOUBLE]
    if doubles:
        raise PrecisionError(f"{where}: the FP16 graph has float64 tensors {doubles[:3]}")


class _FrameBatches:
    """ONNX Runtime calibration reader over batches of real frames."""

    def __init__(self, input_name: str, batches: Iterable[np.ndarray]) -> None:
        self._iterator: Iterator[np.ndarray] = iter(batches)
        self._name = input_name

    def get_next(self) -> dict[str, np.ndarray] | None:
        batch = next(self._iterator, None)
        return None if batch is None else {self._name: batch}

    def rewind(self) -> None:  # pragma: no cover - quantize_static calls it only for some methods
        raise PrecisionError("calibration data can be read once only")


@dataclasses.dataclass(frozen=True)
class Int8Form:
    """One INT8 form of a graph: its variant key in the bundle, its integer types and whom it is for.

    Attributes:
        key: the variant key (:data:`~edgeaff.runtime.artifacts.manifest.INT8_FORMS`).
        symmetric: int8 activations with zero points 0 (S8S8, TensorRT's form) instead of uint8 activations (U8S8).
        seven_bit: weights in [-64, 64] (ONNX Runtime's ``reduce_range``) instead of the full int8 range.
        target: who runs it, in words (for the manifest).
    """

    key: str
    symmetric: bool
    seven_bit: bool
    target: str

    @property
    def file_suffix(self) -> str:
        """``int8``, ``int8-avx2``, ``int8-trt``: the part of the file name after the graph's role."""
        return self.key.replace("_", "-")


# U8S8 with full-range weights: VNNI (AVX-512 VNNI, AVX-VNNI, AMX) and ARM dot-product kernels multiply and add
# u8 x s8 pairs into 32-bit sums, exactly; 7-bit weights would only cost precision there (no speed).
INT8_VNNI = Int8Form(
    INT8_CPU, symmetric=False, seven_bit=False, target="ONNX Runtime on CPUs with VNNI or ARM dot product (U8S8)"
)
# U8S8 with 7-bit weights: AVX2 CPUs without VNNI add pairs of u8 x s8 products in 16 bits (vpmaddubsw), which
# saturate with full-range weights (255 * 127 * 2 > 32767); with 7-bit weights the sums fit.
INT8_AVX2 = Int8Form(
    INT8_CPU_AVX2, symmetric=False, seven_bit=True, target="ONNX Runtime on AVX2 CPUs without VNNI (U8S8, 7-bit)"
)
# S8S8: the only Q/DQ form TensorRT takes. Never for ONNX Runtime on a CPU: its S8S8 kernels run at a third of FP32.
INT8_TENSORRT = Int8Form(TENSORRT_INT8, symmetric=True, seven_bit=False, target="TensorRT (signed symmetric Q/DQ)")
INT8_FORMS = (INT8_VNNI, INT8_AVX2, INT8_TENSORRT)


def quantize_int8(
    source: Path,
    target: Path,
    *,
    input_name: str,
    batches: list[np.ndarray],
    form: Int8Form = INT8_VNNI,
    float_nodes: list[str] | None = None,
) -> dict[str, Any]:
    """Write an INT8 (Q/DQ, per-channel weights) variant of ``source`` in ``form``, calibrated on ``batches``.

    Args:
        source: FP32 graph.
        target: output path.
        input_name: the graph input the batches feed.
        batches: real input batches (never random: scales come from these).
        form: which of :data:`INT8_FORMS` to write.
        float_nodes: nodes to keep float besides the convolutions that read the input (:func:`input_convolutions`).

    Returns:
        A JSON-ready description of the recipe for the manifest.

    Raises:
        PrecisionError: no calibration batches, or the result does not load in ONNX Runtime.
    """
    import onnx
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    if not batches:
        raise PrecisionError("INT8 quantisation needs calibration data; none was given")
    symmetric = form.symmetric
    with tempfile.TemporaryDirectory(prefix="edgeaff-int8-") as scratch:
        prepared = Path(scratch) / "prepared.onnx"
        with _quiet():
            quant_pre_process(str(source), str(prepared), skip_symbolic_shape=True)
        model = onnx.load(str(prepared))
        _name_unnamed_nodes(model)
        excluded = input_convolutions(model) + list(float_nodes or [])
        onnx.save(model, str(prepared))
        with _quiet():
            quantize_static(
                str(prepared),
                str(target),
                _FrameBatches(input_name, batches),
                quant_format=QuantFormat.QDQ,
                op_types_to_quantize=list(INT8_OP_TYPES),
                per_channel=True,
                reduce_range=form.seven_bit,
                activation_type=QuantType.QInt8 if symmetric else QuantType.QUInt8,
                weight_type=QuantType.QInt8,
                calibrate_method=getattr(CalibrationMethod, INT8_CALIBRATION),
                nodes_to_exclude=excluded,
                extra_options={
                    # The embedding layer's output feeds the L2 normalisation: keep it float.
                    "OpTypesToExcludeOutputQuantization": ["Gemm"],
                    "ActivationSymmetric": symmetric,
                    "WeightSymmetric": True,
                    # TensorRT takes int8 Q/DQ only and fuses float biases itself: no int32 bias quantisation.
                    "QuantizeBias": not symmetric,
                },
            )
    prelu = None if symmetric else rewrite_prelu(target)
    _check_loads(target)
    return {
        "format": "QDQ",
        "activations": "int8 symmetric" if symmetric else "uint8",
        "target": form.target,
        "weights": "int8 per-channel" + (", 7-bit range (reduce_range)" if form.seven_bit else ", full range"),
        "calibration_method": INT8_CALIBRATION,
        "calibration_examples": int(sum(len(b) for b in batches)),
        "quantized_op_types": list(INT8_OP_TYPES),
        "float_outputs": ["Gemm"],
        "float_nodes": excluded,
        **({"prelu": prelu} if prelu else {}),
    }


def rewrite_prelu(path: Path) -> str | None:
    """Replace every PRelu of the graph at ``path`` by an equal expression that ONNX Runtime's CPU provider runs fast.

    ONNX Runtime runs the quantised convolutions channels-last; a PRelu between them then broadcasts its per-channel
    slope along the innermost axis, a slow path of its PRelu kernel (a quarter of an INT8 IR-50's time, measured).
    ``max(x, a·x)`` equals PRelu for slopes in [0, 1] and ``relu(x) + a·min(x, 0)`` for any slope, both exactly in
    float32 (one product, no rounding added), and run as fast vectorised element-wise kernels.

    Returns:
        A description for the recipe, or ``None`` when the graph has no PRelu.
    """
    import onnx
    from onnx import helper, numpy_helper

    model = onnx.load(str(path))
    graph = model.graph
    slopes = {init.name: numpy_helper.to_array(init) for init in graph.initializer}
    zero = "edgeaff_prelu_zero"
    nodes: list[Any] = []
    counts = {"max": 0, "relu_min": 0}
    for node in graph.node:
        slope = slopes.get(node.input[1]) if node.op_type == "PRelu" else None
        if slope is None:
            nodes.append(node)
            continue
        x, a, y, name = node.input[0], node.input[1], node.output[0], node.name or node.output[0]
        if float(slope.min()) >= 0.0 and float(slope.max()) <= 1.0:
            nodes += [
                helper.make_node("Mul", [x, a], [f"{name}_ax"], name=f"{name}_ax"),
                helper.make_node("Max", [x, f"{name}_ax"], [y], name=f"{name}_max"),
            ]
            counts["max"] += 1
        else:
            nodes += [
                helper.make_node("Relu", [x], [f"{name}_pos"], name=f"{name}_pos"),
                helper.make_node("Min", [x, zero], [f"{name}_neg"], name=f"{name}_neg"),
                helper.make_node("Mul", [f"{name}_neg", a], [f"{name}_aneg"], name=f"{name}_aneg"),
                helper.make_node("Add", [f"{name}_pos", f"{name}_aneg"], [y], name=f"{name}_sum"),
            ]
            counts["relu_min"] += 1
    if not any(counts.values()):
        return None
    if counts["relu_min"]:
        graph.initializer.append(numpy_helper.from_array(np.zeros((), np.float32), zero))
    del graph.node[:]
    graph.node.extend(nodes)
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return (
        f"PRelu as max(x, a*x) ({counts['max']} nodes) or relu(x) + a*min(x, 0) ({counts['relu_min']}), in float32: "
        "equal results, ONNX Runtime's fast element-wise kernels"
    )


def input_convolutions(model: Any) -> list[str]:
    """Names of the convolutions that read the graph inputs (through preprocessing only).

    They stay float: they cost little (3 input channels) and quantising the stem of a deep residual network costs
    far more accuracy than any other layer (measured on IR-50: embedding cosine 0.94 with the stem quantised,
    0.9999 with any other single convolution quantised).
    """
    derived = {value.name for value in model.graph.input}
    stems: list[str] = []
    for node in model.graph.node:  # topologically sorted
        if not any(name in derived for name in node.input):
            continue
        if node.op_type == "Conv":
            stems.append(node.name)
        else:
            derived.update(node.output)
    return stems


def _name_unnamed_nodes(model: Any) -> None:
    used = {node.name for node in model.graph.node if node.name}
    for index, node in enumerate(model.graph.node):
        if not node.name:
            name = f"{node.op_type}_{index}"
            while name in used:
                name += "_"
            node.name = name
            used.add(name)


def _sort_topologically(model: Any) -> None:
    """Reorder the nodes so every input is produced before it is used (the FP16 tool appends its Casts)."""
    available = {i.name for i in model.graph.input} | {i.name for i in model.graph.initializer} | {""}
    pending = list(model.graph.node)
    ordered = []
    while pending:
        ready = [n for n in pending if all(name in available for name in n.input)]
        if not ready:
            raise PrecisionError("the converted graph has a cycle or an input nobody produces")
        for node in ready:
            available.update(node.output)
        ordered += ready
        pending = [n for n in pending if all(n is not r for r in ready)]
    del model.graph.node[:]
    model.graph.node.extend(ordered)


def _check_loads(path: Path) -> None:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    try:
        ort.InferenceSession(str(path), sess_options=options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own exception types
        raise PrecisionError(f"{path.name}: ONNX Runtime cannot load the converted graph ({exc})") from None


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Silence the converters' prints and info logs (they go to stdout/stderr and the root logger)."""
    sink = io.StringIO()
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.WARNING)
    try:
        with contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink):
            yield
    finally:
        root.setLevel(level)
