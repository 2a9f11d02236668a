"""Engine requests derived from a bundle, building them all, and the build-engines / engine-cache commands."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest
from engine_helpers import ENV, FakeBuilder, load
from onnx_bundle import build_bundle

from edgeaff.runtime.artifacts.bundle import load_bundle
from edgeaff.runtime.artifacts.manifest import Precision
from edgeaff.runtime.engines.bundle import (
    build_engines,
    bundle_engine_requests,
    default_axis_ranges,
    graph_profile,
    parse_axis_range,
)
from edgeaff.runtime.engines.cache import EngineCache
from edgeaff.runtime.engines.spec import ShapeRange
from edgeaff.runtime.errors import InvalidInputError
from edgeaff.runtime.files import sha256_file


def write_bundle(root: Path) -> Path:
    """Two unimodal models (E = 16, kernel 4: a 96-float stream state) with an FP16 visual graph only."""
    built = build_bundle(
        root.parent,
        name=root.name,
        models=2,
        multimodal=False,
        embedding_dim=16,
        precisions=("fp32", "fp16"),
        fp16_roles=["visual"],
    )
    return built.path


def test_requests_follow_the_default_axis_ranges(tmp_path: Path) -> None:
    bundle = load_bundle(write_bundle(tmp_path / "bundle"))
    engines = {e.role: e for e in bundle_engine_requests(bundle, "fp32")}
    assert list(engines) == ["visual", "temporal", "temporal_stream"]
    visual = engines["visual"].request
    assert visual.shape_ranges == {"frames": ShapeRange((1, 48, 48, 3), (8, 48, 48, 3), (64, 48, 48, 3))}
    assert visual.onnx_sha256 == sha256_file(bundle.root / "visual.onnx")
    assert engines["temporal"].request.shape_ranges["embeddings"] == ShapeRange(
        (1, 1, 2, 16), (1, 300, 2, 16), (4, 300, 2, 16)
    )
    stream = engines["temporal_stream"].request.shape_ranges
    assert stream["embeddings"] == ShapeRange((1, 1, 2, 16), (1, 1, 2, 16), (4, 300, 2, 16))
    assert stream["state"] == ShapeRange((1, 96), (1, 96), (4, 96))
    assert default_axis_ranges(150)["steps"] == (1, 150, 150)


def test_precision_variants_and_the_fp32_fallback_are_explicit(tmp_path: Path) -> None:
    bundle = load_bundle(write_bundle(tmp_path / "bundle"))
    engines = {e.role: e for e in bundle_engine_requests(bundle, Precision.FP16)}
    assert engines["visual"].request.precision is Precision.FP16 and engines["visual"].note is None
    assert engines["visual"].request.onnx_path.name == "visual.fp16.onnx"
    temporal = engines["temporal"]
    assert temporal.request.precision is Precision.FP32 and temporal.request.onnx_path.name == "temporal.onnx"
    assert "no fp16 variant of 'temporal'" in str(temporal.note)


def test_overrides_roles_and_errors(tmp_path: Path) -> None:
    bundle = load_bundle(write_bundle(tmp_path / "bundle"))
    overrides = dict(parse_axis_range(t) for t in ["frames=1:1:4", "temporal_stream.batch=1:2:2"])
    engines = {e.role: e for e in bundle_engine_requests(bundle, "fp32", overrides=overrides)}
    assert engines["visual"].request.shape_ranges["frames"].max == (4, 48, 48, 3)
    assert engines["temporal_stream"].request.shape_ranges["state"].opt == (2, 96)
    assert engines["temporal"].request.shape_ranges["embeddings"].max[0] == 4  # plain 'batch' default unchanged
    only = bundle_engine_requests(bundle, "fp32", roles=["visual"])
    assert [e.role for e in only] == ["visual"]
    with pytest.raises(InvalidInputError, match=r"no graphs \['vggish'\]"):
        bundle_engine_requests(bundle, "fp32", roles=["vggish"])
    with pytest.raises(InvalidInputError, match="MIN:OPT:MAX"):
        parse_axis_range("frames=1:8")
    with pytest.raises(InvalidInputError, match="1 <= MIN <= OPT <= MAX"):
        parse_axis_range("frames=4:2:8")
    with pytest.raises(InvalidInputError, match=r"axis 'frames' with no range; add --shape visual\.frames=MIN:OPT:MAX"):
        graph_profile("visual", load_bundle(tmp_path / "bundle").graphs["visual"].inputs, {})


def test_build_engines_builds_once_then_reuses(tmp_path: Path) -> None:
    bundle = load_bundle(write_bundle(tmp_path / "bundle"))
    engines = bundle_engine_requests(bundle, "fp16")
    cache, builder = EngineCache(tmp_path / "cache"), FakeBuilder()
    lines: list[str] = []
    first = build_engines(engines, cache=cache, builder=builder, check=load, echo=lines.append)
    assert [o.built for o in first] == [True, True, True]
    assert builder.builds == ["visual.fp16.fp16", "temporal.fp32", "temporal_stream.fp32"]
    note = "[2/3] temporal (fp32, temporal.onnx): note: the bundle has no fp16 variant"
    assert any(line.startswith(note) for line in lines)
    second = build_engines(engines, cache=cache, builder=builder, check=load, echo=lines.append)
    assert [o.built for o in second] == [False, False, False] and len(builder.builds) == 3
    assert lines[-1].startswith("[3/3] temporal_stream (fp32, temporal_stream.onnx): cached engine is valid -> ")


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "edgeaff.cli", *args], capture_output=True, text=True, timeout=120, check=False
    )


@pytest.mark.skipif(importlib.util.find_spec("tensorrt") is not None, reason="tensorrt is installed here")
def test_build_engines_command_checks_input_then_names_what_is_missing(tmp_path: Path) -> None:
    bundle = write_bundle(tmp_path / "bundle")
    both = run_cli("build-engines", str(bundle), "--fp16", "--int8")
    assert both.returncode == 2 and "choose one of --fp16 and --int8" in both.stderr
    bad_shape = run_cli("build-engines", str(bundle), "--shape", "frames=0:1")
    assert bad_shape.returncode == 2 and "MIN:OPT:MAX" in bad_shape.stderr
    original = (bundle / "visual.onnx").read_bytes()
    (bundle / "visual.onnx").write_bytes(b"tampered")
    tampered = run_cli("build-engines", str(bundle))
    assert tampered.returncode == 2 and "does not match its sha256" in tampered.stderr
    (bundle / "visual.onnx").write_bytes(original)
    missing = run_cli("build-engines", str(bundle), "--cache", str(tmp_path / "cache"))
    assert missing.returncode == 3 and "JetPack" in missing.stderr and "Traceback" not in missing.stderr


def test_engine_cache_commands_list_and_clear(tmp_path: Path) -> None:
    bundle = load_bundle(write_bundle(tmp_path / "bundle"))
    cache = EngineCache(tmp_path / "cache")
    build_engines(bundle_engine_requests(bundle, "fp32"), cache=cache, builder=FakeBuilder(), check=load, echo=print)
    listed = run_cli("engine-cache", "list", "--cache", str(cache.directory))
    assert listed.returncode == 0, listed.stderr
    assert "3 engine(s)" in listed.stdout and f"TensorRT {ENV.tensorrt_version}  Orin sm_87" in listed.stdout
    cleared = run_cli("engine-cache", "clear", "--cache", str(cache.directory), "--timing")
    assert cleared.returncode == 0 and cleared.stdout.startswith("removed 3 engine(s)")
    assert cache.entries() == [] and not cache.timing_cache(ENV).path.exists()
