"""The machine's practical peak, measured: what its engine reaches on a large GEMM and convolution.

A benchmark says how far a graph is from what the machine can do only against a peak measured the same way, on the
same engine, with the same threads, under the same load. :func:`measure_peaks` builds small ONNX graphs with
``onnx.helper`` at run time (seeded random weights), runs each through the runner the bundle's graphs use, and
reports throughput in GOP/s (counted FLOPs, :mod:`edgeaff.bench.flops`, per second):

================  =============================================================================================
backend           peaks measured
================  =============================================================================================
``ort-cpu``       FP32 ``MatMul`` and ``Conv``; INT8 ``MatMulInteger`` and ``QLinearConv`` with uint8 activations and
                  int8 weights (U8S8, the form ONNX Runtime's VNNI / AVX2 kernels run; what ``edgeaff export --int8``
                  produces after ONNX Runtime fuses its QDQ nodes)
``trt``           FP32 (TF32 off), FP16 and INT8 (explicit Q/DQ) ``MatMul`` and ``Conv``, native TensorRT engines;
                  time on the GPU only (CUDA events around the engine, copies excluded)
``ort-trt``       the same three precisions through ONNX Runtime's TensorRT execution provider (wall time of a call)
``ort-cuda``      FP32 and FP16 through ONNX Runtime's CUDA execution provider (INT8 has no CUDA EP kernels)
================  =============================================================================================

The convolutions are chains of 3×3 layers (so layout conversions at the graph's ends weigh little), the GEMMs one
large product on the CPU and a chain of them on a GPU.

A graph that runs one frame at a time (the streaming temporal step) does not reach any of these: it reads each
weight once per call and does two FLOPs with it, so memory, not arithmetic, sets its speed. Every backend therefore
also measures a **bandwidth peak**: a chain of :data:`GEMV_CHAIN` FP32 matrix-vector products, ``(1×K)·(K×K)``
with K = :data:`GEMV_WIDTH` (128 MiB of weights, more than the last-level cache of the machines edgeaff targets, so
they stream from memory on every call), reported as GB/s of weights read (``gbs``). :mod:`edgeaff.bench.efficiency`
holds each graph against both peaks (a roofline). Each peak runs for a short time budget after two untimed
calls. The peak (``gops``) is the throughput of the fastest call: load from other processes only ever slows a call
down, so on a shared machine the fastest call is the closest estimate of what the machine can do (and fractions of
it come out lower, never above 100%, when the run was disturbed); ``mean_gops`` (FLOPs × calls / total seconds)
shows how much the load varied. Needs the ``onnx`` package; without it no peak is measured, and the
benchmark says so.
"""

from __future__ import annotations

import contextlib
import dataclasses
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from edgeaff.bench.flops import count_flops
from edgeaff.runtime import Backend, BackendOptions, OrtRunner, Runner, graph_spinning, graph_threads
from edgeaff.runtime.errors import EdgeaffError, InvalidInputError, MissingDependencyError, require

OPSET = 18
SEED = 20211
CPU_MATMUL = (512, 1024, 1024)  # M, K, N
CPU_CONV = (4, 128, 20, 4)  # batch, channels, height = width, layers
GPU_MATMUL = (2048, 2048, 2048, 8)  # M, K, N, products in the chain
GPU_CONV = (16, 256, 20, 4)
GEMV_WIDTH = 2048
GEMV_CHAIN = 8
MIN_CALLS = 8


@dataclasses.dataclass(frozen=True)
class Peak:
    """One measured peak.

    Attributes:
        name: ``<precision>_<op>``, e.g. ``int8_conv``.
        precision: ``fp32``, ``fp16`` or ``int8``.
        op: ``matmul``, ``conv`` or ``gemv`` (the bandwidth peak).
        form: the operators and types run, e.g. ``MatMulInteger U8S8``.
        gops: counted GOP per second of the fastest call: the peak.
        mean_gops: counted GOP per second over all timed calls.
        flops_per_call: counted FLOPs of one call.
        calls: timed calls.
        shape: what one call computes.
        weight_bytes: bytes of weights one call reads (the bandwidth peak's; 0 for the compute peaks).
        gbs: GB/s of weights read by the fastest call (``None`` for the compute peaks).
    """

    name: str
    precision: str
    op: str
    form: str
    gops: float
    mean_gops: float
    flops_per_call: int
    calls: int
    shape: str
    weight_bytes: int = 0
    gbs: float | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class Peaks:
    """The peaks of one machine and engine.

    Attributes:
        engine: what ran them (``onnxruntime-cpu``, ``tensorrt``, ``onnxruntime-tensorrt``, ``onnxruntime-cuda``).
        threads: intra-op threads (CPU), as the bundle's large graphs get them.
        spinning: whether those threads spin.
        entries: every peak measured.
        skipped: ``{what: why}`` for peaks that could not run here.
        timing: ``gpu`` (CUDA events around the engine) or ``wall`` (a whole call).
    """

    engine: str
    threads: int | None
    spinning: bool | None
    entries: tuple[Peak, ...]
    skipped: dict[str, str]
    timing: str = "wall"

    def by_precision(self) -> dict[str, float]:
        """The highest compute ``gops`` measured at each precision (the peak a graph of that precision is held
        against; the bandwidth peak's GOP/s are not a compute peak)."""
        best: dict[str, float] = {}
        for entry in self.entries:
            if entry.gbs is None:
                best[entry.precision] = max(best.get(entry.precision, 0.0), entry.gops)
        return best

    @property
    def bandwidth_gbs(self) -> float | None:
        """The measured bandwidth peak in GB/s of weights read (``None``: not measured)."""
        measured = [entry.gbs for entry in self.entries if entry.gbs is not None]
        return max(measured) if measured else None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form, with :meth:`by_precision`."""
        return {
            "engine": self.engine,
            "threads": self.threads,
            "spinning": self.spinning,
            "timing": self.timing,
            "by_precision_gops": self.by_precision(),
            "bandwidth_gbs": self.bandwidth_gbs,
            "entries": [entry.to_dict() for entry in self.entries],
            "skipped": dict(self.skipped),
        }


# -- the graphs ----------------------------------------------------------------------------------------------------


def _helpers() -> tuple[Any, Any, Any]:
    onnx: Any = require("onnx", extra="bench", purpose="measuring the machine's peak")
    return onnx, onnx.helper, onnx.TensorProto


def _model(graph: Any) -> Any:
    onnx, helper, _ = _helpers()
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="edgeaff-bench")
    model.ir_version = min(model.ir_version, 10)  # readable by the ONNX Runtime and TensorRT versions edgeaff supports
    onnx.checker.check_model(model)
    return model


def _weights(rng: np.random.Generator, shape: tuple[int, ...], kind: str) -> np.ndarray:
    if kind == "int8":
        return rng.integers(-128, 128, shape, dtype=np.int8)
    fan_in = int(np.prod(shape[1:])) if len(shape) > 2 else shape[0]
    values = rng.normal(0.0, 1.0 / np.sqrt(fan_in), shape)
    return values.astype(np.float16 if kind == "fp16" else np.float32)


def matmul_graph(form: str, m: int, k: int, n: int, *, chain: int = 1) -> Any:
    """``Y = X·W1·W2·…`` (``chain`` products; square weights after the first) in one of the peak forms.

    Args:
        form: ``fp32``, ``fp16`` (float typed), ``qdq`` (float I/O, int8 Q/DQ around every product, for TensorRT)
            or ``u8s8`` (``MatMulInteger``, uint8 input and int8 weights, int32 output; ``chain`` must be 1).
    """
    _, helper, tp = _helpers()
    rng = np.random.default_rng(SEED)
    if form == "u8s8":
        if chain != 1:
            raise InvalidInputError("the MatMulInteger peak is one product")
        weight = helper.make_tensor("w", tp.INT8, (k, n), _weights(rng, (k, n), "int8").tobytes(), raw=True)
        zeros = [helper.make_tensor("a_zp", tp.UINT8, (), [128]), helper.make_tensor("w_zp", tp.INT8, (), [0])]
        node = helper.make_node("MatMulInteger", ["x", "w", "a_zp", "w_zp"], ["y"])
        graph = helper.make_graph(
            [node], "peak_matmul_u8s8", [helper.make_tensor_value_info("x", tp.UINT8, (m, k))],
            [helper.make_tensor_value_info("y", tp.INT32, (m, n))], initializer=[weight, *zeros],
        )  # fmt: skip
        return _model(graph)
    element = tp.FLOAT16 if form == "fp16" else tp.FLOAT
    nodes: list[Any] = []
    initialisers: list[Any] = []
    current, width = "x", k
    for index in range(chain):
        array = _weights(rng, (width, n), "int8" if form == "qdq" else form)
        name = f"w{index}"
        if form == "qdq":
            current, name = _qdq(nodes, initialisers, current, array, index)
        else:
            initialisers.append(helper.make_tensor(name, element, array.shape, array.tobytes(), raw=True))
        output = "y" if index == chain - 1 else f"h{index}"
        nodes.append(helper.make_node("MatMul", [current, name], [output]))
        current, width = output, n
    graph = helper.make_graph(
        nodes, f"peak_matmul_{form}", [helper.make_tensor_value_info("x", element, (m, k))],
        [helper.make_tensor_value_info("y", element, (m, n))], initializer=initialisers,
    )  # fmt: skip
    return _model(graph)


def _qdq(nodes: list[Any], initialisers: list[Any], current: str, weight: np.ndarray, index: int) -> tuple[str, str]:
    """Quantise-dequantise ``current`` and dequantise an int8 ``weight`` (symmetric, zero point 0)."""
    _, helper, tp = _helpers()
    x_scale, w_scale, zero = f"xs{index}", f"ws{index}", f"zp{index}"
    initialisers += [
        helper.make_tensor(x_scale, tp.FLOAT, (), [0.05]),
        helper.make_tensor(w_scale, tp.FLOAT, (), [0.01]),
        helper.make_tensor(zero, tp.INT8, (), [0]),
        helper.make_tensor(f"wq{index}", tp.INT8, weight.shape, weight.tobytes(), raw=True),
    ]
    nodes += [
        helper.make_node("QuantizeLinear", [current, x_scale, zero], [f"xq{index}"]),
        helper.make_node("DequantizeLinear", [f"xq{index}", x_scale, zero], [f"xd{index}"]),
        helper.make_node("DequantizeLinear", [f"wq{index}", w_scale, zero], [f"wd{index}"]),
    ]
    return f"xd{index}", f"wd{index}"


def conv_graph(form: str, batch: int, channels: int, size: int, layers: int) -> Any:
    """A chain of ``layers`` 3×3 convolutions (stride 1, padding 1, ``channels`` in and out) in one of the forms of
    :func:`matmul_graph`; ``u8s8`` is a chain of ``QLinearConv`` (uint8 activations, int8 weights, int32 bias)."""
    _, helper, tp = _helpers()
    rng = np.random.default_rng(SEED + 1)
    shape = (batch, channels, size, size)
    kernel = (channels, channels, 3, 3)
    nodes: list[Any] = []
    initialisers: list[Any] = []
    current = "x"
    pads = {"kernel_shape": [3, 3], "pads": [1, 1, 1, 1]}
    if form == "u8s8":
        initialisers += [
            helper.make_tensor("scale", tp.FLOAT, (), [0.02]),
            helper.make_tensor("w_scale", tp.FLOAT, (), [0.002]),
            helper.make_tensor("x_zp", tp.UINT8, (), [128]),
            helper.make_tensor("w_zp", tp.INT8, (), [0]),
            helper.make_tensor("bias", tp.INT32, (channels,), [0] * channels),
        ]
        for index in range(layers):
            weight = _weights(rng, kernel, "int8")
            initialisers.append(helper.make_tensor(f"w{index}", tp.INT8, kernel, weight.tobytes(), raw=True))
            output = "y" if index == layers - 1 else f"h{index}"
            inputs = [current, "scale", "x_zp", f"w{index}", "w_scale", "w_zp", "scale", "x_zp", "bias"]
            nodes.append(helper.make_node("QLinearConv", inputs, [output], **pads))
            current = output
        element = tp.UINT8
    else:
        element = tp.FLOAT16 if form == "fp16" else tp.FLOAT
        for index in range(layers):
            array = _weights(rng, kernel, "int8" if form == "qdq" else form)
            name = f"w{index}"
            if form == "qdq":
                current, name = _qdq(nodes, initialisers, current, array, index)
            else:
                initialisers.append(helper.make_tensor(name, element, kernel, array.tobytes(), raw=True))
            output = "y" if index == layers - 1 else f"h{index}"
            nodes.append(helper.make_node("Conv", [current, name], [output], **pads))
            current = output
    graph = helper.make_graph(
        nodes, f"peak_conv_{form}", [helper.make_tensor_value_info("x", element, shape)],
        [helper.make_tensor_value_info("y", element, shape)], initializer=initialisers,
    )  # fmt: skip
    return _model(graph)


# -- measuring -----------------------------------------------------------------------------------------------------

_FORM_WORDS = {
    "fp32": "float32",
    "fp16": "float16",
    "qdq": "int8 Q/DQ (symmetric)",
    "u8s8": "U8S8",
}


@dataclasses.dataclass(frozen=True)
class _Case:
    precision: str
    op: str
    form: str
    model: Any
    feed: dict[str, np.ndarray]
    shape: str


def _feed(model: Any) -> dict[str, np.ndarray]:
    _, helper, _ = _helpers()
    rng = np.random.default_rng(SEED + 2)
    feed = {}
    for tensor in model.graph.input:
        shape = tuple(d.dim_value for d in tensor.type.tensor_type.shape.dim)
        dtype = helper.tensor_dtype_to_np_dtype(tensor.type.tensor_type.elem_type)
        if np.issubdtype(dtype, np.integer):
            feed[tensor.name] = rng.integers(0, 256, shape).astype(dtype)
        else:
            feed[tensor.name] = rng.uniform(-1.0, 1.0, shape).astype(dtype)
    return feed


def _cases(backend: Backend) -> list[_Case]:
    gpu = backend.gpu
    precisions = {Backend.ORT_CPU: ("fp32", "int8"), Backend.ORT_CUDA: ("fp32", "fp16")}.get(
        backend, ("fp32", "fp16", "int8")
    )
    cases = []
    for precision in precisions:
        form = {"fp32": "fp32", "fp16": "fp16", "int8": "qdq" if gpu else "u8s8"}[precision]
        if gpu:
            m, k, n, chain = GPU_MATMUL
            matmul = matmul_graph(form, m, k, n, chain=chain)
            matmul_shape = f"({m}×{k})·({k}×{n}), {chain} products in a chain"
            batch, channels, size, layers = GPU_CONV
        else:
            m, k, n = CPU_MATMUL
            matmul = matmul_graph(form, m, k, n)
            matmul_shape = f"({m}×{k})·({k}×{n})"
            batch, channels, size, layers = CPU_CONV
        conv = conv_graph(form, batch, channels, size, layers)
        conv_shape = f"{layers} × 3×3 conv, {channels}→{channels} channels, {size}×{size}, batch {batch}"
        cases.append(_Case(precision, "matmul", form, matmul, _feed(matmul), matmul_shape))
        cases.append(_Case(precision, "conv", form, conv, _feed(conv), conv_shape))
    gemv = matmul_graph("fp32", 1, GEMV_WIDTH, GEMV_WIDTH, chain=GEMV_CHAIN)
    gemv_shape = f"(1×{GEMV_WIDTH})·({GEMV_WIDTH}×{GEMV_WIDTH}), {GEMV_CHAIN} products in a chain"
    cases.append(_Case("fp32", "gemv", "fp32", gemv, _feed(gemv), gemv_shape))
    return cases


def weight_bytes(model: Any, *, as_int8: bool = False) -> int:
    """Bytes of the model's initialisers (its weights); ``as_int8``: one byte each, as if all were quantised."""
    _, helper, _ = _helpers()
    return sum(
        int(np.prod(init.dims, dtype=np.int64))
        * (1 if as_int8 else np.dtype(helper.tensor_dtype_to_np_dtype(init.data_type)).itemsize)
        for init in model.graph.initializer
    )


def _form_name(case: _Case) -> str:
    ops = {
        ("u8s8", "matmul"): "MatMulInteger",
        ("u8s8", "conv"): "QLinearConv",
    }.get((case.form, case.op), "Conv" if case.op == "conv" else "MatMul")
    return f"{ops} {_FORM_WORDS[case.form]}"


def _time(
    runner: Runner, feed: dict[str, np.ndarray], seconds: float, clock: Callable[[], float | None]
) -> list[float]:
    """Seconds of each timed call (``clock``: the runner's own GPU time of the last call, if it has one)."""
    for _ in range(2):
        runner.infer(feed)
    samples: list[float] = []
    spent = 0.0
    while len(samples) < MIN_CALLS or spent < seconds:
        start = time.perf_counter()
        runner.infer(feed)
        wall = time.perf_counter() - start
        measured = clock()
        samples.append(wall if measured is None else measured)
        spent += wall
    return samples


def _open(
    path: Path, case: _Case, options: BackendOptions, stack: contextlib.ExitStack, *, threads: int, spinning: bool
) -> tuple[Runner, Callable[[], float | None]]:
    backend = options.backend
    if backend is Backend.TRT:
        from edgeaff.runtime import TrtRunner

        trt_runner = TrtRunner(path, precision=case.precision, cache_dir=options.engine_cache, device=options.device)
        stack.enter_context(trt_runner)

        def gpu_seconds() -> float | None:
            times = trt_runner.last_times
            return None if times is None else float(times.compute_ms) / 1000.0

        return trt_runner, gpu_seconds
    precision = case.precision if backend is Backend.ORT_TRT else None
    runner = OrtRunner(
        path, backend=backend.value, threads=threads, spinning=spinning, precision=precision, device_id=options.device,
        cache_dir=options.engine_cache,
    )  # fmt: skip
    stack.enter_context(runner)
    return runner, lambda: None


def measure_peaks(options: BackendOptions, *, seconds: float = 0.5, echo: Callable[[str], None] | None = None) -> Peaks:
    """Measure the practical peaks of the engine ``options`` name (see the module docstring).

    Args:
        options: the benchmark's backend, threads, spinning, device and engine cache.
        seconds: timed seconds per peak (at least :data:`MIN_CALLS` calls).
        echo: progress lines.

    Raises:
        MissingDependencyError: the ``onnx`` package is missing (nothing can be built), or the backend's library.
    """
    backend = options.backend
    threads = graph_threads(None, options.threads)
    spinning = graph_spinning(options.spinning)
    engine = {
        Backend.ORT_CPU: "onnxruntime-cpu",
        Backend.ORT_CUDA: "onnxruntime-cuda",
        Backend.ORT_TRT: "onnxruntime-tensorrt",
        Backend.TRT: "tensorrt",
    }[backend]
    onnx, _, _ = _helpers()
    entries: list[Peak] = []
    skipped: dict[str, str] = {}
    with tempfile.TemporaryDirectory(prefix="edgeaff-peak-") as scratch:
        for case in _cases(backend):
            name = f"{case.precision}_{case.op}"
            path = Path(scratch) / f"{name}.onnx"
            onnx.save(case.model, str(path))
            flops = count_flops(case.model).total
            if echo is not None:
                echo(f"peak: {name} ({_form_name(case)}, {case.shape})")
            try:
                with contextlib.ExitStack() as stack:
                    runner, clock = _open(path, case, options, stack, threads=threads, spinning=spinning)
                    samples = _time(runner, case.feed, seconds, clock)
            except MissingDependencyError:
                raise
            except EdgeaffError as exc:
                skipped[name] = f"{engine} could not run it: {exc}"
                continue
            total = float(sum(samples))
            read = weight_bytes(case.model) if case.op == "gemv" else 0
            entries.append(
                Peak(
                    name=name,
                    precision=case.precision,
                    op=case.op,
                    form=_form_name(case),
                    gops=flops / min(samples) / 1e9,
                    mean_gops=flops * len(samples) / total / 1e9,
                    flops_per_call=flops,
                    calls=len(samples),
                    shape=case.shape,
                    weight_bytes=read,
                    gbs=read / min(samples) / 1e9 if read else None,
                )
            )
    if backend is Backend.ORT_CUDA:
        skipped["int8"] = "ONNX Runtime's CUDA execution provider has no INT8 kernels to measure (use trt or ort-trt)"
    gpu = backend.gpu
    return Peaks(
        engine=engine,
        threads=None if gpu else threads,
        spinning=None if gpu else spinning,
        entries=tuple(entries),
        skipped=skipped,
        timing="gpu" if backend is Backend.TRT else "wall",
    )
