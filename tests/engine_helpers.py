"""Helpers for the engine and GPU backend tests.

``FakeBuilder`` stands in for the TensorRT builder in cache tests: it returns recognisable bytes and records its
calls. Also: a small ONNX graph with its ONNX Runtime reference, and GPU detection for the GPU tests.
"""

from __future__ import annotations

import importlib.util
import os
import time
from pathlib import Path

import numpy as np

from edgeaff.runtime.engines.cache import TimingCacheFile
from edgeaff.runtime.engines.spec import (
    BuildEnvironment,
    DeviceIdentity,
    EngineBuildError,
    EngineLoadError,
    EngineRequest,
)

PROFILE = {"x": ((1, 3, 8, 8), (4, 3, 8, 8), (8, 3, 8, 8))}
ENV = BuildEnvironment("10.3.0.30", DeviceIdentity("Orin", (8, 7), 8))


class FakeBuilder:
    """Returns b"ENGINE:<label>:<tensorrt version>", appends to the timing cache, records each build."""

    def __init__(self, env: BuildEnvironment = ENV, *, log_path: Path | None = None, delay: float = 0.0) -> None:
        self.env = env
        self.log_path = log_path
        self.delay = delay
        self.builds: list[str] = []
        self.timing_seen: list[bytes] = []
        self.fail = False

    def environment(self) -> BuildEnvironment:
        return self.env

    def build(self, request: EngineRequest, *, timing_cache: TimingCacheFile) -> bytes:
        if self.fail:
            raise EngineBuildError("builder failed on purpose")
        self.builds.append(request.label)
        if self.log_path is not None:
            with open(self.log_path, "a") as handle:
                handle.write(f"{os.getpid()}\n")
        time.sleep(self.delay)
        previous = timing_cache.load()
        self.timing_seen.append(previous)
        timing_cache.save(previous + request.label.encode() + b";")
        return f"ENGINE:{request.label}:{self.env.tensorrt_version}".encode()


def load(data: bytes) -> bytes:
    """The ``load`` callback matching :class:`FakeBuilder`'s engines."""
    if not data.startswith(b"ENGINE:"):
        raise EngineLoadError("not an engine")
    return data


def gpu_skip_reason(*modules: str) -> str | None:
    """Why GPU tests cannot run here (a module missing, no CUDA device), or ``None`` when they can."""
    for module in modules or ("tensorrt", "pycuda", "onnx", "onnxruntime"):
        if importlib.util.find_spec(module) is None:
            return f"{module} is not installed"
    try:
        import pycuda.driver as cuda

        cuda.init()
        if cuda.Device.count() == 0:
            return "no CUDA device"
    except Exception as exc:
        return f"CUDA is not usable ({exc})"
    return None


def small_graph(path: Path) -> Path:
    """x (N, 3, 8, 8) -> Conv 3x3 (4 filters) -> Relu -> global average pool -> Flatten -> Gemm (4 -> 5)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    weights = [
        numpy_helper.from_array(rng.normal(0, 0.5, (4, 3, 3, 3)).astype(np.float32), "w"),
        numpy_helper.from_array(rng.normal(0, 0.1, (4,)).astype(np.float32), "b"),
        numpy_helper.from_array(rng.normal(0, 0.5, (4, 5)).astype(np.float32), "fc"),
        numpy_helper.from_array(rng.normal(0, 0.1, (5,)).astype(np.float32), "fb"),
    ]
    nodes = [
        helper.make_node("Conv", ["x", "w", "b"], ["c"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c"], ["r"]),
        helper.make_node("GlobalAveragePool", ["r"], ["p"]),
        helper.make_node("Flatten", ["p"], ["f"]),
        helper.make_node("Gemm", ["f", "fc", "fb"], ["y"]),
    ]
    graph = helper.make_graph(
        nodes,
        "small",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 3, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 5])],
        initializer=weights,
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    return path


def reference(path: Path, x: np.ndarray) -> np.ndarray:
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return np.asarray(session.run(["y"], {"x": x})[0])
