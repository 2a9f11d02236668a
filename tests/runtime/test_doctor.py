"""edgeaff doctor: probes and backend verdicts, with the Jetson and GPU branches driven by recorded tool outputs,
fake /proc and /etc files in a tmp root, and injected modules."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
from torch_block import BLOCK_TORCH
from typer.testing import CliRunner

from edgeaff.cli import app
from edgeaff.doctor import report as doctor
from edgeaff.doctor.probes import CommandResult, Host
from edgeaff.doctor.report import diagnose, render_text

# Recorded outputs (formats of JetPack 6 and a desktop driver).
NV_TEGRA_RELEASE = "# R36 (release), REVISION: 4.0, GCID: 37537400, BOARD: generic, EABI: aarch64, DATE: Fri Sep 13\n"
NVPMODEL_Q = "NV Power Mode: MAXN\n0\n"
NVPMODEL_Q_WITH_WARNING = "NVPM WARN: fan mode is not set!\nNV Power Mode: 15W\n1\n"
NVIDIA_SMI_DESKTOP = "NVIDIA GeForce RTX 4090, 8.9, 24564\n"
NVIDIA_SMI_NO_DRIVER = (
    "NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver. "
    "Make sure that the latest NVIDIA driver is installed and running.\n"
)
JETPACK_OPENCV_BUILD = """
General configuration for OpenCV 4.8.0 =====================================
  Video I/O:
    FFMPEG:                      YES
    GStreamer:                   YES (1.20.3)
    v4l/v4l2:                    YES (linux/videodev2.h)
  NVIDIA CUDA:                   NO
"""
PIP_OPENCV_BUILD = """
General configuration for OpenCV 4.14.0 =====================================
  Video I/O:
    FFMPEG:                      YES
    GStreamer:                   NO
  NVIDIA CUDA:                   NO
"""


# --- fake modules -------------------------------------------------------------------------------------------------


def fake_onnxruntime(available: Sequence[str], working: Sequence[str], *, double: float = 2.0) -> SimpleNamespace:
    """An onnxruntime whose listed providers may or may not initialise (then it falls back to the CPU, like ORT)."""

    class Session:
        def __init__(self, model: bytes, sess_options: Any = None, providers: Sequence[str] = ()) -> None:
            assert isinstance(model, bytes)
            self.active = [p for p in providers if p in working] or ["CPUExecutionProvider"]

        def get_providers(self) -> list[str]:
            return self.active

        def run(self, names: Any, feed: dict[str, np.ndarray]) -> list[np.ndarray]:
            return [feed["x"] * double]

    return SimpleNamespace(
        __version__="1.20.0",
        get_available_providers=lambda: list(available),
        SessionOptions=lambda: SimpleNamespace(log_severity_level=0),
        InferenceSession=Session,
    )


def fake_pycuda_driver(*, name: str = "Orin", cc: tuple[int, int] = (8, 7), init_error: str | None = None) -> Any:
    class Device:
        def __init__(self, index: int) -> None:
            self.index = index

        @staticmethod
        def count() -> int:
            return 1

        def name(self) -> str:
            return name

        def compute_capability(self) -> tuple[int, int]:
            return cc

        def total_memory(self) -> int:
            return 62 * 2**30

    def init() -> None:
        if init_error:
            raise RuntimeError(init_error)

    return SimpleNamespace(init=init, Device=Device)


def fake_tensorrt(*, builder_error: str | None = None) -> SimpleNamespace:
    def builder(logger: Any) -> SimpleNamespace:
        if builder_error:
            raise RuntimeError(builder_error)
        return SimpleNamespace(platform_has_fast_fp16=True)

    class Logger:
        ERROR = 1

        def __init__(self, severity: int) -> None:
            self.severity = severity

    return SimpleNamespace(__version__="10.3.0", Logger=Logger, Builder=builder)


def fake_cv2(build: str, version: str = "4.8.0") -> SimpleNamespace:
    return SimpleNamespace(
        __version__=version, __file__="/usr/lib/python3/dist-packages/cv2/cv2.so", getBuildInformation=lambda: build
    )


def fake_av() -> SimpleNamespace:
    known = {("h264", "r"), ("hevc", "r"), ("aac", "r"), ("libx264", "w")}

    def codec(name: str, mode: str) -> None:
        if (name, mode) not in known:
            raise ValueError(name)

    return SimpleNamespace(__version__="17.1.0", codec=SimpleNamespace(Codec=codec))


class FakeHost:
    """Builds a Host over a tmp root with chosen modules, tools and distributions."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.modules: dict[str, Any] = {}
        self.broken: dict[str, BaseException] = {}
        self.tools: dict[str, CommandResult] = {}
        self.dists: dict[str, str] = {}
        self.denied: set[Path] = set()
        self.machine = "aarch64"

    def file(self, path: str, text: str) -> None:
        target = self.root / path.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)

    def _import(self, name: str) -> Any:
        if name in self.broken:
            raise self.broken[name]
        if name not in self.modules:
            raise ModuleNotFoundError(f"No module named '{name}'")
        return self.modules[name]

    def _run(self, argv: Sequence[str]) -> CommandResult | None:
        return self.tools.get(argv[0])

    def host(self) -> Host:
        return Host(
            root=self.root,
            import_module=self._import,
            run=self._run,
            module_installed=lambda name: name in self.modules or name in self.broken,
            distribution_version=self.dists.get,
            access=lambda path, mode: path not in self.denied,
            machine=self.machine,
        )


@pytest.fixture(autouse=True)
def cache_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("EDGEAFF_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache"


@pytest.fixture
def orin(tmp_path: Path) -> FakeHost:
    """A Jetson AGX Orin on JetPack 6.1 with the full edgeaff image: TensorRT, pycuda, ORT-GPU, JetPack OpenCV."""
    fake = FakeHost(tmp_path / "root")
    fake.file("/proc/device-tree/model", "NVIDIA Jetson AGX Orin Developer Kit\x00")
    fake.file("/etc/nv_tegra_release", NV_TEGRA_RELEASE)
    fake.file("/dev/video0", "")
    fake.file("/sys/class/video4linux/video0/name", "HD Pro Webcam C920\n")
    fake.file("/tmp/argus_socket", "")
    fake.tools["nvpmodel"] = CommandResult(0, NVPMODEL_Q, "")
    fake.tools["gst-inspect-1.0"] = CommandResult(0, "Factory Details: nvarguscamerasrc", "")
    providers = ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"]
    fake.modules.update(
        {
            "onnxruntime": fake_onnxruntime(providers, providers),
            "tensorrt": fake_tensorrt(),
            "pycuda": SimpleNamespace(VERSION_TEXT="2025.1.2"),
            "pycuda.driver": fake_pycuda_driver(),
            "cv2": fake_cv2(JETPACK_OPENCV_BUILD),
            "av": fake_av(),
            "opensmile": SimpleNamespace(__version__="2.6.0"),
        }
    )
    return fake


def finding(report: doctor.DoctorReport, name: str) -> Any:
    return next(f for f in report.components if f.name == name)


# --- Jetson branches ----------------------------------------------------------------------------------------------


def test_jetson_orin_with_the_full_image_can_run_every_backend(orin: FakeHost) -> None:
    report = diagnose(orin.host())
    assert report.jetson.is_jetson
    assert report.jetson.model == "NVIDIA Jetson AGX Orin Developer Kit"
    assert (report.jetson.l4t, report.jetson.jetpack) == ("36.4.0", "6.x")
    assert (report.jetson.power_mode, report.jetson.power_mode_id) == ("MAXN", 0)
    assert (report.gpu.name, report.gpu.compute_capability, report.gpu.source) == ("Orin", "8.7", "pycuda")
    assert report.usable_backends == ["ort-cpu", "ort-cuda", "ort-trt", "trt"]
    assert all(f.ok for f in report.components), [f for f in report.components if not f.ok]
    assert finding(report, "gstreamer").summary == "OpenCV is built with GStreamer 1.20.3"
    cameras = finding(report, "cameras").details
    assert cameras["v4l2"] == [{"device": "/dev/video0", "name": "HD Pro Webcam C920", "access": True}]
    assert cameras["argus_socket"] is True and cameras["nvarguscamerasrc"] is True
    text = render_text(report)
    assert "L4T 36.4.0 (JetPack 6.x), power mode MAXN (mode 0)" in text
    assert "TensorRT 10.3.0 on Orin (compute capability 8.7)" in text
    assert "verdict: 4 of 4 backends usable" in text
    assert json.loads(json.dumps(report.to_dict()))["backends"]["trt"]["usable"] is True


def test_jetson_power_mode_is_parsed_past_nvpmodel_warnings(orin: FakeHost) -> None:
    orin.tools["nvpmodel"] = CommandResult(0, NVPMODEL_Q_WITH_WARNING, "")
    report = diagnose(orin.host())
    assert (report.jetson.power_mode, report.jetson.power_mode_id) == ("15W", 1)


def test_jetson_with_pip_opencv_cpu_onnxruntime_and_no_nvpmodel(orin: FakeHost) -> None:
    """The usual broken venv on a Jetson: pip OpenCV shadows JetPack's, PyPI's CPU-only ORT, container without tools."""
    orin.modules["cv2"] = fake_cv2(PIP_OPENCV_BUILD, "4.14.0")
    orin.dists["opencv-python-headless"] = "4.14.0.94"
    orin.modules["onnxruntime"] = fake_onnxruntime(["CPUExecutionProvider"], ["CPUExecutionProvider"])
    del orin.tools["nvpmodel"]
    report = diagnose(orin.host())
    opencv = finding(report, "opencv")
    assert not opencv.ok and opencv.fix.startswith("pip uninstall opencv-python-headless")
    assert not finding(report, "gstreamer").ok
    cuda = next(v for v in report.backends if v.backend == "ort-cuda")
    assert not cuda.usable and "JetPack 6 onnxruntime-gpu" in (cuda.fix or "")
    assert report.usable_backends == ["ort-cpu", "trt"]
    assert "nvpmodel not found" in render_text(report)


def test_older_l4t_release_is_flagged(orin: FakeHost) -> None:
    orin.file("/etc/nv_tegra_release", "# R35 (release), REVISION: 4.1, GCID: 33958178, BOARD: t186ref\n")
    report = diagnose(orin.host())
    jetson = finding(report, "jetson")
    assert (report.jetson.l4t, report.jetson.jetpack) == ("35.4.1", "5.x")
    assert jetson.details["supported_release"] is False and "r36.4" in jetson.fix


def test_container_without_nvidia_runtime_has_no_gpu_backends(orin: FakeHost) -> None:
    orin.modules["pycuda.driver"] = fake_pycuda_driver(init_error="cuInit failed: no CUDA-capable device is detected")
    orin.modules["onnxruntime"] = fake_onnxruntime(
        ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"], ["CPUExecutionProvider"]
    )
    report = diagnose(orin.host())
    assert report.usable_backends == ["ort-cpu"]
    trt = report.backends[-1]
    assert not trt.usable and "no CUDA-capable device" in trt.reason and "--runtime nvidia" in (trt.fix or "")
    ort_trt = next(v for v in report.backends if v.backend == "ort-trt")
    assert "fell back to CPUExecutionProvider" in ort_trt.reason
    assert "No CUDA GPU is usable on this machine" in render_text(report)


def test_camera_without_permission_and_missing_argus_socket(orin: FakeHost) -> None:
    (orin.root / "tmp/argus_socket").unlink()
    orin.denied.add(orin.root / "dev/video0")
    cameras = finding(diagnose(orin.host()), "cameras")
    assert not cameras.ok
    assert (
        "/dev/video0 (HD Pro Webcam C920) no permission" in cameras.summary and "Argus socket absent" in cameras.summary
    )
    assert "video" in cameras.fix


def test_opensmile_whose_native_library_does_not_load(orin: FakeHost) -> None:
    del orin.modules["opensmile"]
    orin.broken["opensmile"] = OSError("libSMILEapi.so: cannot open shared object file: No such file or directory")
    smile = finding(diagnose(orin.host()), "opensmile")
    assert not smile.ok and "native library does not load" in smile.summary and "2.5" in smile.fix


def test_tensorrt_builder_failure_makes_trt_unusable(orin: FakeHost) -> None:
    orin.modules["tensorrt"] = fake_tensorrt(builder_error="CUDA initialization failure with error: 999")
    trt = diagnose(orin.host()).backends[-1]
    assert not trt.usable and "cannot create a builder (CUDA initialization failure" in trt.reason


# --- desktop GPU branches -----------------------------------------------------------------------------------------


def test_desktop_gpu_seen_only_by_nvidia_smi(tmp_path: Path) -> None:
    fake = FakeHost(tmp_path)
    fake.machine = "x86_64"
    fake.tools["nvidia-smi"] = CommandResult(0, NVIDIA_SMI_DESKTOP, "")
    fake.modules["tensorrt"] = fake_tensorrt()
    providers = ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"]
    fake.modules["onnxruntime"] = fake_onnxruntime(providers, ["CUDAExecutionProvider"])
    report = diagnose(fake.host())
    assert not report.jetson.is_jetson
    assert (report.gpu.name, report.gpu.compute_capability, report.gpu.memory_mib) == (
        "NVIDIA GeForce RTX 4090",
        "8.9",
        24564,
    )
    assert report.gpu.source == "nvidia-smi" and not report.gpu.usable_from_python
    assert report.usable_backends == ["ort-cpu", "ort-cuda"]
    trt = report.backends[-1]
    assert "pycuda not installed" in trt.reason and "edgeaff[trt]" in (trt.fix or "")
    assert "TensorrtExecutionProvider failed to initialise" in report.backends[2].reason


def test_gpu_found_through_cuda_python(tmp_path: Path) -> None:
    fake = FakeHost(tmp_path)
    success = 0
    prop = SimpleNamespace(name=b"NVIDIA H100 80GB HBM3\x00", major=9, minor=0, totalGlobalMem=80 * 2**30)
    fake.modules["cuda.bindings.runtime"] = SimpleNamespace(
        cudaError_t=SimpleNamespace(cudaSuccess=success),
        cudaGetDeviceCount=lambda: (success, 1),
        cudaGetDeviceProperties=lambda index: (success, prop),
    )
    gpu = diagnose(fake.host()).gpu
    assert (gpu.name, gpu.compute_capability, gpu.memory_mib, gpu.source) == (
        "NVIDIA H100 80GB HBM3",
        "9.0",
        81920,
        "cuda-python",
    )
    assert gpu.notes == ("pycuda: not installed",)


def test_nvidia_smi_without_driver_is_explained(tmp_path: Path) -> None:
    fake = FakeHost(tmp_path)
    fake.tools["nvidia-smi"] = CommandResult(9, NVIDIA_SMI_NO_DRIVER, "")
    report = diagnose(fake.host())
    gpu = finding(report, "gpu")
    assert not gpu.ok and "couldn't communicate with the NVIDIA driver" in gpu.summary
    assert report.usable_backends == []  # no onnxruntime in this fake, no TensorRT


def test_a_provider_that_computes_wrong_is_not_usable(tmp_path: Path) -> None:
    fake = FakeHost(tmp_path)
    fake.modules["onnxruntime"] = fake_onnxruntime(["CPUExecutionProvider"], ["CPUExecutionProvider"], double=3.0)
    verdict = diagnose(fake.host()).backends[0]
    assert not verdict.usable and "wrong result" in verdict.reason


def test_engine_cache_size_and_writability(orin: FakeHost, cache_dir: Path) -> None:
    engines = cache_dir / "engines" / "ab12"
    engines.mkdir(parents=True)
    (engines / "model.engine").write_bytes(b"\0" * 3000)
    (engines / "model.json").write_bytes(b"{}")
    cache = finding(diagnose(orin.host()), "engine-cache")
    assert cache.ok and (cache.details["engines"], cache.details["files"], cache.details["bytes"]) == (1, 2, 3002)
    assert "(1 engines, 0.0 MiB)" in cache.summary
    orin.denied.add(cache_dir / "engines")
    cache = finding(diagnose(orin.host()), "engine-cache")
    assert not cache.ok and "EDGEAFF_CACHE_DIR" in cache.fix


# --- the CLI ------------------------------------------------------------------------------------------------------


def test_cli_exit_codes_follow_the_verdicts(orin: FakeHost, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    runner = CliRunner()
    monkeypatch.setattr(doctor, "diagnose", lambda: diagnose(orin.host()))
    result = runner.invoke(app, ["doctor", "--require", "trt", "--require", "gstreamer"])
    assert result.exit_code == 0, result.output
    empty = FakeHost(tmp_path / "empty")
    monkeypatch.setattr(doctor, "diagnose", lambda: diagnose(empty.host()))
    result = runner.invoke(app, ["doctor"])
    assert result.exit_code == 1 and "no backend can run inference" in result.output
    result = runner.invoke(app, ["doctor", "--json"])
    assert result.exit_code == 1 and json.loads(result.output)["usable_backends"] == []


BLOCK_TORCH_CLI = BLOCK_TORCH + "from edgeaff.cli import main\n"


def run_doctor(*args: str) -> subprocess.CompletedProcess[str]:
    """The real doctor on this machine, in a subprocess where torch cannot be imported (as in the Jetson image)."""
    code = BLOCK_TORCH_CLI + f"main({list(args)!r})\n"
    env = {**os.environ, "EDGEAFF_CACHE_DIR": os.environ["EDGEAFF_CACHE_DIR"]}
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=300, env=env, check=False
    )


def test_doctor_on_this_machine_without_torch() -> None:
    result = run_doctor("doctor")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "ort-cpu   usable" in result.stdout
    data = json.loads(run_doctor("doctor", "--json").stdout)
    assert data["backends"]["ort-cpu"]["usable"] is True
    if not data["gpu"]["found"]:  # the development machines and CI have no GPU: the report must say so plainly
        assert "No CUDA GPU is usable on this machine" in result.stdout


def test_cli_rejects_unknown_and_reports_failed_requirements() -> None:
    result = run_doctor("doctor", "--require", "warp-drive")
    assert result.returncode == 2 and "unknown check warp-drive" in result.stderr and "Traceback" not in result.stderr
    result = run_doctor("doctor", "--require", "ort-cpu", "--require", "jetson")
    if "not a Jetson" in result.stdout:
        assert result.returncode == 1 and "required but not fine: jetson" in result.stdout
