"""The CPU's instruction-set extensions, read from the kernel's ``/proc/cpuinfo``.

What a CPU executes well decides how fast a graph runs on it: INT8 convolutions are ~4× FP32 with AVX-512 VNNI (or
AVX-VNNI, AMX), about 2× with AVX2's ``vpmaddubsw`` only, and ONNX Runtime's signed×signed INT8 kernels are slow
everywhere. Benchmarks stamp these flags next to their numbers, and the runtime may choose a graph variant by them.

* :func:`cpu_model`: the model name;
* :func:`cpu_flags`: the raw flag names of the first processor (x86 ``flags``, Arm ``Features``), lower case.
* :func:`isa_summary`: the extensions that matter for inference, each a yes/no, and the best INT8 dot-product
  instruction (``int8_dot``), e.g. ``{"arch": "x86_64", "avx2": True, "avx512": True, "vnni": True, ...}``.

No library is imported and nothing is executed: a machine without ``/proc/cpuinfo`` (macOS, Windows) reports no
flags, which reads as "no extension known", never as an error.
"""

from __future__ import annotations

import contextlib
import platform
from pathlib import Path
from typing import Any

CPUINFO = Path("/proc/cpuinfo")

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


def cpu_model(cpuinfo: Path = CPUINFO) -> str:
    """The CPU's model name (``/proc/cpuinfo``; on ARM boards without one, the machine type)."""
    with contextlib.suppress(OSError):
        for line in cpuinfo.read_text(errors="replace").splitlines():
            key, _, value = line.partition(":")
            if key.strip() in ("model name", "Model", "Hardware", "cpu model") and value.strip():
                return value.strip()
    return platform.processor() or platform.machine()


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
    with contextlib.suppress(OSError):
        for line in cpuinfo.read_text(errors="replace").splitlines():
            key, sep, value = line.partition(":")
            if sep and key.strip().lower() in ("flags", "features"):
                return frozenset(value.lower().split())
    return frozenset()


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
    if arch in ("aarch64", "arm64") or arch.startswith("arm"):
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
