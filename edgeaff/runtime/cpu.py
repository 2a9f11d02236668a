"""The CPU's model and instruction-set extensions, read from the kernel's ``/proc/cpuinfo``: the one reader of it.

What a CPU executes well decides how fast a graph runs on it: INT8 convolutions are ~4× FP32 with AVX-512 VNNI (or
AVX-VNNI, AMX), about 2× with AVX2's ``vpmaddubsw`` only, and ONNX Runtime's signed×signed INT8 kernels are slow
everywhere. Benchmarks stamp these facts next to their numbers, and the runtime picks the INT8 form of a graph by
them (:func:`edgeaff.runtime.backends.graphs.cpu_int8_variant`).

* :func:`cpu_model`: the model name;
* :func:`cpu_flags`: the raw flag names of the first processor (x86 ``flags``, Arm ``Features``), lower case;
* :func:`isa_summary`: the extensions that matter for inference, each a yes/no, and the best INT8 dot-product
  instruction (``int8_dot``), e.g. ``{"arch": "x86_64", "avx2": True, "avx512": True, "vnni": True, ...}``;
* :func:`describe_isa`: that summary in one line;
* :func:`read_cpu_info` / :func:`host_cpu`: all of it as a :class:`CpuInfo`, whose :attr:`CpuInfo.int8_kernels`
  says which INT8 form ONNX Runtime's CPU kernels run well.

INT8 on CPUs (ONNX Runtime's MLAS kernels, ``docs/export.md``):

* **VNNI** (AVX-512 VNNI, AVX-VNNI or AMX-INT8): u8 × s8 products are summed into 32-bit integers, exactly; full
  8-bit weights cost nothing extra.
* **AVX2 without VNNI**: ``vpmaddubsw`` adds pairs of u8 × s8 products into 16 bits, which saturate with full-range
  weights (255 · 127 · 2 > 32767); 7-bit weights fit.
* **ARM dot product** (``asimddp``): ``udot``/``sdot`` accumulate into 32 bits, like VNNI.
* anything else (x86 without AVX2, ARM without dot product, unknown machines): no INT8 kernel known to beat FP32.

No library is imported and nothing is executed: the kernel's flag list is what ONNX Runtime's own dispatch (cpuid)
sees, minus what a hypervisor hides from both. A machine without ``/proc/cpuinfo`` (macOS, Windows) reports no
flags, which reads as "no extension known", never as an error.
"""

from __future__ import annotations

import dataclasses
import functools
import platform
from pathlib import Path
from typing import Any

from edgeaff.runtime.choices import Choice

CPUINFO = Path("/proc/cpuinfo")
# Case matters: x86 lists a numeric "model" before "model name"; ARM boards spell theirs "Model" or "Hardware".
MODEL_KEYS = ("model name", "Model", "Hardware", "cpu model")
FLAG_KEYS = ("flags", "features")
X86_MACHINES = ("x86_64", "amd64", "i386", "i686")

# Flag names as Linux spells them, per extension that matters for inference.
_X86 = {
    "avx2": ("avx2",),
    "fma": ("fma",),
    "avx512": ("avx512f",),
    "avx512_vnni": ("avx512_vnni", "avx512vnni"),
    "avx_vnni": ("avx_vnni",),
    "avx512_bf16": ("avx512_bf16",),
    "avx512_fp16": ("avx512_fp16",),
    "amx_int8": ("amx_int8",),
    "amx_bf16": ("amx_bf16",),
}
_ARM = {
    "neon": ("asimd", "neon"),
    "dotprod": ("asimddp",),
    "i8mm": ("i8mm",),
    "bf16": ("bf16",),
    "fp16": ("asimdhp", "fphp"),
    "sve": ("sve",),
}


@dataclasses.dataclass(frozen=True)
class _Entry:
    model: str | None
    flags: frozenset[str]


def _read(cpuinfo: Path) -> _Entry:
    """The model name and flags of the first processor listed in ``cpuinfo`` (the one parser of the file)."""
    try:
        text = cpuinfo.read_text(errors="replace")
    except OSError:
        return _Entry(None, frozenset())
    model: str | None = None
    flags: frozenset[str] | None = None
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if not sep:
            continue
        key, value = key.strip(), value.strip()
        if model is None and key in MODEL_KEYS and value:
            model = value
        elif flags is None and key.lower() in FLAG_KEYS:
            flags = frozenset(value.lower().split())
    return _Entry(model, flags or frozenset())


def _is_arm(machine: str) -> bool:
    return machine in ("aarch64", "arm64") or machine.startswith("arm")


def cpu_model(cpuinfo: Path = CPUINFO) -> str:
    """The CPU's model name (``/proc/cpuinfo``; on ARM boards without one, the machine type)."""
    return _read(cpuinfo).model or platform.processor() or platform.machine()


def cpu_flags(cpuinfo: Path = CPUINFO) -> frozenset[str]:
    """The instruction-set flags of the first processor listed in ``cpuinfo``, lower case.

    Args:
        cpuinfo: the file to read (``/proc/cpuinfo``; tests pass their own).

    Returns:
        The flag names (``avx2``, ``avx512_vnni``, ``asimddp``, ...); empty where the file is missing or has none.

    Example:
        >>> "avx2" in cpu_flags()  # doctest: +SKIP
        True
    """
    return _read(cpuinfo).flags


def _has(flags: frozenset[str], names: tuple[str, ...]) -> bool:
    return any(name in flags for name in names)


def isa_summary(flags: frozenset[str] | None = None, *, machine: str | None = None) -> dict[str, Any]:
    """The inference-relevant extensions of this CPU (or of ``flags``), for stamps and variant choices.

    Args:
        flags: flag names as :func:`cpu_flags` returns them (``None``: read this machine's).
        machine: the architecture name (``None``: :func:`platform.machine`).

    Returns:
        ``{"arch", "avx2", "avx512", "vnni", "bf16", "amx", "int8_dot", "flags"}`` on x86 (``vnni``: AVX-512 VNNI or
        AVX-VNNI; ``bf16``: AVX-512 BF16 or AMX-BF16; ``amx``: AMX-INT8), ``{"arch", "neon", "dotprod", "i8mm",
        "bf16", "fp16", "sve", "int8_dot", "flags"}`` on Arm; ``flags`` lists the relevant flags found, sorted, and
        ``int8_dot`` names the best INT8 dot-product path (``None`` where none is known).

    Example:
        >>> isa_summary(frozenset({"avx2", "avx512f", "avx512_vnni"}), machine="x86_64")["int8_dot"]
        'AVX-512 VNNI'
    """
    found = cpu_flags() if flags is None else frozenset(flags)
    arch = (machine or platform.machine() or "unknown").lower()
    if _is_arm(arch):
        arm = {name: _has(found, names) for name, names in _ARM.items()}
        dot = "I8MM" if arm["i8mm"] else "SDOT (dotprod)" if arm["dotprod"] else "NEON" if arm["neon"] else None
        relevant = sorted(flag for names in _ARM.values() for flag in names if flag in found)
        return {"arch": arch, **arm, "int8_dot": dot, "flags": relevant}
    x86 = {name: _has(found, names) for name, names in _X86.items()}
    vnni = x86["avx512_vnni"] or x86["avx_vnni"]
    if x86["amx_int8"]:
        dot = "AMX-INT8"
    elif x86["avx512_vnni"]:
        dot = "AVX-512 VNNI"
    elif x86["avx_vnni"]:
        dot = "AVX-VNNI"
    elif x86["avx512"]:
        dot = "AVX-512 (vpmaddubsw)"
    elif x86["avx2"]:
        dot = "AVX2 (vpmaddubsw)"
    else:
        dot = None
    relevant = sorted(flag for names in _X86.values() for flag in names if flag in found)
    return {
        "arch": arch,
        "avx2": x86["avx2"],
        "avx512": x86["avx512"],
        "vnni": vnni,
        "bf16": x86["avx512_bf16"] or x86["amx_bf16"],
        "amx": x86["amx_int8"],
        "int8_dot": dot,
        "flags": relevant,
    }


_X86_LABELS = (("avx2", "AVX2"), ("avx512", "AVX-512"), ("vnni", "VNNI"), ("bf16", "BF16"), ("amx", "AMX"))
_ARM_LABELS = (("neon", "NEON"), ("dotprod", "dotprod"), ("i8mm", "I8MM"), ("bf16", "BF16"), ("fp16", "FP16"),
               ("sve", "SVE"))  # fmt: skip


def describe_isa(summary: dict[str, Any]) -> str:
    """One line for tables, e.g. ``x86_64: AVX2, AVX-512, VNNI, BF16; INT8 dot product AVX-512 VNNI``."""
    labels = _ARM_LABELS if "neon" in summary else _X86_LABELS
    names = [label for key, label in labels if summary.get(key)]
    dot = summary.get("int8_dot")
    return f"{summary.get('arch')}: {', '.join(names) or 'no SIMD extension known'}" + (
        f"; INT8 dot product {dot}" if dot else ""
    )


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
        """The INT8 kernel class (module docstring), from :func:`isa_summary` of these flags."""
        machine = self.machine.lower()
        summary = self.isa()
        if machine in X86_MACHINES:
            if summary["vnni"] or summary["amx"]:
                return Int8Kernels.VNNI
            return Int8Kernels.AVX2 if summary["avx2"] else Int8Kernels.NONE
        if _is_arm(machine) and summary["dotprod"]:
            return Int8Kernels.ARM_DOT
        return Int8Kernels.NONE

    def isa(self) -> dict[str, Any]:
        """:func:`isa_summary` of this CPU (for benchmark stamps)."""
        return isa_summary(self.flags, machine=self.machine)


def read_cpu_info(path: Path = CPUINFO, *, machine: str | None = None) -> CpuInfo:
    """Model, machine and flags of a ``/proc/cpuinfo``-style file (the first processor's entry).

    Args:
        path: the file (tests pass a fake one); a missing file gives no flags.
        machine: the machine type (``platform.machine()`` when ``None``).
    """
    entry = _read(path)
    arch = machine or platform.machine()
    return CpuInfo(model=entry.model or platform.processor() or arch, machine=arch, flags=entry.flags)


@functools.lru_cache(maxsize=1)
def host_cpu() -> CpuInfo:
    """This machine's CPU (read once per process)."""
    return read_cpu_info(CPUINFO)
