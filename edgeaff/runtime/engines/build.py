"""ONNX -> serialized TensorRT engine with the TensorRT Python API (no trtexec, no torch).

TensorRT 10 (JetPack 6 ships 10.3) and TensorRT 11 differ in how precision is chosen:

=====================  ==============================================  ===========================================
                       TensorRT 10 (weakly typed, the default here)     TensorRT 11 (strongly typed, always)
=====================  ==============================================  ===========================================
network                ``create_network(0)`` (explicit batch is         ``create_network`` with the STRONGLY_TYPED
                       implicit since 10.0)                             flag (accepted and ignored: always on)
``fp32``               no precision flag; TF32 cleared unless allowed   the graph must be FP32
``fp16``               ``BuilderFlag.FP16``; refused unless             the graph must already be FP16 (ModelOpt
                       ``platform_has_fast_fp16``                       AutoCast / edgeaff's FP16 export)
``int8``               Q/DQ graph + ``BuilderFlag.INT8`` (+ ``FP16``    the graph must hold Q/DQ nodes; precision
                       fallback where FP16 is fast); no calibrators     comes from them
capability queries     ``platform_has_fast_fp16/int8``                  removed
=====================  ==============================================  ===========================================

On TensorRT 10 a strongly typed build can be asked for (:attr:`BuildOptions.strongly_typed`); it then follows the
TensorRT 11 column. Never is a request silently downgraded: ``fp16`` on hardware without fast FP16, or a precision
the graph cannot provide, is an error. The pure decisions (:func:`plan_build`, :func:`format_parser_errors`) are
separate from the calls into TensorRT so they are unit-tested without a GPU.
"""

from __future__ import annotations

import dataclasses
import logging
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from edgeaff.runtime.engines.cache import TimingCacheFile
from edgeaff.runtime.engines.cuda import CudaDevice, import_tensorrt, tensorrt_logger
from edgeaff.runtime.engines.progress import monitor_build
from edgeaff.runtime.engines.spec import (
    BuildEnvironment,
    BuildOptions,
    EngineBuildError,
    EngineLoadError,
    EngineRequest,
    GraphInput,
    Precision,
    resolve_profiles,
)
from edgeaff.runtime.errors import InvalidInputError

log = logging.getLogger("edgeaff.engines")


@dataclasses.dataclass(frozen=True)
class GraphFacts:
    """What the parsed network says about its own precision."""

    has_qdq: bool
    has_fp16: bool


@dataclasses.dataclass(frozen=True)
class BuildPlan:
    """Builder flags to set and clear (``BuilderFlag`` member names)."""

    strongly_typed: bool
    set_flags: tuple[str, ...] = ()
    clear_flags: tuple[str, ...] = ()


def plan_build(
    precision: Precision,
    options: BuildOptions,
    *,
    tensorrt_major: int,
    graph: GraphFacts,
    fast_fp16: bool | None,
    fast_int8: bool | None,
    where: str,
) -> BuildPlan:
    """Decide the builder flags for a precision, or refuse what cannot be honoured.

    Args:
        precision: what the user asked for.
        options: builder options (typing, TF32).
        tensorrt_major: 10, 11, ...
        graph: facts of the parsed network.
        fast_fp16: ``builder.platform_has_fast_fp16`` (``None`` where TensorRT no longer has it).
        fast_int8: ``builder.platform_has_fast_int8`` (likewise).
        where: graph name for messages.

    Raises:
        InvalidInputError: the request cannot be built as asked.
    """
    strongly_typed = options.resolved_strongly_typed(tensorrt_major)
    clear = () if options.allow_tf32 else ("TF32",)
    if strongly_typed:
        needed = {
            Precision.FP32: (not graph.has_fp16 and not graph.has_qdq, "is not an FP32 graph (it holds FP16 or Q/DQ)"),
            Precision.FP16: (graph.has_fp16 and not graph.has_qdq, "is not an FP16 graph"),
            Precision.INT8: (graph.has_qdq, "has no Q/DQ (quantize/dequantize) nodes"),
        }
        ok, problem = needed[precision]
        if not ok:
            raise InvalidInputError(
                f"{where}: a strongly typed build (TensorRT {tensorrt_major}) takes its precision from the graph, "
                f"and this graph {problem}; export the graph in {precision.value} or ask for the graph's precision"
            )
        if precision is Precision.FP16 and fast_fp16 is False:
            raise InvalidInputError(f"{where}: this GPU has no fast FP16; build the FP32 graph instead")
        return BuildPlan(strongly_typed=True, clear_flags=clear)
    if graph.has_qdq and precision is not Precision.INT8:
        raise InvalidInputError(f"{where}: the graph is quantised (Q/DQ nodes); build it with --int8")
    if graph.has_fp16 and precision is Precision.FP32:
        raise InvalidInputError(f"{where}: the graph holds FP16 tensors; build it with --fp16 or export it in FP32")
    if precision is Precision.FP32:
        return BuildPlan(strongly_typed=False, clear_flags=clear)
    if precision is Precision.FP16:
        if not fast_fp16:
            raise InvalidInputError(
                f"{where}: --fp16 asked for, but this GPU has no fast FP16 (platform_has_fast_fp16 is False); "
                "build in fp32 instead (edgeaff never builds FP32 silently when FP16 was asked for)"
            )
        return BuildPlan(strongly_typed=False, set_flags=("FP16",), clear_flags=clear)
    if not graph.has_qdq:
        raise InvalidInputError(
            f"{where}: --int8 needs an explicitly quantised graph (Q/DQ nodes from edgeaff's INT8 export); "
            "implicit INT8 calibration is not supported"
        )
    if not fast_int8:
        raise InvalidInputError(f"{where}: --int8 asked for, but this GPU has no fast INT8; build in fp16 or fp32")
    return BuildPlan(strongly_typed=False, set_flags=("INT8", "FP16") if fast_fp16 else ("INT8",), clear_flags=clear)


@dataclasses.dataclass(frozen=True)
class ParserProblem:
    """One error of TensorRT's ONNX parser."""

    description: str
    node_index: int | None = None
    node_name: str | None = None
    node_operator: str | None = None


def format_parser_errors(path: Path, problems: Sequence[ParserProblem]) -> str:
    """One message for the parser's errors: the first in full, the count of the others."""
    if not problems:
        return f"{path}: TensorRT's ONNX parser rejected the graph without saying why"
    first = problems[0]
    where = ""
    if first.node_index is not None and first.node_index >= 0:
        where = f" at node {first.node_index}"
        if first.node_name:
            where += f" '{first.node_name}'"
        if first.node_operator:
            where += f" ({first.node_operator})"
    more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
    text = first.description.lower()
    if "zero point" in text or "zeropt" in text or "zero_point" in text:
        hint = (
            "TensorRT takes only symmetric signed INT8 Q/DQ (all zero points 0); quantise with symmetric int8 "
            "activations and weights (the U8S8 form that suits ONNX Runtime on x86 CPUs does not build)"
        )
    else:
        hint = "check that this TensorRT version supports the graph's operators and opset"
    return f"{path}: TensorRT's ONNX parser rejected the graph{where}: {first.description}{more}; {hint}"


class TensorRTBuilder:
    """Builds engines on the local GPU; satisfies :class:`edgeaff.runtime.engines.cache.EngineBuilder`.

    Args:
        device: CUDA device ordinal, or a :class:`CudaDevice` (anything with ``identity()`` and ``current()``) to
            share with a runner.
        trt: the ``tensorrt`` module (imported when not given).

    Raises:
        MissingDependencyError: TensorRT or pycuda is missing.
    """

    def __init__(self, device: int | CudaDevice = 0, *, trt: Any = None) -> None:
        self.trt = trt if trt is not None else import_tensorrt()
        self.device = CudaDevice(device) if isinstance(device, int) else device
        self.logger = tensorrt_logger(self.trt)
        self._environment: BuildEnvironment | None = None
        self._runtime: Any = None

    def environment(self) -> BuildEnvironment:
        """TensorRT version and this device."""
        if self._environment is None:
            self._environment = BuildEnvironment(str(self.trt.__version__), self.device.identity())
        return self._environment

    def build(self, request: EngineRequest, *, timing_cache: TimingCacheFile) -> bytes:
        """Parse ``request.onnx_path``, build it as requested and return the serialized engine.

        Raises:
            EngineBuildError: the parser or the builder failed.
            InvalidInputError: the profile or the precision does not fit the graph or the GPU.
        """
        trt = self.trt
        major = self.environment().tensorrt_major
        where = str(request.onnx_path)
        strongly_typed = request.options.resolved_strongly_typed(major)
        with self.device.current():
            builder = trt.Builder(self.logger)
            flags = 0
            if strongly_typed and hasattr(trt.NetworkDefinitionCreationFlag, "STRONGLY_TYPED"):
                flags |= 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)
            network = builder.create_network(flags)
            parser = trt.OnnxParser(network, self.logger)
            self.logger.take_errors()
            if not parser.parse_from_file(str(request.onnx_path)):
                problems = [_parser_problem(parser.get_error(i)) for i in range(parser.num_errors)]
                raise EngineBuildError(format_parser_errors(request.onnx_path, problems))
            inputs = [GraphInput(t.name, tuple(int(d) for d in t.shape)) for t in _network_inputs(network)]
            ranges = resolve_profiles(inputs, request.shape_ranges, where=where)
            with warnings.catch_warnings():  # TensorRT 10.12+ flags weak typing deprecated; 10.3 (JetPack 6) needs it
                warnings.simplefilter("ignore", DeprecationWarning)
                fast_fp16 = getattr(builder, "platform_has_fast_fp16", None)
                fast_int8 = getattr(builder, "platform_has_fast_int8", None)
            plan = plan_build(
                request.precision,
                request.options,
                tensorrt_major=major,
                graph=graph_facts(trt, network),
                fast_fp16=fast_fp16,
                fast_int8=fast_int8,
                where=where,
            )
            config = builder.create_builder_config()
            self._configure(config, request.options, plan)
            dynamic = [i for i in inputs if i.is_dynamic]
            if dynamic:
                profile = builder.create_optimization_profile()
                for graph_input in dynamic:
                    profile.set_shape(graph_input.name, *ranges[graph_input.name].astuple())
                config.add_optimization_profile(profile)
            self._use_timing_cache(config, timing_cache)
            log.info("engine %s: building from %s (%s)", request.label, request.onnx_path, _describe(plan, ranges))
            with monitor_build(trt, config, request.label):
                serialized = builder.build_serialized_network(network, config)
            if serialized is None:
                errors = self.logger.take_errors()
                detail = errors[-1] if errors else "no reason logged"
                raise EngineBuildError(f"{where}: TensorRT could not build the engine: {detail}")
            timing_cache.save(bytes(memoryview(config.get_timing_cache().serialize())))
            data = bytes(memoryview(serialized))
            del serialized, config, parser, network, builder  # free TensorRT objects while the context is current
            return data

    def deserialize(self, data: bytes) -> Any:
        """Deserialise an engine (``ICudaEngine``) on this device.

        Raises:
            EngineLoadError: TensorRT cannot deserialise it (another TensorRT version, truncated, corrupt).
        """
        with self.device.current():
            if self._runtime is None:
                self._runtime = self.trt.Runtime(self.logger)
            self.logger.take_errors()
            engine = self._runtime.deserialize_cuda_engine(data)
        if engine is None:
            errors = self.logger.take_errors()
            raise EngineLoadError(errors[-1] if errors else "deserialize_cuda_engine returned nothing")
        return engine

    def check_loadable(self, data: bytes) -> None:
        """Deserialise and drop an engine: the check ``edgeaff build-engines`` applies to cached engines."""
        engine = self.deserialize(data)
        with self.device.current():
            del engine

    def _configure(self, config: Any, options: BuildOptions, plan: BuildPlan) -> None:
        trt = self.trt
        if options.workspace_mib is not None:
            config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, options.workspace_mib << 20)
        if options.optimization_level is not None:
            config.builder_optimization_level = options.optimization_level
        with warnings.catch_warnings():  # weak-typing flags are deprecated from TensorRT 10.12, removed in 11
            warnings.simplefilter("ignore", DeprecationWarning)
            for name in plan.set_flags:
                config.set_flag(getattr(trt.BuilderFlag, name))
            for name in plan.clear_flags:
                flag = getattr(trt.BuilderFlag, name, None)
                if flag is not None:
                    config.clear_flag(flag)

    def _use_timing_cache(self, config: Any, timing_cache: TimingCacheFile) -> None:
        blob = timing_cache.load()
        if blob:
            cache = None
            try:
                cache = config.create_timing_cache(blob)
            except (RuntimeError, TypeError, ValueError) as exc:
                log.warning("timing cache %s is unusable (%s); starting an empty one", timing_cache.path, exc)
            if cache is not None and config.set_timing_cache(cache, False):
                return
            if cache is not None:
                log.warning("timing cache %s does not fit this TensorRT/GPU; starting an empty one", timing_cache.path)
        config.set_timing_cache(config.create_timing_cache(b""), False)


def graph_facts(trt: Any, network: Any) -> GraphFacts:
    """Whether a parsed network holds Q/DQ layers and FP16 tensors."""
    qdq_types = {getattr(trt.LayerType, name) for name in ("QUANTIZE", "DEQUANTIZE") if hasattr(trt.LayerType, name)}
    half = trt.DataType.HALF
    has_qdq = False
    has_fp16 = any(t.dtype == half for t in _network_inputs(network))
    for index in range(network.num_layers):
        layer = network.get_layer(index)
        has_qdq = has_qdq or layer.type in qdq_types
        has_fp16 = has_fp16 or any(layer.get_output(j).dtype == half for j in range(layer.num_outputs))
    return GraphFacts(has_qdq=has_qdq, has_fp16=has_fp16)


def _network_inputs(network: Any) -> list[Any]:
    return [network.get_input(i) for i in range(network.num_inputs)]


def _parser_problem(error: Any) -> ParserProblem:
    def call(name: str) -> Any:
        method = getattr(error, name, None)
        return method() if callable(method) else None

    description = call("desc") or str(error)
    node = call("node")
    return ParserProblem(
        description=str(description),
        node_index=int(node) if node is not None else None,
        node_name=call("node_name") or None,
        node_operator=call("node_operator") or None,
    )


def _describe(plan: BuildPlan, ranges: dict[str, Any]) -> str:
    typing = "strongly typed" if plan.strongly_typed else "flags " + ("+".join(plan.set_flags) or "none")
    shapes = ", ".join(f"{name} {r.describe()}" for name, r in ranges.items())
    return f"{typing}; inputs {shapes}"
