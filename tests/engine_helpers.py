"""Helpers for the engine and GPU backend tests: a small ONNX graph, its ONNX Runtime reference, GPU detection."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np

PROFILE = {"x": ((1, 3, 8, 8), (4, 3, 8, 8), (8, 3, 8, 8))}


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
