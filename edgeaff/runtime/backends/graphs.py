"""Runners for a bundle's graphs on the chosen backend and precision.

=============  ==============================================================================================
backend        what runs the graphs
=============  ==============================================================================================
``ort-cpu``    ONNX Runtime on the CPU (the default where no GPU is present)
``ort-cuda``   ONNX Runtime's CUDA execution provider
``ort-trt``    ONNX Runtime's TensorRT execution provider (its own engine cache, see ``docs/engines.md``)
``trt``        native TensorRT engines from edgeaff's engine cache, built on first use
=============  ==============================================================================================

Precision follows the bundle (``docs/export.md``): a precision the bundle was not exported with is refused; for a
precision it has, each graph uses its variant at that precision where one exists, else its FP32 graph, and the
summary records which file and precision each graph ran (never silently). INT8 on ONNX Runtime's CPU provider takes
the form this CPU runs well (:func:`cpu_int8_variant`, from :mod:`edgeaff.runtime.cpu`): ``int8`` (full-range
weights) with VNNI or ARM dot product, ``int8_avx2`` (7-bit weights) on AVX2 without VNNI, and FP32 where no INT8
kernel beats it; TensorRT's S8S8 form ``int8_trt`` never runs on ONNX Runtime's CPU provider (a third of FP32's speed
where it was measured). The TensorRT backends take their
requests from :func:`edgeaff.runtime.engines.bundle.bundle_engine_requests`, the function ``edgeaff build-engines``
uses, so engines built ahead of time are found in the cache. Nothing falls back to another device.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from edgeaff.runtime.artifacts.bundle import Bundle, Graph, GraphVariant
from edgeaff.runtime.artifacts.manifest import INT8_CPU, INT8_CPU_AVX2, TENSORRT_INT8, Precision
from edgeaff.runtime.backends.base import MAX_CUDA_DEVICE, Backend, Runner
from edgeaff.runtime.backends.cpu_threads import graph_spinning, graph_threads
from edgeaff.runtime.cpu import CpuInfo, Int8Kernels, host_cpu
from edgeaff.runtime.errors import InvalidInputError
from edgeaff.runtime.limits import check_threads


@dataclasses.dataclass(frozen=True)
class BackendOptions:
    """How to run the graphs.

    Attributes:
        backend: a :class:`Backend` (or its name).
        precision: ``fp32``, ``fp16`` or ``int8`` (a :class:`Precision` or its name; stored as a
            :class:`Precision`); must be one the bundle provides.
        threads: ONNX Runtime intra-op threads per graph, 1..4 × the usable cores (``None``: chosen per graph by the
            cores this process may use, :func:`edgeaff.runtime.backends.cpu_threads.graph_threads`).
        spinning: let ONNX Runtime's intra-op threads spin between parallel sections (``None``: the measured
            default, :data:`edgeaff.runtime.backends.cpu_threads.DEFAULT_SPINNING`).
        engine_cache: TensorRT engine cache directory (``None``: ``$EDGEAFF_CACHE_DIR/engines``).
        shapes: dynamic-axis ranges overriding the defaults, as given to ``edgeaff build-engines --shape``.
        device: CUDA device ordinal.
    """

    backend: Backend = Backend.ORT_CPU
    precision: Precision = Precision.FP32
    threads: int | None = None
    engine_cache: Path | None = None
    shapes: Mapping[str, tuple[int, int, int]] = dataclasses.field(default_factory=dict)
    device: int = 0
    spinning: bool | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "backend", Backend.parse(self.backend))
        object.__setattr__(self, "precision", Precision.parse(self.precision))
        check_threads(self.threads)
        if isinstance(self.device, bool) or not 0 <= self.device <= MAX_CUDA_DEVICE:
            raise InvalidInputError(f"the CUDA device ordinal must be 0..{MAX_CUDA_DEVICE}, got {self.device}")


@dataclasses.dataclass(frozen=True)
class GraphChoice:
    """The file and precision one graph runs with, and why it differs from the request (if it does)."""

    role: str
    file: str
    precision: str
    note: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form for the summary."""
        return dataclasses.asdict(self)


def check_precision(bundle: Bundle, options: BackendOptions) -> None:
    """Refuse a precision the bundle was not exported with.

    Raises:
        InvalidInputError: with the precisions the bundle has and how to get the one asked for.
    """
    if options.precision not in bundle.precisions:
        flag = {"fp16": "--fp16", "int8": "--int8 --calib PREPARED_DIR"}.get(options.precision, "")
        raise InvalidInputError(
            f"the bundle {bundle.root} has no {options.precision} graphs (it has {', '.join(bundle.precisions)}); "
            f"choose one of those with --precision, or re-export with {flag}"
        )


def cpu_int8_variant(graph: Graph, cpu: CpuInfo, *, seven_bit_int8: bool = False) -> tuple[GraphVariant, str | None]:
    """The variant of ``graph`` that ONNX Runtime's CPU provider runs for ``int8`` on ``cpu``, and why it is not
    the ``int8`` file when it is not.

    Never TensorRT's S8S8 form; the FP32 graph where the CPU has no INT8 kernel that beats FP32 or the graph has no
    CPU form that fits it. ``seven_bit_int8``: the bundle's ``int8`` has 7-bit weights (schema versions 1 and 2), so
    AVX2 CPUs without VNNI may run it.
    """
    kernels = cpu.int8_kernels
    fp32 = graph.variants[Precision.FP32.value]
    if INT8_CPU not in graph.variants:
        if TENSORRT_INT8 in graph.variants:
            return fp32, (
                f"'{graph.role}' has INT8 only in TensorRT's S8S8 form, which ONNX Runtime runs slower than FP32 on "
                "a CPU: its FP32 graph runs"
            )
        return fp32, f"the bundle has no int8 variant of '{graph.role}': its FP32 graph runs (the bundle's rule)"
    if kernels is Int8Kernels.NONE:
        return fp32, (
            f"this CPU ({cpu.machine}, no VNNI, AVX2 or ARM dot product) has no INT8 kernel faster than FP32: "
            f"'{graph.role}' runs its FP32 graph"
        )
    if kernels is Int8Kernels.AVX2 and not seven_bit_int8:
        # Full-range weights would saturate AVX2's 16-bit pair sums: the 7-bit form, or FP32 where the graph has none.
        if INT8_CPU_AVX2 in graph.variants:
            return graph.variants[INT8_CPU_AVX2], None
        return fp32, (
            f"'{graph.role}' has no 7-bit INT8 form for this AVX2 CPU without VNNI (full-range int8 would saturate its "
            "16-bit sums): its FP32 graph runs"
        )
    return graph.variants[INT8_CPU], None


def graph_runner(
    bundle: Bundle,
    role: str,
    options: BackendOptions,
    *,
    threads: int | None = None,
    cpu: CpuInfo | None = None,
) -> tuple[Runner, GraphChoice]:
    """A runner (not yet entered) for the bundle's graph ``role``, and what it will run.

    Args:
        bundle: a loaded bundle.
        role: ``visual``, ``vggish``, ``temporal``, ``temporal_stream`` or ``face_detector``.
        options: backend and precision (checked with :func:`check_precision` first).
        threads: ONNX Runtime threads for this graph, overriding ``options.threads`` (``None`` in both: the graph's
            default, :func:`~edgeaff.runtime.backends.cpu_threads.graph_threads`).
        cpu: the CPU whose flags choose the INT8 form on ``ort-cpu`` (``None``: this machine's).

    Raises:
        InvalidInputError: the bundle has no such graph, or the precision is not in the bundle.
        MissingDependencyError: the backend's library is missing (raised when the runner is entered).
    """
    check_precision(bundle, options)
    if role not in bundle.graphs:
        raise InvalidInputError(f"the bundle {bundle.root} has no '{role}' graph (it has {', '.join(bundle.graphs)})")
    count = graph_threads(role, options.threads if threads is None else threads)
    spinning = graph_spinning(options.spinning)
    if options.backend.tensorrt:
        from edgeaff.runtime.engines.bundle import bundle_engine_requests

        engine = bundle_engine_requests(bundle, options.precision, overrides=options.shapes, roles=[role])[0]
        request = engine.request
        choice = GraphChoice(role, request.onnx_path.name, request.precision.value, engine.note)
        if options.backend is Backend.TRT:
            from edgeaff.runtime.backends.trt import TrtRunner

            return TrtRunner.from_request(request, cache_dir=options.engine_cache, device=options.device), choice
        from edgeaff.runtime.backends.ort import OrtRunner

        runner = OrtRunner(
            request.onnx_path,
            backend="ort-trt",
            threads=count,
            precision=request.precision,
            cache_dir=options.engine_cache,
            profiles=dict(request.profiles),
            device_id=options.device,
            spinning=spinning,
        )
        return runner, choice
    from edgeaff.runtime.backends.ort import OrtRunner

    graph = bundle.graphs[role]
    note = None
    if options.backend is Backend.ORT_CPU and options.precision is Precision.INT8:
        legacy = bundle.manifest.schema_version < 3  # its int8 is the 7-bit form
        variant, note = cpu_int8_variant(graph, cpu or host_cpu(), seven_bit_int8=legacy)
    elif (found := graph.variants.get(options.precision)) is not None:
        variant = found
    else:
        variant = graph.variants["fp32"]
        note = f"the bundle has no {options.precision} variant of '{role}': its FP32 graph runs (the bundle's rule)"
    runner = OrtRunner(
        variant.path, backend=options.backend, threads=count, device_id=options.device, spinning=spinning
    )
    return runner, GraphChoice(role, variant.path.name, variant.precision, note)
