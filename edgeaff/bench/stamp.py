"""The stamp every benchmark result carries: where it ran, with what, under which load, when.

Absolute timings mean little without it: the same graph runs several times slower on a loaded two-core VM than on
an idle one, and a Jetson's numbers depend on its power mode. The stamp records the machine (CPU model and cores,
GPU, Jetson model, L4T/JetPack and power mode), the operating system, the versions of edgeaff and of the libraries
that ran (ONNX Runtime, TensorRT, CUDA where present), and the load average before and after the run. Torch is
never imported.
"""

from __future__ import annotations

import datetime as dt
import os
import platform
import resource
import sys
from typing import Any

from edgeaff.runtime.cpu import cpu_model, describe_isa, isa_summary
from edgeaff.runtime.versions import versions as runtime_versions


def load_average() -> list[float] | None:
    """The 1, 5 and 15 minute load averages, or ``None`` where the OS has none."""
    try:
        return [round(value, 2) for value in os.getloadavg()]
    except OSError:
        return None


def peak_rss_mib() -> float:
    """Peak resident memory of this process so far, MiB (Linux reports KiB, macOS bytes)."""
    peak = float(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
    return peak / 2**20 if sys.platform == "darwin" else peak / 1024.0


def cuda_version() -> str | None:
    """The CUDA driver API version pycuda reports, when pycuda and a driver are present (never imports torch)."""
    try:
        from pycuda import driver
    except Exception:  # pycuda missing or built against a CUDA that is not here: no CUDA to report
        return None
    try:
        driver.init()
        major, minor = divmod(int(driver.get_driver_version()), 1000)
        return f"{major}.{minor // 10}"
    except Exception:  # no driver / no device: pycuda raises its own error types
        return None


def device_stamp() -> dict[str, Any]:
    """The machine: CPU model, cores and instruction-set extensions (``isa``: AVX2, AVX-512, VNNI, BF16, AMX or the
    Arm equivalents, :func:`edgeaff.runtime.cpu.isa_summary`), GPU (first CUDA device, with its compute
    capability), Jetson facts, operating system."""
    from edgeaff.doctor.probes import Host, probe_gpu, probe_jetson

    host = Host()
    gpu = probe_gpu(host)
    jetson = probe_jetson(host)
    stamp: dict[str, Any] = {
        "cpu": cpu_model(),
        "cpu_cores": os.cpu_count(),
        "isa": isa_summary(),
        "machine": platform.machine(),
        "os": platform.platform(),
        "gpu": None,
        "jetson": None,
    }
    if gpu.found:
        stamp["gpu"] = {"name": gpu.name, "compute_capability": gpu.compute_capability, "memory_mib": gpu.memory_mib}
    if jetson.is_jetson:
        stamp["jetson"] = {
            "model": jetson.model,
            "l4t": jetson.l4t,
            "jetpack": jetson.jetpack,
            "power_mode": jetson.power_mode,
            "power_mode_id": jetson.power_mode_id,
        }
    stamp["isa_line"] = describe_isa(stamp["isa"])
    stamp["device"] = describe_device(stamp)
    return stamp


def describe_device(stamp: dict[str, Any]) -> str:
    """One line naming the device: the Jetson model, else the GPU, else the CPU with its core count."""
    if stamp.get("jetson"):
        jetson = stamp["jetson"]
        mode = f", power mode {jetson['power_mode']}" if jetson.get("power_mode") else ""
        return f"{jetson.get('model') or 'Jetson'}{mode}"
    if stamp.get("gpu"):
        gpu = stamp["gpu"]
        capability = f"compute capability {gpu['compute_capability']}, " if gpu.get("compute_capability") else ""
        return f"{gpu['name']} ({capability}CPU {stamp['cpu']}, {stamp['cpu_cores']} cores)"
    return f"CPU {stamp['cpu']}, {stamp['cpu_cores']} cores, no GPU"


def make_stamp(
    *, settings: dict[str, Any], load_before: list[float] | None, machine: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The full stamp of one benchmark run.

    Args:
        settings: what was measured (backend, precision, models, folds, shared trunk, batch/window sizes, ...).
        load_before: the load average when the run started (:func:`load_average`).
        machine: :func:`device_stamp`, if already taken.

    Returns:
        ``{"date", "device", "machine", "versions", "settings", "load_average": {"before", "after"},
        "peak_rss_mib"}``.
    """
    machine = machine if machine is not None else device_stamp()
    versions = runtime_versions()
    if machine["gpu"] is not None:
        cuda = cuda_version()
        if cuda is not None:
            versions["cuda"] = cuda
    return {
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "device": machine["device"],
        "machine": machine,
        "versions": versions,
        "settings": settings,
        "load_average": {"before": load_before, "after": load_average()},
        "peak_rss_mib": round(peak_rss_mib(), 1),
    }
