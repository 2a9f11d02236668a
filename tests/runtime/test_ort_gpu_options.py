"""ONNX Runtime GPU backends: the provider options edgeaff sets, and (GPU only) CUDA / TensorRT EP parity."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from edgeaff.runtime.artifacts.manifest import Precision
from edgeaff.runtime.backends.ort import OrtRunner, gpu_provider_options
from edgeaff.runtime.engines.spec import ShapeRange
from edgeaff.runtime.errors import EdgeaffError, InvalidInputError

ort = pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")

from engine_helpers import PROFILE, gpu_skip_reason, reference, small_graph  # noqa: E402

SHA = "ab" * 32


def test_cpu_and_cuda_options() -> None:
    assert gpu_provider_options("ort-cpu", graph_sha256=SHA, ort_version="1.22.0") == {}
    assert gpu_provider_options("ort-cuda", graph_sha256=SHA, ort_version="1.22.0", device_id=1) == {
        "CUDAExecutionProvider": {"device_id": "1"}
    }


def test_tensorrt_ep_options_follow_the_request(tmp_path: Path) -> None:
    options = gpu_provider_options(
        "ort-trt",
        graph_sha256=SHA,
        ort_version="1.22.0",
        precision=Precision.FP16,
        cache_dir=tmp_path,
        profiles={"x": ShapeRange((1, 3, 8, 8), (4, 3, 8, 8), (8, 3, 8, 8)), "m": ShapeRange.fixed((2,))},
        workspace_mib=256,
    )["TensorrtExecutionProvider"]
    assert options["trt_fp16_enable"] == "True" and options["trt_int8_enable"] == "False"
    assert options["trt_engine_cache_enable"] == "True"
    assert options["trt_engine_cache_path"] == str(tmp_path / "ort-trt" / f"{SHA[:16]}.fp16.ort-1.22.0")
    assert options["trt_timing_cache_path"] == str(tmp_path / "ort-trt" / "timing.ort-1.22.0")
    assert options["trt_max_workspace_size"] == str(256 << 20)
    assert options["trt_profile_min_shapes"] == "x:1x3x8x8,m:2"
    assert options["trt_profile_opt_shapes"] == "x:4x3x8x8,m:2"
    assert options["trt_profile_max_shapes"] == "x:8x3x8x8,m:2"
    fp32 = gpu_provider_options("ort-trt", graph_sha256=SHA, ort_version="1.22.0", cache_dir=tmp_path)
    assert fp32["TensorrtExecutionProvider"]["trt_fp16_enable"] == "False"
    assert "trt_profile_min_shapes" not in fp32["TensorrtExecutionProvider"]
    int8 = gpu_provider_options("ort-trt", graph_sha256=SHA, ort_version="1.22.0", precision=Precision.INT8)
    assert int8["TensorrtExecutionProvider"]["trt_int8_enable"] == "True"


def test_precision_is_refused_where_it_cannot_apply(tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError, match="ort-trt and trt only"):
        OrtRunner(tmp_path / "m.onnx", backend="ort-cuda", precision="fp16")


def test_session_gets_defaults_overridden_by_explicit_options(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    model = small_graph(tmp_path / "small.onnx")
    seen: dict[str, Any] = {}

    def fake_session(path: str, *, sess_options: Any, providers: list[tuple[str, dict[str, str]]]) -> Any:
        seen["providers"] = providers
        raise RuntimeError("stop here")

    monkeypatch.setattr(ort, "get_available_providers", lambda: ["TensorrtExecutionProvider", "CUDAExecutionProvider"])
    monkeypatch.setattr(ort, "InferenceSession", fake_session)
    runner = OrtRunner(
        model,
        backend="ort-trt",
        precision="fp16",
        cache_dir=tmp_path / "cache",
        profiles=PROFILE,
        provider_options={"TensorrtExecutionProvider": {"trt_timing_cache_enable": "False"}},
    )
    with pytest.raises(EdgeaffError, match="stop here"), runner:
        pass
    (trt_name, trt_options), (cuda_name, cuda_options) = seen["providers"]
    assert (trt_name, cuda_name) == ("TensorrtExecutionProvider", "CUDAExecutionProvider")
    assert trt_options["trt_fp16_enable"] == "True" and trt_options["trt_timing_cache_enable"] == "False"
    sha = hashlib.sha256(model.read_bytes()).hexdigest()
    assert trt_options["trt_engine_cache_path"].endswith(f"{sha[:16]}.fp16.ort-{ort.__version__}")
    assert trt_options["trt_profile_max_shapes"] == "x:8x3x8x8"
    assert cuda_options == {"device_id": "0"}


def _has_provider(name: str) -> bool:
    return name in ort.get_available_providers() and gpu_skip_reason("pycuda") is None


@pytest.mark.gpu
@pytest.mark.parametrize(
    ("backend", "precision", "atol"),
    [("ort-cuda", None, 1e-4), ("ort-trt", None, 1e-4), ("ort-trt", "fp16", 2e-2)],
)
def test_gpu_execution_providers_match_the_cpu(
    tmp_path: Path, backend: str, precision: str | None, atol: float
) -> None:
    provider = "TensorrtExecutionProvider" if backend == "ort-trt" else "CUDAExecutionProvider"
    if not _has_provider(provider):
        pytest.skip(f"needs onnxruntime-gpu with {provider} and a CUDA device")
    model = small_graph(tmp_path / "small.onnx")
    x = np.random.default_rng(3).normal(size=(4, 3, 8, 8)).astype(np.float32)
    with OrtRunner(
        model, backend=backend, precision=precision, cache_dir=tmp_path / "cache", profiles=PROFILE
    ) as runner:
        out = runner.infer({"x": x})["y"]
    # FP32 on the GPU within 1e-4 of the CPU; FP16 within 2e-2 for these O(1) outputs
    np.testing.assert_allclose(out, reference(model, x), rtol=0, atol=atol)
    if backend == "ort-trt":
        assert any((tmp_path / "cache" / "ort-trt").rglob("*.engine"))
