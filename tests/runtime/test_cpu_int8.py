"""The CPU's flags (a faked /proc/cpuinfo) choose the INT8 form ONNX Runtime's CPU provider runs.

VNNI or ARM dot product: ``int8`` (full-range weights); AVX2 without VNNI: ``int8_avx2`` (7-bit weights), or the
``int8`` of a bundle from before schema 3 (which is the 7-bit form); no fast INT8 kernel: FP32, with the reason in
the choice. TensorRT's S8S8 ``int8_trt`` is never run by ONNX Runtime on a CPU, whatever the CPU.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
from onnx_bundle import TinyBundle, build_bundle

from edgeaff.runtime import (
    BackendOptions,
    CpuInfo,
    Int8Kernels,
    cpu_flags,
    cpu_model,
    graph_runner,
    host_cpu,
    load_bundle,
    read_cpu_info,
)
from edgeaff.runtime.artifacts.bundle import Graph
from edgeaff.runtime.artifacts.manifest import INT8_CPU_AVX2, TENSORRT_INT8
from edgeaff.runtime.backends.graphs import cpu_int8_variant

X86_HEAD = "processor\t: 0\nvendor_id\t: GenuineIntel\nmodel name\t: {model}\nflags\t\t: {flags}\n\nprocessor\t: 1\n"
ZEN4 = "fpu sse sse2 ssse3 sse4_1 sse4_2 avx f16c fma avx2 avx512f avx512bw avx512_vnni avx512_bf16"
ALDER_LAKE = "fpu sse sse2 ssse3 sse4_1 sse4_2 avx f16c fma avx2 avx_vnni"
SAPPHIRE_RAPIDS = "fpu sse2 avx avx2 fma avx512f avx512bw avx512_vnni avx512_bf16 amx_bf16 amx_tile amx_int8"
HASWELL = "fpu sse sse2 ssse3 sse4_1 sse4_2 avx f16c fma avx2"
SANDY_BRIDGE = "fpu sse sse2 ssse3 sse4_1 sse4_2 avx"
ORIN = "processor\t: 0\nBogoMIPS\t: 62.50\nFeatures\t: fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics asimddp\n"
CORTEX_A57 = "processor\t: 0\nFeatures\t: fp asimd evtstrm aes pmull sha1 sha2 crc32 cpuid\nmodel name\t: ARMv8\n"


def _cpuinfo(tmp_path: Path, text: str, name: str = "cpuinfo") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def _x86(tmp_path: Path, flags: str, model: str = "Test CPU") -> CpuInfo:
    return read_cpu_info(_cpuinfo(tmp_path, X86_HEAD.format(model=model, flags=flags)), machine="x86_64")


@pytest.mark.parametrize(
    ("flags", "kernels"),
    [
        (ZEN4, Int8Kernels.VNNI),
        (ALDER_LAKE, Int8Kernels.VNNI),
        (SAPPHIRE_RAPIDS, Int8Kernels.VNNI),
        (HASWELL, Int8Kernels.AVX2),
        (SANDY_BRIDGE, Int8Kernels.NONE),
    ],
)
def test_x86_flags_give_the_int8_kernel_class(tmp_path: Path, flags: str, kernels: Int8Kernels) -> None:
    cpu = _x86(tmp_path, flags, model="AMD EPYC 9R14")
    assert cpu.model == "AMD EPYC 9R14" and cpu.machine == "x86_64"
    assert cpu.flags == frozenset(flags.split())
    assert cpu.int8_kernels is kernels


def test_arm_features_and_isa_stamp(tmp_path: Path) -> None:
    orin = read_cpu_info(_cpuinfo(tmp_path, ORIN), machine="aarch64")
    assert orin.int8_kernels is Int8Kernels.ARM_DOT
    isa = orin.isa()
    assert (isa["neon"], isa["dotprod"], isa["i8mm"], isa["sve"]) == (True, True, False, False)
    a57 = read_cpu_info(_cpuinfo(tmp_path, CORTEX_A57, "a57"), machine="aarch64")
    assert a57.int8_kernels is Int8Kernels.NONE and a57.model == "ARMv8"
    zen4 = _x86(tmp_path, ZEN4)
    assert zen4.isa()["vnni"] and zen4.isa()["bf16"] and not zen4.isa()["amx"]
    assert "neon" not in zen4.isa() and zen4.isa()["int8_dot"] == "AVX-512 VNNI"
    # The same flags on a machine type that is neither x86 nor ARM give no INT8 kernel rather than a guess.
    power = read_cpu_info(_cpuinfo(tmp_path, X86_HEAD.format(model="x", flags=ZEN4), "ppc"), machine="ppc64le")
    assert power.int8_kernels is Int8Kernels.NONE


def test_a_missing_cpuinfo_gives_no_flags(tmp_path: Path) -> None:
    cpu = read_cpu_info(tmp_path / "absent", machine="x86_64")
    assert cpu.flags == frozenset() and cpu.int8_kernels is Int8Kernels.NONE and cpu.model


def test_this_machine_is_read_once() -> None:
    assert host_cpu() is host_cpu()
    assert host_cpu() == read_cpu_info()


@pytest.fixture(scope="module")
def int8_bundle(tmp_path_factory: pytest.TempPathFactory) -> TinyBundle:
    return build_bundle(tmp_path_factory.mktemp("int8"), precisions=("fp32", "int8"))


def _chosen(bundle_path: Path, cpu: CpuInfo, role: str = "visual") -> tuple[str, str | None]:
    bundle = load_bundle(bundle_path)
    _, choice = graph_runner(bundle, role, BackendOptions(precision="int8"), cpu=cpu)
    return choice.file, choice.note


@pytest.mark.parametrize(
    ("flags", "machine", "expected"),
    [
        (ZEN4, "x86_64", "visual.int8.onnx"),
        (SAPPHIRE_RAPIDS, "x86_64", "visual.int8.onnx"),
        (ALDER_LAKE, "x86_64", "visual.int8.onnx"),
        (HASWELL, "x86_64", "visual.int8-avx2.onnx"),
        (SANDY_BRIDGE, "x86_64", "visual.onnx"),
        (None, "aarch64", "visual.int8.onnx"),
    ],
)
def test_the_cpu_chooses_the_form_and_never_the_tensorrt_one(
    tmp_path: Path, int8_bundle: TinyBundle, flags: str | None, machine: str, expected: str
) -> None:
    if flags is None:
        cpu = read_cpu_info(_cpuinfo(tmp_path, ORIN), machine=machine)
    else:
        cpu = read_cpu_info(_cpuinfo(tmp_path, X86_HEAD.format(model="x", flags=flags)), machine=machine)
    file, note = _chosen(int8_bundle.path, cpu)
    assert file == expected
    assert "trt" not in file
    if expected == "visual.onnx":
        assert note is not None and "no INT8 kernel faster than FP32" in note
    else:
        assert note is None
    # Graphs without an INT8 variant run FP32 under int8, and say so.
    file, note = _chosen(int8_bundle.path, cpu, role="temporal")
    assert file == "temporal.onnx" and note is not None and "no int8 variant of 'temporal'" in note


def test_every_form_is_built_and_the_chosen_runner_runs(int8_bundle: TinyBundle, tmp_path: Path) -> None:
    bundle = load_bundle(int8_bundle.path)
    assert set(bundle.graphs["visual"].variants) == {"fp32", "int8", INT8_CPU_AVX2, TENSORRT_INT8}
    frames = np.random.default_rng(1).integers(0, 256, (4, 48, 48, 3), dtype=np.uint8)
    outputs = {}
    for flags in (ZEN4, HASWELL, SANDY_BRIDGE):
        runner, choice = graph_runner(bundle, "visual", BackendOptions(precision="int8"), cpu=_x86(tmp_path, flags))
        with runner:
            outputs[choice.file] = runner.infer({"frames": frames})["embeddings"]
    assert set(outputs) == {"visual.int8.onnx", "visual.int8-avx2.onnx", "visual.onnx"}
    for name in ("visual.int8.onnx", "visual.int8-avx2.onnx"):
        assert np.abs(outputs[name] - outputs["visual.onnx"]).max() < 0.1, name  # quantised, close to FP32


def test_an_older_bundle_runs_its_seven_bit_int8_on_avx2(int8_bundle: TinyBundle, tmp_path: Path) -> None:
    """Before schema 3 the only ONNX Runtime form was 7-bit and called int8: AVX2 CPUs run it."""
    graph = load_bundle(int8_bundle.path).graphs["visual"]
    legacy = dataclasses.replace(graph, variants={k: v for k, v in graph.variants.items() if k != INT8_CPU_AVX2})
    variant, note = cpu_int8_variant(legacy, _x86(tmp_path, HASWELL), seven_bit_int8=True)
    assert variant.path.name == "visual.int8.onnx" and note is None
    # In a schema-3 bundle the same graph's int8 is full range: an AVX2 CPU runs FP32 rather than saturate (VGGish).
    variant, note = cpu_int8_variant(legacy, _x86(tmp_path, HASWELL))
    assert variant.path.name == "visual.onnx" and note is not None and "no 7-bit INT8 form" in note
    assert cpu_int8_variant(legacy, _x86(tmp_path, ZEN4))[0].path.name == "visual.int8.onnx"


def test_a_graph_with_only_the_tensorrt_form_runs_fp32_on_a_cpu(int8_bundle: TinyBundle, tmp_path: Path) -> None:
    graph = load_bundle(int8_bundle.path).graphs["visual"]
    only_trt = Graph(graph.role, graph.inputs, graph.outputs, {k: graph.variants[k] for k in ("fp32", TENSORRT_INT8)})
    for flags in (ZEN4, HASWELL, SANDY_BRIDGE):
        variant, note = cpu_int8_variant(only_trt, _x86(tmp_path, flags))
        assert variant.path.name == "visual.onnx"
        assert note is not None and ("S8S8" in note or "no INT8 kernel" in note)


def test_the_model_name_is_not_the_numeric_model_line(tmp_path: Path) -> None:
    """x86 lists ``model : 143`` (a number) before ``model name``; the stamp and CpuInfo read the same name."""
    path = _cpuinfo(tmp_path, "processor\t: 0\nmodel\t\t: 143\nmodel name\t: AMD EPYC 9R14\nflags\t\t: avx2\n")
    assert cpu_model(path) == read_cpu_info(path, machine="x86_64").model == "AMD EPYC 9R14"
    assert cpu_flags(path) == read_cpu_info(path, machine="x86_64").flags == frozenset({"avx2"})
