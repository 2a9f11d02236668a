"""The CPU's instruction-set flags (edgeaff.runtime.cpu), read from cpuinfo files of real machines."""

from __future__ import annotations

from pathlib import Path

from edgeaff.runtime.cpu import cpu_flags, describe_isa, isa_summary

ZEN4 = "processor\t: 0\nmodel name\t: AMD EPYC\nflags\t: avx avx2 fma avx512f avx512bw avx512_vnni avx512_bf16\n"
SAPPHIRE_RAPIDS = "flags\t: avx2 fma avx512f avx_vnni avx512_vnni avx512_bf16 avx512_fp16 amx_bf16 amx_tile amx_int8\n"
HASWELL = "flags\t: sse4_2 avx avx2 fma\n"
ORIN = "processor\t: 0\nFeatures\t: fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp asimddp\n"


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "cpuinfo"
    path.write_text(text + "processor\t: 1\nflags\t\t: something_else\n")  # only the first processor counts
    return path


def test_flags_of_the_first_processor(tmp_path: Path) -> None:
    flags = cpu_flags(_write(tmp_path, ZEN4))
    assert {"avx2", "avx512f", "avx512_vnni", "avx512_bf16"} <= flags and "something_else" not in flags
    assert cpu_flags(tmp_path / "missing") == frozenset()  # no cpuinfo: no flag known, no error


def test_x86_summaries(tmp_path: Path) -> None:
    zen4 = isa_summary(cpu_flags(_write(tmp_path, ZEN4)), machine="x86_64")
    assert (zen4["avx2"], zen4["avx512"], zen4["vnni"], zen4["bf16"], zen4["amx"]) == (True, True, True, True, False)
    assert zen4["int8_dot"] == "AVX-512 VNNI"
    assert zen4["flags"] == ["avx2", "avx512_bf16", "avx512_vnni", "avx512f", "fma"]
    spr = isa_summary(cpu_flags(_write(tmp_path, SAPPHIRE_RAPIDS)), machine="x86_64")
    assert spr["amx"] and spr["int8_dot"] == "AMX-INT8"
    old = isa_summary(cpu_flags(_write(tmp_path, HASWELL)), machine="x86_64")
    assert old["avx2"] and not old["vnni"] and not old["avx512"] and old["int8_dot"] == "AVX2 (vpmaddubsw)"
    assert describe_isa(zen4) == "x86_64: AVX2, AVX-512, VNNI, BF16; INT8 dot product AVX-512 VNNI"
    assert describe_isa(isa_summary(frozenset(), machine="x86_64")) == "x86_64: no SIMD extension known"


def test_arm_summary(tmp_path: Path) -> None:
    orin = isa_summary(cpu_flags(_write(tmp_path, ORIN)), machine="aarch64")
    assert orin["neon"] and orin["dotprod"] and orin["fp16"] and not orin["i8mm"] and not orin["sve"]
    assert orin["int8_dot"] == "SDOT (dotprod)" and "avx2" not in orin
    assert describe_isa(orin).startswith("aarch64: NEON, dotprod, FP16")


def test_this_machine_reads_without_error() -> None:
    summary = isa_summary()
    assert summary["arch"] and isinstance(summary["flags"], list)
