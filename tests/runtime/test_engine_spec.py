"""Engine requests, shape ranges and profile validation (pure logic, no TensorRT)."""

from __future__ import annotations

from pathlib import Path

import pytest

from edgeaff.runtime.engines.spec import (
    BuildEnvironment,
    BuildOptions,
    DeviceIdentity,
    EngineRequest,
    GraphInput,
    Precision,
    ShapeRange,
    check_in_profile,
    resolve_profiles,
)
from edgeaff.runtime.errors import EdgeaffError, InvalidInputError

FRAMES = ShapeRange((1, 3, 40, 40), (8, 3, 40, 40), (32, 3, 40, 40))


def test_precision_parses_names_and_lists_choices() -> None:
    assert Precision.parse("FP16") is Precision.FP16
    assert Precision.parse(Precision.INT8) is Precision.INT8
    with pytest.raises(InvalidInputError, match="fp32, fp16, int8"):
        Precision.parse("bf16")


def test_shape_range_orders_and_ranks_are_enforced() -> None:
    assert FRAMES.contains((1, 3, 40, 40)) and FRAMES.contains((32, 3, 40, 40))
    assert not FRAMES.contains((33, 3, 40, 40))
    assert not FRAMES.contains((8, 3, 40))
    assert FRAMES.describe() == "(1..32, 3, 40, 40)"
    with pytest.raises(InvalidInputError, match="min <= opt <= max"):
        ShapeRange((4, 3), (2, 3), (8, 3))
    with pytest.raises(InvalidInputError, match="one rank"):
        ShapeRange((1, 3), (2, 3), (8, 3, 1))
    with pytest.raises(InvalidInputError, match="non-negative"):
        ShapeRange((-1, 3), (2, 3), (8, 3))
    with pytest.raises(InvalidInputError, match=r"\(min, opt, max\)"):
        ShapeRange.of(((1, 3), (2, 3)))
    assert ShapeRange.of([[1, 3], [2, 3], [4, 3]]) == ShapeRange((1, 3), (2, 3), (4, 3))
    assert ShapeRange.fixed([2, 5]).astuple() == ((2, 5), (2, 5), (2, 5))


def test_request_normalises_profiles_and_precision(tmp_path: Path) -> None:
    request = EngineRequest(str(tmp_path / "visual.onnx"), "fp16", profiles={"b": ((1,), (2,), (3,)), "a": FRAMES})
    assert request.precision is Precision.FP16
    assert isinstance(request.onnx_path, Path)
    assert list(request.shape_ranges) == ["a", "b"]
    assert request.shape_ranges["b"] == ShapeRange((1,), (2,), (3,))
    assert request.label == "visual.fp16"
    with pytest.raises(TypeError):
        request.profiles["c"] = FRAMES  # type: ignore[index]
    with pytest.raises(InvalidInputError, match="64 lowercase hex"):
        EngineRequest(tmp_path / "x.onnx", onnx_sha256="ABC")


def test_build_options_validate_and_resolve_typing() -> None:
    with pytest.raises(InvalidInputError, match="at least 1 MiB"):
        BuildOptions(workspace_mib=0)
    with pytest.raises(InvalidInputError, match="0-5"):
        BuildOptions(optimization_level=7)
    assert BuildOptions().resolved_strongly_typed(10) is False
    assert BuildOptions(strongly_typed=True).resolved_strongly_typed(10) is True
    assert BuildOptions().resolved_strongly_typed(11) is True
    with pytest.raises(InvalidInputError, match="strongly typed networks only"):
        BuildOptions(strongly_typed=False).resolved_strongly_typed(11)
    assert BuildOptions(workspace_mib=512).key_fields(10) == {
        "workspace_mib": 512,
        "optimization_level": None,
        "allow_tf32": False,
        "strongly_typed": False,
    }


def test_environment_reads_the_major_version() -> None:
    device = DeviceIdentity("Orin", (8, 7), 8)
    assert BuildEnvironment("10.3.0.30", device).tensorrt_major == 10
    assert device.sm == "sm_87"
    with pytest.raises(EdgeaffError, match="cannot read"):
        _ = BuildEnvironment("unknown", device).tensorrt_major


GRAPH = [GraphInput("frames", (-1, 3, 40, 40)), GraphInput("scale", (1,))]


def test_resolve_profiles_completes_static_inputs_in_graph_order() -> None:
    resolved = resolve_profiles(GRAPH, {"frames": FRAMES}, where="g")
    assert list(resolved) == ["frames", "scale"]
    assert resolved["frames"] == FRAMES
    assert resolved["scale"] == ShapeRange.fixed((1,))
    assert resolve_profiles(GRAPH, {"frames": FRAMES, "scale": ShapeRange.fixed((1,))}, where="g") == resolved


@pytest.mark.parametrize(
    ("requested", "message"),
    [
        ({}, r"dynamic inputs \['frames'\] need"),
        ({"frames": FRAMES, "audio": FRAMES}, r"inputs \['audio'\] that the graph does not have"),
        ({"frames": ShapeRange((1, 3), (2, 3), (4, 3))}, "has 4 dimensions"),
        ({"frames": ShapeRange((1, 3, 40, 40), (8, 3, 40, 40), (32, 3, 48, 40))}, "fixed size 40 on axis 2"),
        ({"frames": FRAMES, "scale": ShapeRange((1,), (1,), (2,))}, "fixed size 1 on axis 0"),
    ],
)
def test_resolve_profiles_refuses_mismatches(requested: dict[str, ShapeRange], message: str) -> None:
    with pytest.raises(InvalidInputError, match=message) as info:
        resolve_profiles(GRAPH, requested, where="visual.onnx")
    assert str(info.value).startswith("visual.onnx: ")


def test_check_in_profile_names_the_range() -> None:
    check_in_profile("frames", (32, 3, 40, 40), FRAMES, where="trt:visual.onnx")
    with pytest.raises(InvalidInputError, match=r"shape \(33, 3, 40, 40\), outside the engine's profile \(1..32"):
        check_in_profile("frames", (33, 3, 40, 40), FRAMES, where="trt:visual.onnx")
