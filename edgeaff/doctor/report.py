"""``edgeaff doctor``: what this machine can run, and a verdict per inference backend.

A backend is *usable* only when it really ran something here: ONNX Runtime backends run a tiny probe graph on their
execution provider (a provider that is listed but fails to load its CUDA libraries makes ONNX Runtime fall back to the
CPU, which counts as not usable), and the native TensorRT backend needs TensorRT, a CUDA device through pycuda, and a
TensorRT builder that can be created. Torch is never imported.

Example::

    report = diagnose()
    print(render_text(report))
    exit_code = 0 if report.usable_backends else 1
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from edgeaff.doctor.probe_model import PROBE_INPUT, PROBE_SHAPE, probe_model_bytes
from edgeaff.doctor.probes import (
    SUPPORTED_L4T,
    Finding,
    GpuInfo,
    Host,
    JetsonInfo,
    probe_cameras,
    probe_engine_cache,
    probe_gpu,
    probe_jetson,
    probe_opencv,
    probe_opensmile,
    probe_pyav,
)
from edgeaff.runtime.engines.paths import engine_cache_dir
from edgeaff.runtime.versions import versions

BACKENDS = ("ort-cpu", "ort-cuda", "ort-trt", "trt")
COMPONENTS = (
    "jetson",
    "gpu",
    "onnxruntime",
    "tensorrt",
    "pycuda",
    "opencv",
    "gstreamer",
    "pyav",
    "opensmile",
    "cameras",
    "engine-cache",
)
CHECK_NAMES = BACKENDS + COMPONENTS
_PROVIDER = {
    "ort-cpu": "CPUExecutionProvider",
    "ort-cuda": "CUDAExecutionProvider",
    "ort-trt": "TensorrtExecutionProvider",
}


@dataclass(frozen=True)
class BackendVerdict:
    """Whether a backend can run here; ``reason`` says what ran or why not, ``fix`` how to make it usable."""

    backend: str
    usable: bool
    reason: str
    fix: str | None = None


@dataclass(frozen=True)
class DoctorReport:
    """Everything ``edgeaff doctor`` found."""

    python: str
    machine: str
    edgeaff: str
    numpy: str
    torch_installed: bool
    jetson: JetsonInfo
    gpu: GpuInfo
    components: tuple[Finding, ...]
    backends: tuple[BackendVerdict, ...]
    versions: Mapping[str, str] = field(default_factory=dict)

    @property
    def usable_backends(self) -> list[str]:
        """Names of the backends that can run here."""
        return [verdict.backend for verdict in self.backends if verdict.usable]

    def check(self, name: str) -> bool:
        """Whether the backend or component ``name`` (one of :data:`CHECK_NAMES`) is fine."""
        if name in BACKENDS:
            return name in self.usable_backends
        return next(finding.ok for finding in self.components if finding.name == name)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form of the report."""
        return {
            "edgeaff": self.edgeaff,
            "python": self.python,
            "machine": self.machine,
            "numpy": self.numpy,
            "torch_installed": self.torch_installed,
            "jetson": self.jetson.__dict__,
            "gpu": {**self.gpu.__dict__, "notes": list(self.gpu.notes)},
            "components": {
                f.name: {"ok": f.ok, "summary": f.summary, **f.details, "fix": f.fix} for f in self.components
            },
            "backends": {v.backend: {"usable": v.usable, "reason": v.reason, "fix": v.fix} for v in self.backends},
            "usable_backends": self.usable_backends,
            "versions": dict(self.versions),
        }


def _ort_runs(ort: Any, provider: str) -> str | None:
    """Run the probe graph on ``provider``: ``None`` when it ran there and gave the right answer, else why not."""
    x = np.arange(PROBE_SHAPE[0] * PROBE_SHAPE[1], dtype=np.float32).reshape(PROBE_SHAPE)
    providers = [provider] if provider == "CPUExecutionProvider" else [provider, "CPUExecutionProvider"]
    try:
        options = ort.SessionOptions()
        options.log_severity_level = 4  # the probe reports failures itself
        session = ort.InferenceSession(probe_model_bytes(), sess_options=options, providers=providers)
        active = list(session.get_providers())
        if not active or active[0] != provider:
            return f"{provider} failed to initialise; ONNX Runtime fell back to {', '.join(active) or 'nothing'}"
        (y,) = session.run(None, {PROBE_INPUT: x})
    except Exception as exc:  # onnxruntime raises its own exception types (e.g. missing CUDA libraries)
        return f"{provider}: {str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__}"
    if not np.array_equal(np.asarray(y), x + x):
        return f"{provider} returned a wrong result for the probe graph"
    return None


def _fixes(jetson: bool) -> dict[str, str]:
    if jetson:
        return {
            "ort": "pip install 'edgeaff[ort]' (CPU); for the GPU use NVIDIA's JetPack onnxruntime-gpu wheel "
            "(docker build --build-arg ORT_GPU_INDEX_URL=..., see docs/jetson.md)",
            "ort-gpu": "install NVIDIA's JetPack 6 onnxruntime-gpu wheel instead of onnxruntime (docs/jetson.md)",
            "gpu": "run the container with --runtime nvidia (JetPack's driver libraries are mounted from the host)",
            "tensorrt": "TensorRT comes with JetPack: sudo apt install python3-libnvinfer (a venv needs "
            "--system-site-packages to see it), or use Dockerfile.jetson",
            "pycuda": "pip install 'edgeaff[trt]' with CUDA on PATH (PATH=/usr/local/cuda/bin:$PATH) to build pycuda",
        }
    return {
        "ort": "pip install 'edgeaff[ort]' (CPU) or 'edgeaff[gpu]' (NVIDIA GPU)",
        "ort-gpu": "pip uninstall onnxruntime && pip install 'edgeaff[gpu]' (the two builds share one module name)",
        "gpu": "install the NVIDIA driver; in docker run with --gpus all (NVIDIA Container Toolkit)",
        "tensorrt": "pip install the TensorRT wheels matching your CUDA (docs/desktop-gpu.md)",
        "pycuda": "pip install 'edgeaff[trt]' with the CUDA toolkit's nvcc on PATH (builds pycuda)",
    }


def _ort_verdicts(host: Host, fixes: dict[str, str]) -> tuple[Finding, list[BackendVerdict]]:
    ort, error = host.load("onnxruntime")
    if ort is None:
        finding = Finding("onnxruntime", False, f"not usable ({error})", fix=fixes["ort"])
        return finding, [BackendVerdict(b, False, "onnxruntime does not import", fixes["ort"]) for b in _PROVIDER]
    providers = list(ort.get_available_providers())
    finding = Finding(
        "onnxruntime",
        True,
        f"{ort.__version__}, providers {', '.join(providers)}",
        {"version": ort.__version__, "providers": providers},
    )
    verdicts = []
    for backend, provider in _PROVIDER.items():
        if provider not in providers:
            fix = fixes["ort"] if backend == "ort-cpu" else fixes["ort-gpu"]
            verdicts.append(BackendVerdict(backend, False, f"this onnxruntime build has no {provider}", fix))
            continue
        failure = _ort_runs(ort, provider)
        if failure is None:
            verdicts.append(
                BackendVerdict(backend, True, f"ONNX Runtime {ort.__version__} ran the probe on {provider}")
            )
        else:
            fix = (
                "check that CUDA, cuDNN (and TensorRT for ort-trt) match this onnxruntime build and that a GPU is "
                "visible (" + fixes["gpu"] + ")"
            )
            verdicts.append(BackendVerdict(backend, False, failure, fix))
    return finding, verdicts


def _trt_verdict(host: Host, gpu: GpuInfo, fixes: dict[str, str]) -> tuple[Finding, Finding, BackendVerdict]:
    trt, trt_error = host.load("tensorrt")
    if trt is None:
        tensorrt = Finding(
            "tensorrt",
            False,
            "not installed" if not host.module_installed("tensorrt") else f"does not import ({trt_error})",
            fix=fixes["tensorrt"],
        )
    else:
        tensorrt = Finding("tensorrt", True, str(trt.__version__), {"version": str(trt.__version__)})
    pycuda, pycuda_error = host.load("pycuda")
    if pycuda is None:
        pycuda_finding = Finding(
            "pycuda",
            False,
            "not installed" if not host.module_installed("pycuda") else f"does not import ({pycuda_error})",
            fix=fixes["pycuda"],
        )
    else:
        version = str(getattr(pycuda, "VERSION_TEXT", "installed"))
        driver_ok = gpu.source == "pycuda"
        note = next((n for n in gpu.notes if n.startswith("pycuda")), "")
        summary = f"{version}, CUDA device {'usable' if driver_ok else 'NOT usable: ' + note}"
        pycuda_finding = Finding(
            "pycuda", driver_ok, summary, {"version": version}, None if driver_ok else fixes["gpu"]
        )
    if trt is None:
        return tensorrt, pycuda_finding, BackendVerdict("trt", False, f"TensorRT {tensorrt.summary}", fixes["tensorrt"])
    if not pycuda_finding.ok:
        why = f"pycuda {pycuda_finding.summary}"
        return tensorrt, pycuda_finding, BackendVerdict("trt", False, why, pycuda_finding.fix)
    try:
        builder = trt.Builder(trt.Logger(trt.Logger.ERROR))
        if builder is None:
            raise RuntimeError("trt.Builder returned None")
    except Exception as exc:  # TensorRT raises plain RuntimeError/TypeError when CUDA cannot be initialised
        why = f"TensorRT {trt.__version__} cannot create a builder ({str(exc).strip() or type(exc).__name__})"
        return tensorrt, pycuda_finding, BackendVerdict("trt", False, why, fixes["gpu"])
    fp16 = getattr(builder, "platform_has_fast_fp16", None)
    fp16_text = "" if fp16 is None else f", fast FP16 {'yes' if fp16 else 'no'}"
    tensorrt = Finding(
        "tensorrt", True, f"{trt.__version__}{fp16_text}", {"version": str(trt.__version__), "fp16": fp16}
    )
    reason = f"TensorRT {trt.__version__} on {gpu.name} (compute capability {gpu.compute_capability})"
    return tensorrt, pycuda_finding, BackendVerdict("trt", True, reason)


def _jetson_finding(jetson: JetsonInfo) -> Finding:
    if not jetson.is_jetson:
        return Finding("jetson", False, "not a Jetson (no /etc/nv_tegra_release)", {"is_jetson": False})
    power = "unknown (nvpmodel not found; run 'sudo nvpmodel -q' on the host)"
    if jetson.power_mode is not None:
        power = f"{jetson.power_mode} (mode {jetson.power_mode_id})"
    l4t = jetson.l4t or "unknown"
    summary = f"{jetson.model or 'model unknown'}, L4T {l4t} (JetPack {jetson.jetpack or '?'}), power mode {power}"
    supported = bool(jetson.l4t and jetson.l4t.startswith(SUPPORTED_L4T))
    fix = (
        None
        if supported
        else f"edgeaff's Jetson image targets L4T r{SUPPORTED_L4T}.x (JetPack 6.1/6.2); see docs/jetson.md"
    )
    return Finding("jetson", True, summary, {"is_jetson": True, "supported_release": supported}, fix)


def _gpu_finding(gpu: GpuInfo, fix: str) -> Finding:
    if not gpu.found:
        return Finding(
            "gpu", False, "no CUDA GPU found (" + "; ".join(gpu.notes) + ")", {"notes": list(gpu.notes)}, fix
        )
    memory = f", {gpu.memory_mib} MiB" if gpu.memory_mib else ""
    summary = f"{gpu.name}, compute capability {gpu.compute_capability or 'unknown'}{memory} (via {gpu.source})"
    if not gpu.usable_from_python:
        summary += "; listed by nvidia-smi only (no pycuda/cuda-python to open it)"
    return Finding("gpu", True, summary, {"name": gpu.name, "compute_capability": gpu.compute_capability})


def diagnose(host: Host | None = None) -> DoctorReport:
    """Probe this machine (or the given :class:`Host`) and judge every backend.

    Returns:
        The report; ``report.usable_backends`` is empty when nothing can run inference here.
    """
    host = host or Host()
    jetson = probe_jetson(host)
    gpu = probe_gpu(host)
    fixes = _fixes(jetson.is_jetson)
    ort_finding, ort_verdicts = _ort_verdicts(host, fixes)
    tensorrt, pycuda, trt_verdict = _trt_verdict(host, gpu, fixes)
    opencv, gstreamer = probe_opencv(host, jetson=jetson.is_jetson)
    components = (
        _jetson_finding(jetson),
        _gpu_finding(gpu, fixes["gpu"]),
        ort_finding,
        tensorrt,
        pycuda,
        opencv,
        gstreamer,
        probe_pyav(host),
        probe_opensmile(host),
        probe_cameras(host, jetson=jetson.is_jetson),
        probe_engine_cache(host, engine_cache_dir()),
    )
    found = versions()
    return DoctorReport(
        python=f"{found['python']} ({sys.executable})",
        machine=host.machine,
        edgeaff=found["edgeaff"],
        numpy=found["numpy"],
        torch_installed=host.module_installed("torch"),
        jetson=jetson,
        gpu=gpu,
        components=components,
        backends=(*ort_verdicts, trt_verdict),
        versions=found,
    )


def render_text(report: DoctorReport) -> str:
    """Human-readable report: one line per component, a verdict per backend, and a closing summary."""
    torch = "installed (the runtime never imports it)" if report.torch_installed else "not installed (not needed)"
    lines = [
        "edgeaff doctor: what this machine can run",
        "",
        f"     {'edgeaff':<13}{report.edgeaff}",
        f"     {'python':<13}{report.python} on {report.machine}",
        f"     {'numpy':<13}{report.numpy}",
        f"     {'torch':<13}{torch}",
    ]
    for finding in report.components:
        mark = "ok " if finding.ok else "-- "
        if finding.name == "jetson" and not report.jetson.is_jetson:
            mark = "   "
        lines.append(f"  {mark}{finding.name:<13}{finding.summary}")
        if finding.fix and (finding.name != "jetson" or report.jetson.is_jetson):
            lines.append(f"     {'':<13}fix: {finding.fix}")
    lines += ["", "backends"]
    for verdict in report.backends:
        lines.append(f"  {verdict.backend:<10}{'usable' if verdict.usable else 'NOT usable':<12}{verdict.reason}")
        if verdict.fix:
            lines.append(f"  {'':<22}fix: {verdict.fix}")
    usable = report.usable_backends
    lines.append("")
    if not usable:
        lines.append("verdict: no backend can run inference on this machine.")
    else:
        lines.append(f"verdict: {len(usable)} of {len(report.backends)} backends usable ({', '.join(usable)}).")
    if not report.gpu.found and not set(usable) - {"ort-cpu"}:
        lines.append(
            "No CUDA GPU is usable on this machine, so the GPU backends (ort-cuda, ort-trt, trt) cannot run here."
        )
    return "\n".join(lines)
