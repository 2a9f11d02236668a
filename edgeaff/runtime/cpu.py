"""What this machine's CPU can execute, read once from ``/proc/cpuinfo``: the one place edgeaff reads it.

The runtime uses it to pick the INT8 form a CPU runs well (:func:`edgeaff.runtime.backends.graphs.graph_runner`),
and the benchmark stamp records the same facts (:meth:`CpuInfo.isa`). Nothing here runs code to probe the CPU: the
kernel's flag list is what ONNX Runtime's own dispatch (cpuid) sees, minus what a hypervisor hides from both.

INT8 on CPUs (ONNX Runtime's MLAS kernels, ``docs/export.md``):

* **VNNI** (AVX-512 VNNI, AVX-VNNI or AMX-INT8): u8 × s8 products are summed into 32-bit integers, exactly; full
  8-bit weights cost nothing extra.
* **AVX2 without VNNI**: ``vpmaddubsw`` adds pairs of u8 × s8 products into 16 bits, which saturate with full-range
  weights (255 · 127 · 2 > 32767); 7-bit weights fit.
* **ARM dot product** (``asimddp``): ``udot``/``sdot`` accumulate into 32 bits, like VNNI.
* anything else (x86 without AVX2, ARM without dot product, unknown machines): no INT8 kernel known to beat FP32.
"""

from __future__ import annotations

import dataclasses
import functools
import platform
from pathlib import Path

from edgeaff.runtime.choices import Choice

CPUINFO = Path("/proc/cpuinfo")
MODEL_KEYS = ("model name", "Model", "Hardware", "cpu model")
FLAG_KEYS = ("flags", "Features")
# Flags worth recording in a benchmark stamp: SIMD width, integer dot products, bfloat16, matrix units.
ISA_FLAGS = (
    "avx2",
    "fma",
    "avx512f",
    "avx512bw",
    "avx512_vnni",
    "avx_vnni",
    "avx512_bf16",
    "avx512_fp16",
    "amx_int8",
    "amx_bf16",
    "asimd",
    "asimddp",
    "i8mm",
    "bf16",
    "sve",
)
VNNI_FLAGS = ("avx512_vnni", "avx_vnni", "amx_int8")
X86_MACHINES = ("x86_64", "amd64", "i386", "i686")
ARM_MACHINES = ("aarch64", "arm64")


class Int8Kernels(Choice):
    """Which integer dot-product instructions ONNX Runtime's INT8 kernels can use on this CPU."""

    __label__ = "INT8 kernel class"

    VNNI = "vnni"
    AVX2 = "avx2"
    ARM_DOT = "arm-dot"
    NONE = "none"


@dataclasses.dataclass(frozen=True)
class CpuInfo:
    """The CPU's model name, machine type and instruction-set flags (lower case, as the kernel lists them)."""

    model: str
    machine: str
    flags: frozenset[str]

    @property
    def int8_kernels(self) -> Int8Kernels:
        """The INT8 kernel class (module docstring)."""
        machine = self.machine.lower()
        if machine in X86_MACHINES:
            if any(flag in self.flags for flag in VNNI_FLAGS):
                return Int8Kernels.VNNI
            return Int8Kernels.AVX2 if "avx2" in self.flags else Int8Kernels.NONE
        if machine in ARM_MACHINES and "asimddp" in self.flags:
            return Int8Kernels.ARM_DOT
        return Int8Kernels.NONE

    def isa(self) -> dict[str, bool]:
        """``{flag: present}`` for :data:`ISA_FLAGS` of this machine's architecture (for benchmark stamps)."""
        arm = self.machine.lower() in ARM_MACHINES
        names = [f for f in ISA_FLAGS if (f in ("asimd", "asimddp", "i8mm", "bf16", "sve")) == arm]
        return {name: name in self.flags for name in names}


def read_cpu_info(path: Path = CPUINFO, *, machine: str | None = None) -> CpuInfo:
    """Parse a ``/proc/cpuinfo``-style file (the first processor's entry); a missing file gives no flags.

    Args:
        path: the file (tests pass a fake one).
        machine: the machine type (``platform.machine()`` when ``None``).
    """
    model, flags = "", ""
    try:
        text = path.read_text(errors="replace")
    except OSError:
        text = ""
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key, value = key.strip(), value.strip()
        if key in MODEL_KEYS and value and not model:
            model = value
        elif key in FLAG_KEYS and value and not flags:
            flags = value
    arch = machine or platform.machine()
    return CpuInfo(model=model or platform.processor() or arch, machine=arch, flags=frozenset(flags.lower().split()))


@functools.lru_cache(maxsize=1)
def host_cpu() -> CpuInfo:
    """This machine's CPU (read once per process)."""
    return read_cpu_info(CPUINFO)
