"""Engine building: the precision rules of TensorRT 10 and 11, parser messages, and the builder's calls.

``FakeTrt`` below is the smallest stand-in for the ``tensorrt`` module that lets :class:`TensorRTBuilder` run
without a GPU; it records the calls the builder makes so the tests can check them. It is not a model of TensorRT.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from edgeaff.runtime.engines.build import (
    BuildPlan,
    GraphFacts,
    ParserProblem,
    TensorRTBuilder,
    format_parser_errors,
    plan_build,
)
from edgeaff.runtime.engines.cache import TimingCacheFile
from edgeaff.runtime.engines.spec import (
    BuildOptions,
    DeviceIdentity,
    EngineBuildError,
    EngineLoadError,
    EngineRequest,
    Precision,
)
from edgeaff.runtime.errors import InvalidInputError

FP32_GRAPH = GraphFacts(has_qdq=False, has_fp16=False)
FP16_GRAPH = GraphFacts(has_qdq=False, has_fp16=True)
QDQ_GRAPH = GraphFacts(has_qdq=True, has_fp16=False)


def plan(precision: str, graph: GraphFacts, *, major: int = 10, fast: bool | None = True, **options: Any) -> BuildPlan:
    return plan_build(
        Precision(precision),
        BuildOptions(**options),
        tensorrt_major=major,
        graph=graph,
        fast_fp16=fast,
        fast_int8=fast,
        where="g.onnx",
    )


def test_tensorrt10_weak_typing_sets_precision_flags() -> None:
    assert plan("fp32", FP32_GRAPH) == BuildPlan(strongly_typed=False, clear_flags=("TF32",))
    assert plan("fp32", FP32_GRAPH, allow_tf32=True) == BuildPlan(strongly_typed=False)
    assert plan("fp16", FP32_GRAPH).set_flags == ("FP16",)
    assert plan("fp16", FP16_GRAPH).set_flags == ("FP16",)
    assert plan("int8", QDQ_GRAPH).set_flags == ("INT8", "FP16")
    int8_only = plan_build(
        Precision.INT8, BuildOptions(), tensorrt_major=10, graph=QDQ_GRAPH, fast_fp16=False, fast_int8=True, where="g"
    )
    assert int8_only.set_flags == ("INT8",)


@pytest.mark.parametrize(
    ("precision", "graph", "fast", "message"),
    [
        ("fp16", FP32_GRAPH, False, "no fast FP16"),
        ("int8", FP32_GRAPH, True, "explicitly quantised graph"),
        ("int8", QDQ_GRAPH, False, "no fast INT8"),
        ("fp16", QDQ_GRAPH, True, "quantised .* --int8"),
        ("fp32", FP16_GRAPH, True, "holds FP16 tensors"),
    ],
)
def test_tensorrt10_refuses_what_it_cannot_honour(precision: str, graph: GraphFacts, fast: bool, message: str) -> None:
    with pytest.raises(InvalidInputError, match=message):
        plan(precision, graph, fast=fast)


def test_strong_typing_takes_precision_from_the_graph() -> None:
    for major in (10, 11):
        strong = {"strongly_typed": True} if major == 10 else {}
        assert plan("fp32", FP32_GRAPH, major=major, fast=None, **strong) == BuildPlan(True, (), ("TF32",))
        assert plan("fp16", FP16_GRAPH, major=major, fast=None, **strong).set_flags == ()
        assert plan("int8", QDQ_GRAPH, major=major, fast=None, **strong).set_flags == ()
        with pytest.raises(InvalidInputError, match="is not an FP16 graph"):
            plan("fp16", FP32_GRAPH, major=major, fast=None, **strong)
        with pytest.raises(InvalidInputError, match="has no Q/DQ"):
            plan("int8", FP16_GRAPH, major=major, fast=None, **strong)
        with pytest.raises(InvalidInputError, match="is not an FP32 graph"):
            plan("fp32", QDQ_GRAPH, major=major, fast=None, **strong)
    with pytest.raises(InvalidInputError, match="no fast FP16"):
        plan("fp16", FP16_GRAPH, major=10, fast=False, strongly_typed=True)
    with pytest.raises(InvalidInputError, match="strongly typed networks only"):
        plan("fp32", FP32_GRAPH, major=11, fast=None, strongly_typed=False)


def test_parser_errors_become_one_message() -> None:
    problems = [ParserProblem("Unsupported operator GridSample", 12, "grid", "GridSample"), ParserProblem("other")]
    message = format_parser_errors(Path("m.onnx"), problems)
    assert message.startswith("m.onnx: TensorRT's ONNX parser rejected the graph at node 12 'grid' (GridSample): ")
    assert "Unsupported operator GridSample (and 1 more)" in message and "\n" not in message
    assert "without saying why" in format_parser_errors(Path("m.onnx"), [])
    asymmetric = [ParserProblem("Assertion failed: shiftIsAllZeros(zeroPoint): Non-zero zero point is not supported")]
    assert "only symmetric signed INT8 Q/DQ" in format_parser_errors(Path("m.onnx"), asymmetric)


class FakeTrt:
    """Just enough of ``tensorrt`` for TensorRTBuilder; ``calls`` records what the builder did."""

    LayerType = SimpleNamespace(QUANTIZE="Q", DEQUANTIZE="DQ", CONVOLUTION="CONV")
    DataType = SimpleNamespace(FLOAT="float", HALF="half")
    BuilderFlag = SimpleNamespace(FP16="FP16", INT8="INT8", TF32="TF32")
    MemoryPoolType = SimpleNamespace(WORKSPACE="WORKSPACE")
    NetworkDefinitionCreationFlag = SimpleNamespace(STRONGLY_TYPED=0)

    class ILogger:
        pass

    class IProgressMonitor:
        pass

    def __init__(self, version: str, *, inputs: list[tuple[str, tuple[int, ...], str]], layers: list[str]) -> None:
        self.__version__ = version
        self.calls: list[tuple[Any, ...]] = []
        self.parse_ok, self.build_ok, self.timing_ok = True, True, True
        fake = self
        tensors = [SimpleNamespace(name=n, shape=s, dtype=d) for n, s, d in inputs]
        network = SimpleNamespace(
            num_inputs=len(tensors),
            get_input=tensors.__getitem__,
            num_layers=len(layers),
            get_layer=lambda i: SimpleNamespace(type=layers[i], num_outputs=1, get_output=lambda j: tensors[0]),
        )

        class Config:
            def __init__(self) -> None:
                self.progress_monitor: Any = None

            def __getattr__(self, name: str) -> Any:  # set_flag, clear_flag, set_memory_pool_limit, ...
                return lambda *args: fake.calls.append((name, *args)) or True

            def create_timing_cache(self, blob: bytes) -> bytes:
                return blob

            def set_timing_cache(self, cache: bytes, ignore_mismatch: bool) -> bool:
                fake.calls.append(("set_timing_cache", cache))
                return fake.timing_ok or cache == b""

            def get_timing_cache(self) -> Any:
                return SimpleNamespace(serialize=lambda: b"timings")

        class Builder:
            platform_has_fast_fp16 = True
            platform_has_fast_int8 = True

            def __init__(self, logger: Any) -> None:
                self.logger = logger

            def create_network(self, flags: int) -> Any:
                fake.calls.append(("create_network", flags))
                return network

            def create_builder_config(self) -> Config:
                return Config()

            def create_optimization_profile(self) -> Any:
                return SimpleNamespace(set_shape=lambda *args: fake.calls.append(("set_shape", *args)))

            def build_serialized_network(self, net: Any, config: Config) -> bytes | None:
                config.progress_monitor.phase_start("Building engine", None, 2)
                config.progress_monitor.phase_finish("Building engine")
                if not fake.build_ok:
                    self.logger.log(SimpleNamespace(name="ERROR"), "out of workspace memory")
                    return None
                return b"serialized engine"

        class OnnxParser:
            num_errors = 1

            def __init__(self, net: Any, logger: Any) -> None:
                pass

            def parse_from_file(self, path: str) -> bool:
                return fake.parse_ok

            def get_error(self, index: int) -> Any:
                return SimpleNamespace(desc=lambda: "bad node", node=lambda: 3, node_name=lambda: "n3")

        self.Builder, self.OnnxParser = Builder, OnnxParser
        self.Runtime = lambda logger: SimpleNamespace(deserialize_cuda_engine=lambda data: None)


class FakeDevice:
    def identity(self) -> DeviceIdentity:
        return DeviceIdentity("Orin", (8, 7), 8)

    @contextlib.contextmanager
    def current(self) -> Iterator[None]:
        yield


DYNAMIC = [("frames", (-1, 48, 48, 3), "float")]
PROFILE = {"frames": ((1, 48, 48, 3), (8, 48, 48, 3), (32, 48, 48, 3))}


def build(trt: FakeTrt, tmp_path: Path, precision: str, **request: Any) -> bytes:
    onnx = tmp_path / "visual.onnx"
    onnx.write_bytes(b"graph")
    builder = TensorRTBuilder(FakeDevice(), trt=trt)  # type: ignore[arg-type]
    return builder.build(EngineRequest(onnx, precision, **request), timing_cache=TimingCacheFile(tmp_path / "t.timing"))


def test_tensorrt10_build_sets_flags_profile_workspace_and_timing_cache(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    trt = FakeTrt("10.3.0.30", inputs=DYNAMIC, layers=["CONV"])
    (tmp_path / "t.timing").write_bytes(b"old timings")
    caplog.set_level(logging.INFO, logger="edgeaff.engines")
    assert build(trt, tmp_path, "fp16", profiles=PROFILE) == b"serialized engine"
    assert ("create_network", 0) in trt.calls
    assert ("set_flag", "FP16") in trt.calls and ("clear_flag", "TF32") in trt.calls
    assert ("set_memory_pool_limit", "WORKSPACE", 1024 << 20) in trt.calls
    assert ("set_shape", "frames", (1, 48, 48, 3), (8, 48, 48, 3), (32, 48, 48, 3)) in trt.calls
    assert ("set_timing_cache", b"old timings") in trt.calls
    assert (tmp_path / "t.timing").read_bytes() == b"timings"
    messages = [r.getMessage() for r in caplog.records]
    assert "visual.fp16: Building engine (2 steps)" in messages
    assert any(m.startswith("visual.fp16: Building engine done in") for m in messages)


def test_tensorrt11_build_is_strongly_typed_and_precision_comes_from_the_graph(tmp_path: Path) -> None:
    trt = FakeTrt("11.4.1.6", inputs=[("x", (1, 4), "half")], layers=["CONV"])
    assert build(trt, tmp_path, "fp16") == b"serialized engine"
    assert ("create_network", 1) in trt.calls
    assert not [c for c in trt.calls if c[0] == "set_flag"]
    with pytest.raises(InvalidInputError, match="is not an FP32 graph"):
        build(trt, tmp_path, "fp32")
    quantised = FakeTrt("11.4.1.6", inputs=[("x", (1, 4), "float")], layers=["Q", "CONV", "DQ"])
    assert build(quantised, tmp_path, "int8") == b"serialized engine"


def test_build_failures_are_one_clear_error(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    trt = FakeTrt("10.3.0.30", inputs=DYNAMIC, layers=[])
    with pytest.raises(InvalidInputError, match=r"need \(min, opt, max\) shapes"):
        build(trt, tmp_path, "fp32")
    trt.parse_ok = False
    with pytest.raises(EngineBuildError, match="rejected the graph at node 3 'n3': bad node"):
        build(trt, tmp_path, "fp32", profiles=PROFILE)
    trt.parse_ok, trt.build_ok = True, False
    with pytest.raises(EngineBuildError, match="could not build the engine: out of workspace memory"):
        build(trt, tmp_path, "fp32", profiles=PROFILE)
    trt.build_ok, trt.timing_ok = True, False
    (tmp_path / "t.timing").write_bytes(b"timings of another GPU")
    caplog.set_level(logging.WARNING, logger="edgeaff.engines")
    build(trt, tmp_path, "fp32", profiles=PROFILE)
    assert [c for c in trt.calls if c[0] == "set_timing_cache"][-2:] == [
        ("set_timing_cache", b"timings of another GPU"),
        ("set_timing_cache", b""),
    ]
    assert any("does not fit this TensorRT/GPU" in r.getMessage() for r in caplog.records)


def test_deserialisation_failure_is_a_load_error() -> None:
    builder = TensorRTBuilder(FakeDevice(), trt=FakeTrt("10.3.0.30", inputs=[], layers=[]))  # type: ignore[arg-type]
    with pytest.raises(EngineLoadError, match="returned nothing"):
        builder.deserialize(b"bytes")
    assert builder.environment().tensorrt_version == "10.3.0.30"
