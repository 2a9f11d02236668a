"""The native TensorRT runner: engine description, feed checks against profiles, and (GPU only) parity with ONNX
Runtime, cache hits and rebuilds.

GPU tests need tensorrt, pycuda and a CUDA device; they skip cleanly elsewhere.
"""

from __future__ import annotations

import importlib.util
import logging
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
from engine_helpers import PROFILE, gpu_skip_reason, reference, small_graph

from edgeaff.runtime.backends.trt import (
    EngineTensor,
    TransferTimes,
    TrtRunner,
    check_feed_in_profiles,
    describe_engine,
)
from edgeaff.runtime.engines.cuda import import_tensorrt, numpy_dtype, python_log_level
from edgeaff.runtime.engines.spec import ShapeRange
from edgeaff.runtime.errors import EdgeaffError, InvalidInputError, MissingDependencyError

F32 = np.dtype(np.float32)
TENSORS = [
    EngineTensor("x", True, F32, (-1, 3, 8, 8), ShapeRange((1, 3, 8, 8), (4, 3, 8, 8), (8, 3, 8, 8))),
    EngineTensor("y", False, F32, (-1, 5)),
]


def test_dtypes_and_log_levels_map_by_name() -> None:
    assert numpy_dtype(SimpleNamespace(name="HALF")) == np.float16
    assert numpy_dtype("DataType.INT64") == np.int64
    with pytest.raises(EdgeaffError, match="BF16 has no numpy equivalent"):
        numpy_dtype(SimpleNamespace(name="BF16"))
    assert python_log_level(SimpleNamespace(name="ERROR")) == logging.ERROR
    assert python_log_level(SimpleNamespace(name="INFO")) == logging.DEBUG


def test_engine_description_uses_profile_zero_of_dynamic_inputs() -> None:
    trt = SimpleNamespace(
        TensorLocation=SimpleNamespace(DEVICE="dev", HOST="host"),
        TensorIOMode=SimpleNamespace(INPUT="in", OUTPUT="out"),
    )
    table = {"x": ("in", (-1, 3, 8, 8), "FLOAT"), "s": ("in", (2,), "INT32"), "y": ("out", (-1, 5), "FLOAT")}
    engine = SimpleNamespace(
        num_io_tensors=3,
        get_tensor_name=["x", "s", "y"].__getitem__,
        get_tensor_location=lambda name: "dev",
        get_tensor_mode=lambda name: table[name][0],
        get_tensor_shape=lambda name: table[name][1],
        get_tensor_dtype=lambda name: SimpleNamespace(name=table[name][2]),
        get_tensor_profile_shape=lambda name, profile: [(1, 3, 8, 8), (4, 3, 8, 8), (8, 3, 8, 8)],
    )
    tensors = describe_engine(trt, engine)
    assert tensors[0] == TENSORS[0]
    assert tensors[1] == EngineTensor("s", True, np.dtype(np.int32), (2,), ShapeRange.fixed((2,)))
    assert tensors[2] == TENSORS[1]
    assert tensors[0].spec().shape == (None, 3, 8, 8)
    engine.get_tensor_location = lambda name: "host"
    with pytest.raises(EdgeaffError, match="lives on the host"):
        describe_engine(trt, engine)


def test_feeds_outside_the_profile_are_refused() -> None:
    check_feed_in_profiles(TENSORS, {"x": np.zeros((8, 3, 8, 8), np.float32)}, where="trt:m.onnx")
    with pytest.raises(InvalidInputError, match=r"'x' has shape \(9, 3, 8, 8\), outside the engine's profile \(1..8,"):
        check_feed_in_profiles(TENSORS, {"x": np.zeros((9, 3, 8, 8), np.float32)}, where="trt:m.onnx")
    with pytest.raises(InvalidInputError, match="outside"):
        check_feed_in_profiles(TENSORS, {"x": np.zeros((0, 3, 8, 8), np.float32)}, where="trt:m.onnx")
    assert TransferTimes(0.5, 2.0, 0.25).total_ms == 2.75


def test_constructor_is_cheap_and_a_missing_tensorrt_names_where_to_get_it(tmp_path: Path) -> None:
    runner = TrtRunner(tmp_path / "absent.onnx", precision="fp16", profiles={"x": ((1, 3), (2, 3), (4, 3))})
    assert runner.request.precision.value == "fp16" and not runner.is_active
    if importlib.util.find_spec("tensorrt") is not None:
        pytest.skip("tensorrt is installed here")
    with pytest.raises(MissingDependencyError, match="JetPack"):
        import_tensorrt()
    with pytest.raises(MissingDependencyError), runner:
        pass


GPU_SKIP = gpu_skip_reason()
gpu = pytest.mark.skipif(GPU_SKIP is not None, reason=f"needs a GPU with TensorRT: {GPU_SKIP}")


@pytest.mark.gpu
@gpu
def test_fp32_engine_matches_onnxruntime_and_is_cached(tmp_path: Path) -> None:
    model = small_graph(tmp_path / "small.onnx")
    x = np.random.default_rng(1).normal(size=(5, 3, 8, 8)).astype(np.float32)
    cache = tmp_path / "engines"
    with TrtRunner(model, profiles=PROFILE, cache_dir=cache) as runner:
        assert runner.cached is not None and runner.cached.built
        assert [s.shape for s in runner.inputs] == [(None, 3, 8, 8)]
        out = runner.infer({"x": x})["y"]
        times = runner.last_times
        with pytest.raises(InvalidInputError, match="outside the engine's profile"):
            runner.infer({"x": np.zeros((9, 3, 8, 8), np.float32)})
    np.testing.assert_allclose(out, reference(model, x), rtol=0, atol=1e-4)  # FP32, TF32 off
    assert times is not None and min(times.h2d_ms, times.compute_ms, times.d2h_ms) >= 0
    with TrtRunner(model, profiles=PROFILE, cache_dir=cache) as again:
        assert again.cached is not None and not again.cached.built
        np.testing.assert_array_equal(again.infer({"x": x})["y"], out)
        engine_path = again.cached.path
    engine_path.write_bytes(engine_path.read_bytes()[:-16] + bytes(16))  # tamper: same size, other bytes
    with TrtRunner(model, profiles=PROFILE, cache_dir=cache) as rebuilt:
        assert rebuilt.cached is not None and rebuilt.cached.built
        assert "sha256" in str(rebuilt.cached.reason)
        np.testing.assert_allclose(rebuilt.infer({"x": x})["y"], out, rtol=0, atol=1e-4)


@pytest.mark.gpu
@gpu
def test_fp16_engine_is_close_to_fp32_or_refused_on_tensorrt11(tmp_path: Path) -> None:
    import tensorrt as trt

    model = small_graph(tmp_path / "small.onnx")
    x = np.random.default_rng(2).normal(size=(4, 3, 8, 8)).astype(np.float32)
    runner: Any = TrtRunner(model, precision="fp16", profiles=PROFILE, cache_dir=tmp_path / "engines")
    if int(trt.__version__.split(".")[0]) >= 11:
        with pytest.raises(InvalidInputError, match="not an FP16 graph"), runner:
            pass
        return
    with runner:
        out = runner.infer({"x": x})["y"]
    # FP16 keeps ~3 significant digits; outputs here are O(1): 2e-2 absolute covers the accumulated rounding
    np.testing.assert_allclose(out, reference(model, x), rtol=0, atol=2e-2)
