"""Probes of what this machine has: Python libraries, the GPU, cameras and Jetson facts (for ``edgeaff doctor``).

Every probe reads the machine through a :class:`Host`: the file-system root, a command runner, the module importer
and the installed-distribution lookup. Tests hand in a Host with a fake ``/proc`` and ``/etc``, canned tool outputs and
fake modules, so the Jetson and GPU branches are covered on any machine. No probe imports torch.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
import os
import platform
import re
import shutil
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

OPENCV_WHEELS = ("opencv-python", "opencv-python-headless", "opencv-contrib-python", "opencv-contrib-python-headless")
# (codec, mode) pairs the runtime relies on: decoding H.264/HEVC video and AAC audio; libx264 writes overlays.
AV_CODECS = (("h264", "r"), ("hevc", "r"), ("aac", "r"), ("libx264", "w"))
JETPACK_OF_L4T = {35: "5", 36: "6", 38: "7"}
SUPPORTED_L4T = "36.4"  # Dockerfile.jetson and docs/jetson.md are written for L4T r36.4.x (JetPack 6.1 / 6.2.x)


@dataclass(frozen=True)
class CommandResult:
    """Exit status and output of a tool run by a probe."""

    returncode: int
    stdout: str
    stderr: str

    def first_line(self) -> str:
        """The first non-empty output line (stdout, then stderr), for one-line explanations."""
        for line in (self.stdout + "\n" + self.stderr).splitlines():
            if line.strip():
                return line.strip()
        return f"exit status {self.returncode}"


def run_command(argv: Sequence[str], *, timeout: float = 20.0) -> CommandResult | None:
    """Run a tool and capture its output; ``None`` when it is not on ``PATH``."""
    executable = shutil.which(argv[0])
    if executable is None:
        return None
    try:
        done = subprocess.run([executable, *argv[1:]], capture_output=True, text=True, timeout=timeout, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return CommandResult(-1, "", str(exc))
    return CommandResult(done.returncode, done.stdout, done.stderr)


def _module_installed(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def _distribution_version(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


@dataclass(frozen=True)
class Host:
    """How probes see the machine; every part can be replaced in tests.

    Attributes:
        root: prefix for absolute paths such as ``/proc/device-tree/model`` and ``/dev/video0``.
        import_module: imports a module by name (may raise anything a broken install raises).
        run: runs a tool (``nvpmodel -q``, ``nvidia-smi ...``); ``None`` when the tool is absent.
        module_installed: whether a module can be found, without importing it.
        distribution_version: installed version of a pip distribution, or ``None``.
        access: ``os.access``-like permission check.
        machine: ``platform.machine()``.
    """

    root: Path = Path("/")
    import_module: Callable[[str], Any] = importlib.import_module
    run: Callable[[Sequence[str]], CommandResult | None] = run_command
    module_installed: Callable[[str], bool] = _module_installed
    distribution_version: Callable[[str], str | None] = _distribution_version
    access: Callable[[Path, int], bool] = os.access
    machine: str = field(default_factory=platform.machine)

    def path(self, absolute: str) -> Path:
        """An absolute path of the machine, under :attr:`root`."""
        return self.root / absolute.lstrip("/")

    def read_text(self, absolute: str) -> str | None:
        """Contents of a file of the machine, or ``None`` when it cannot be read."""
        try:
            return self.path(absolute).read_text(errors="replace")
        except OSError:
            return None

    def load(self, module: str) -> tuple[Any, str | None]:
        """``(module, None)`` when the import works, else ``(None, why)``."""
        try:
            return self.import_module(module), None
        except Exception as exc:  # a broken install can raise anything at import time; doctor reports it
            return None, f"{type(exc).__name__}: {_one_line(exc)}"


@dataclass(frozen=True)
class Finding:
    """What one probe found: whether it is fine, a one-line summary, details for JSON, and a fix when not fine."""

    name: str
    ok: bool
    summary: str
    details: dict[str, Any] = field(default_factory=dict)
    fix: str | None = None


@dataclass(frozen=True)
class JetsonInfo:
    """Facts about a Jetson; ``is_jetson`` is False elsewhere."""

    is_jetson: bool
    model: str | None = None
    l4t: str | None = None
    jetpack: str | None = None
    power_mode: str | None = None
    power_mode_id: int | None = None


@dataclass(frozen=True)
class GpuInfo:
    """The first CUDA device, as seen by the first tool that could see it."""

    found: bool
    usable_from_python: bool = False  # a CUDA context could be made (pycuda / cuda-python), not just listed
    name: str | None = None
    compute_capability: str | None = None
    memory_mib: int | None = None
    source: str | None = None
    notes: tuple[str, ...] = ()


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def probe_jetson(host: Host) -> JetsonInfo:
    """Model (device tree), L4T release (``/etc/nv_tegra_release``) and power mode (``nvpmodel -q``)."""
    model_text = host.read_text("/proc/device-tree/model")
    release = host.read_text("/etc/nv_tegra_release")
    model = model_text.replace("\x00", "").strip() if model_text else None
    if release is None and not (model and "jetson" in model.lower()):
        return JetsonInfo(is_jetson=False, model=model)
    l4t = jetpack = None
    match = re.search(r"R(\d+)\s*\(release\),\s*REVISION:\s*([\d.]+)", release or "")
    if match:
        major = int(match.group(1))
        l4t = f"{major}.{match.group(2)}"
        jetpack = f"{JETPACK_OF_L4T[major]}.x" if major in JETPACK_OF_L4T else None
    mode = mode_id = None
    result = host.run(["nvpmodel", "-q"])
    if result is not None and result.returncode == 0:
        name_match = re.search(r"NV Power Mode:\s*(\S+)", result.stdout)
        id_match = re.search(r"^\s*(\d+)\s*$", result.stdout, re.MULTILINE)
        mode = name_match.group(1) if name_match else None
        mode_id = int(id_match.group(1)) if id_match else None
    return JetsonInfo(True, model, l4t, jetpack, mode, mode_id)


def _gpu_from_pycuda(host: Host, notes: list[str]) -> GpuInfo | None:
    driver, error = host.load("pycuda.driver")
    if driver is None:
        notes.append("pycuda: " + ("not installed" if not host.module_installed("pycuda") else str(error)))
        return None
    try:
        driver.init()
        count = driver.Device.count()
        if count == 0:
            notes.append("pycuda: the CUDA driver sees no device")
            return None
        device = driver.Device(0)
        major, minor = device.compute_capability()
        return GpuInfo(True, True, device.name(), f"{major}.{minor}", device.total_memory() // 2**20, "pycuda")
    except (
        Exception
    ) as exc:  # pycuda raises its own driver errors (e.g. no driver in a container without nvidia runtime)
        notes.append(f"pycuda: {_one_line(exc)}")
        return None


def _gpu_from_cuda_python(host: Host, notes: list[str]) -> GpuInfo | None:
    runtime = None
    for module in ("cuda.bindings.runtime", "cuda.cudart"):
        runtime, _ = host.load(module)
        if runtime is not None:
            break
    if runtime is None:
        notes.append("cuda-python: not installed")
        return None
    try:
        error, count = runtime.cudaGetDeviceCount()
        if error != runtime.cudaError_t.cudaSuccess or count == 0:
            notes.append(f"cuda-python: no device ({error})")
            return None
        error, prop = runtime.cudaGetDeviceProperties(0)
        name = prop.name.decode(errors="replace").rstrip("\x00") if isinstance(prop.name, bytes) else str(prop.name)
        return GpuInfo(True, True, name, f"{prop.major}.{prop.minor}", int(prop.totalGlobalMem) // 2**20, "cuda-python")
    except Exception as exc:  # the driver library may be missing: cuda-python raises at first use
        notes.append(f"cuda-python: {_one_line(exc)}")
        return None


def _gpu_from_nvidia_smi(host: Host, notes: list[str]) -> GpuInfo | None:
    query = "--query-gpu=name,compute_cap,memory.total"
    result = host.run(["nvidia-smi", query, "--format=csv,noheader,nounits"])
    if result is None:
        notes.append("nvidia-smi: not found")
        return None
    if result.returncode != 0:
        notes.append(f"nvidia-smi: {result.first_line()}")
        return None
    fields = [part.strip() for part in result.stdout.strip().splitlines()[0].split(",")] if result.stdout else []
    if not fields or not fields[0]:
        notes.append("nvidia-smi: lists no GPU")
        return None
    cc = fields[1] if len(fields) > 1 and re.fullmatch(r"\d+\.\d+", fields[1]) else None
    memory = int(fields[2]) if len(fields) > 2 and fields[2].isdigit() else None
    return GpuInfo(True, False, fields[0], cc, memory, "nvidia-smi")


def probe_gpu(host: Host) -> GpuInfo:
    """The first CUDA device: pycuda, then cuda-python, then ``nvidia-smi``, whichever is present and works."""
    notes: list[str] = []
    for probe in (_gpu_from_pycuda, _gpu_from_cuda_python, _gpu_from_nvidia_smi):
        gpu = probe(host, notes)
        if gpu is not None:
            return GpuInfo(**{**gpu.__dict__, "notes": tuple(notes)})
    return GpuInfo(False, notes=tuple(notes))


def probe_opencv(host: Host, *, jetson: bool) -> tuple[Finding, Finding]:
    """OpenCV version, whether it is a pip wheel, and its build flags.

    Returns:
        The ``opencv`` and ``gstreamer`` findings. A pip OpenCV wheel on a Jetson is a problem: it shadows JetPack's
        build, which is the one with GStreamer (``csi://`` cameras).
    """
    cv2, error = host.load("cv2")
    wheels = [name for name in OPENCV_WHEELS if host.distribution_version(name)]
    if cv2 is None:
        fix = (
            "use JetPack's OpenCV (sudo apt install python3-opencv, or Dockerfile.jetson); a venv needs "
            "--system-site-packages to see it"
            if jetson
            else "pip install 'opencv-python-headless>=4.8,<5' (an edgeaff base dependency off aarch64)"
        )
        missing = Finding("gstreamer", False, "unknown: OpenCV does not import")
        return Finding("opencv", False, f"does not import ({error})", {"error": error}, fix), missing
    info = cv2.getBuildInformation()

    def flag(label: str) -> tuple[bool, str]:
        match = re.search(rf"^\s*{re.escape(label)}:\s*(YES|NO)\b(.*)$", info, re.MULTILINE)
        return (match.group(1) == "YES", match.group(2).strip(" ()")) if match else (False, "")

    gstreamer, gst_version = flag("GStreamer")
    cuda, _ = flag("NVIDIA CUDA")
    v4l2, _ = flag("V4L/V4L2")
    details = {
        "version": cv2.__version__,
        "file": str(getattr(cv2, "__file__", "")),
        "pip_wheels": wheels,
        "gstreamer": gstreamer,
        "cuda": cuda,
        "v4l2": v4l2,
    }
    origin = f"pip wheel {', '.join(wheels)}" if wheels else "system build"
    summary = f"{cv2.__version__} ({origin}), GStreamer {'yes' if gstreamer else 'no'}, CUDA {'yes' if cuda else 'no'}"
    opencv = Finding("opencv", True, summary, details)
    if jetson and wheels:
        fix = f"pip uninstall {' '.join(wheels)} so that JetPack's OpenCV (with GStreamer) is imported"
        opencv = Finding("opencv", False, summary + "; a pip wheel shadows JetPack's OpenCV", details, fix)
    if gstreamer:
        gst = Finding(
            "gstreamer", True, f"OpenCV is built with GStreamer {gst_version}".strip(), {"version": gst_version}
        )
    else:
        needed = "csi:// cameras and GStreamer pipelines cannot be opened"
        if jetson:
            fix = "use JetPack's OpenCV (Dockerfile.jetson keeps it); pip OpenCV wheels are built without GStreamer"
            gst = Finding("gstreamer", False, f"OpenCV is built without GStreamer: {needed}", fix=fix)
        else:
            gst = Finding("gstreamer", False, f"OpenCV is built without GStreamer ({needed}; a Jetson-only need)")
    return opencv, gst


def probe_pyav(host: Host) -> Finding:
    """PyAV version and the codecs the runtime needs (H.264 and AAC decoding)."""
    av, error = host.load("av")
    if av is None:
        return Finding("pyav", False, f"does not import ({error})", fix="pip install 'av>=12' (an edgeaff dependency)")
    codecs = {}
    for name, mode in AV_CODECS:
        try:
            av.codec.Codec(name, mode)
            codecs[f"{name}:{'decode' if mode == 'r' else 'encode'}"] = True
        except Exception:  # UnknownCodecError (a ValueError) in current PyAV; older versions differ
            codecs[f"{name}:{'decode' if mode == 'r' else 'encode'}"] = False
    ok = codecs["h264:decode"] and codecs["aac:decode"]
    listed = ", ".join(f"{key} {'yes' if value else 'no'}" for key, value in codecs.items())
    fix = None if ok else "reinstall PyAV from its wheels (pip install --force-reinstall 'av>=12'), which bundle FFmpeg"
    return Finding("pyav", ok, f"{av.__version__}; {listed}", {"version": av.__version__, "codecs": codecs}, fix)


def probe_opensmile(host: Host) -> Finding:
    """openSMILE version; importing it loads its native library (libSMILEapi), so an import is a load test."""
    opensmile, error = host.load("opensmile")
    if opensmile is None:
        if host.module_installed("opensmile"):
            fix = (
                "pip install --force-reinstall 'opensmile>=2.5' (2.5+ ships the aarch64 library; 2.4.x is x86-64 only)"
            )
            return Finding("opensmile", False, f"installed but its native library does not load ({error})", fix=fix)
        return Finding("opensmile", False, "not installed", fix="pip install 'opensmile>=2.5' (an edgeaff dependency)")
    lib = getattr(getattr(getattr(opensmile, "core", None), "lib", None), "smileapi_path", None)
    details = {"version": opensmile.__version__, "library": lib}
    return Finding("opensmile", True, f"{opensmile.__version__}, native library loads", details)


def probe_cameras(host: Host, *, jetson: bool) -> Finding:
    """V4L2 devices (``/dev/video*``) with their names and access; on a Jetson also the Argus socket (CSI)."""
    devices = sorted(host.path("/dev").glob("video*"), key=lambda p: int(re.sub(r"\D", "", p.name) or 0))
    cameras: list[dict[str, Any]] = []
    parts: list[str] = []
    for device in devices:
        name = (host.read_text(f"/sys/class/video4linux/{device.name}/name") or "").strip() or None
        usable = host.access(device, os.R_OK | os.W_OK)
        cameras.append({"device": f"/dev/{device.name}", "name": name, "access": usable})
        parts.append(f"/dev/{device.name}" + (f" ({name})" if name else "") + ("" if usable else " no permission"))
    details: dict[str, Any] = {"v4l2": cameras}
    parts = parts or ["no /dev/video* devices"]
    if jetson:
        argus = host.path("/tmp/argus_socket").exists()
        gst = host.run(["gst-inspect-1.0", "nvarguscamerasrc"])
        details.update(argus_socket=argus, nvarguscamerasrc=None if gst is None else gst.returncode == 0)
        parts.append(f"Argus socket {'present' if argus else 'absent'}")
        if gst is not None:
            parts.append(f"nvarguscamerasrc {'available' if gst.returncode == 0 else 'missing'}")
    ok = any(c["access"] for c in cameras) or bool(details.get("argus_socket"))
    fix = None
    if cameras and not any(c["access"] for c in cameras):
        fix = "add the user to the 'video' group (docker: --device /dev/videoN --group-add video)"
    elif not ok:
        fix = (
            "connect a camera; docker needs --device /dev/video0 (USB) or -v /tmp/argus_socket:/tmp/argus_socket (CSI)"
        )
    return Finding("cameras", ok, "; ".join(parts), details, fix)


def probe_engine_cache(host: Host, directory: Path) -> Finding:
    """Location, size and writability of the TensorRT engine cache (``*.engine`` files plus sidecars and timings)."""
    exists = directory.is_dir()
    files = [p for p in directory.rglob("*") if p.is_file()] if exists else []
    engines = sum(p.suffix == ".engine" for p in files)
    size = sum(p.stat().st_size for p in files)
    probe = directory
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    writable = host.access(probe, os.W_OK)
    details = {"path": str(directory), "exists": exists, "engines": engines, "files": len(files), "bytes": size}
    details["writable"] = writable
    state = f"{engines} engines, {size / 2**20:.1f} MiB" if exists else "not created yet"
    summary = f"{directory} ({state}{'' if writable else ', NOT writable'})"
    fix = None if writable else "set EDGEAFF_CACHE_DIR to a writable directory (docker: mount a volume there)"
    return Finding("engine-cache", writable, summary, details, fix)
