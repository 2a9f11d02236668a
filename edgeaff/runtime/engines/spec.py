"""What a TensorRT engine is built from: precision, input shape ranges, builder options, the device.

Pure data and validation; nothing here imports TensorRT or CUDA, so every rule is unit-tested on any machine.

An :class:`EngineRequest` names an ONNX graph, the precision asked for and one optimisation profile: a
:class:`ShapeRange` (min / opt / max) per dynamic input. :func:`resolve_profiles` checks a request against the
inputs the ONNX parser found, and :func:`check_in_profile` checks a runtime feed against the profile an engine
was built with, so a shape outside it is a clear error instead of a silent rebuild mid-stream (``anchors.md`` §2.5).
"""

from __future__ import annotations

import dataclasses
import types
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from edgeaff.runtime.artifacts.manifest import Precision
from edgeaff.runtime.errors import EdgeaffError, InvalidInputError

Shape = tuple[int, ...]
ShapeLike = Sequence[int]


class EngineBuildError(EdgeaffError):
    """TensorRT could not parse or build a graph; the message says which graph and why."""


class EngineLoadError(EdgeaffError):
    """A serialized engine could not be deserialised (built by another TensorRT version, truncated, corrupt)."""


def _shape(value: ShapeLike, *, what: str) -> Shape:
    try:
        dims = tuple(int(d) for d in value)
    except (TypeError, ValueError):
        raise InvalidInputError(f"{what} must be a sequence of integers, got {value!r}") from None
    if any(isinstance(d, bool) for d in value) or any(d < 0 for d in dims):
        raise InvalidInputError(f"{what} must hold non-negative integers, got {value!r}")
    return dims


@dataclasses.dataclass(frozen=True)
class ShapeRange:
    """Minimum, optimum and maximum shape of one input in an optimisation profile.

    Example:
        >>> ShapeRange.of(((1, 3), (8, 3), (32, 3))).contains((4, 3))
        True
    """

    min: Shape
    opt: Shape
    max: Shape

    def __post_init__(self) -> None:
        shapes = [
            _shape(s, what=f"profile {label} shape")
            for label, s in zip(("min", "opt", "max"), self.astuple(), strict=True)
        ]
        if len({len(s) for s in shapes}) != 1:
            raise InvalidInputError(
                f"profile shapes must have one rank, got min {self.min} opt {self.opt} max {self.max}"
            )
        low, opt, high = shapes
        if not all(a <= b <= c for a, b, c in zip(low, opt, high, strict=True)):
            raise InvalidInputError(f"profile shapes must satisfy min <= opt <= max per axis, got {low}, {opt}, {high}")
        object.__setattr__(self, "min", low)
        object.__setattr__(self, "opt", opt)
        object.__setattr__(self, "max", high)

    @classmethod
    def of(cls, value: ShapeRange | tuple[ShapeLike, ShapeLike, ShapeLike] | Sequence[ShapeLike]) -> ShapeRange:
        """A range from a ``ShapeRange`` or a ``(min, opt, max)`` triple."""
        if isinstance(value, ShapeRange):
            return value
        if isinstance(value, str | bytes) or len(value) != 3:
            raise InvalidInputError(f"a profile is (min, opt, max) shapes, got {value!r}")
        low, opt, high = value
        return cls(tuple(low), tuple(opt), tuple(high))

    @classmethod
    def fixed(cls, shape: ShapeLike) -> ShapeRange:
        """The range of a static shape: min = opt = max."""
        dims = _shape(shape, what="shape")
        return cls(dims, dims, dims)

    def astuple(self) -> tuple[Shape, Shape, Shape]:
        """``(min, opt, max)``."""
        return (self.min, self.opt, self.max)

    @property
    def rank(self) -> int:
        """Number of dimensions."""
        return len(self.min)

    def contains(self, shape: ShapeLike) -> bool:
        """Whether ``shape`` has this rank and lies within [min, max] on every axis."""
        dims = tuple(shape)
        return len(dims) == self.rank and all(
            lo <= d <= hi for lo, d, hi in zip(self.min, dims, self.max, strict=False)
        )

    def describe(self) -> str:
        """Per-axis ranges, e.g. ``(1..32, 3, 40, 40)``."""
        axes = [str(lo) if lo == hi else f"{lo}..{hi}" for lo, hi in zip(self.min, self.max, strict=True)]
        return "(" + ", ".join(axes) + ")"


@dataclasses.dataclass(frozen=True)
class BuildOptions:
    """Builder settings that change the engine (and therefore belong to its cache key).

    Attributes:
        workspace_mib: limit of the builder's workspace memory pool in MiB (``None``: TensorRT's default, the whole
            device memory, which can exhaust an 8 GB Jetson).
        optimization_level: builder optimisation level 0-5 (``None``: TensorRT's default, 3).
        allow_tf32: let FP32 layers use TF32 tensor cores (off by default so ``fp32`` means FP32).
        strongly_typed: build a strongly typed network, taking precisions from the graph. ``None`` chooses by
            TensorRT version: always on TensorRT 11 (weak typing was removed), off on TensorRT 10.
    """

    workspace_mib: int | None = 1024
    optimization_level: int | None = None
    allow_tf32: bool = False
    strongly_typed: bool | None = None

    def __post_init__(self) -> None:
        if self.workspace_mib is not None and (isinstance(self.workspace_mib, bool) or self.workspace_mib < 1):
            raise InvalidInputError(f"workspace must be at least 1 MiB, got {self.workspace_mib}")
        if self.optimization_level is not None and self.optimization_level not in range(6):
            raise InvalidInputError(f"builder optimization level must be 0-5, got {self.optimization_level}")

    def resolved_strongly_typed(self, tensorrt_major: int) -> bool:
        """Whether the network is strongly typed under a TensorRT major version.

        Raises:
            InvalidInputError: weak typing was asked for on TensorRT 11 or later, which removed it.
        """
        if tensorrt_major >= 11:
            if self.strongly_typed is False:
                raise InvalidInputError(
                    "TensorRT 11 builds strongly typed networks only; drop the weak-typing option "
                    "(precision comes from the ONNX graph)"
                )
            return True
        return bool(self.strongly_typed)

    def key_fields(self, tensorrt_major: int) -> dict[str, Any]:
        """The options as they enter the cache key (``strongly_typed`` resolved)."""
        return {
            "workspace_mib": self.workspace_mib,
            "optimization_level": self.optimization_level,
            "allow_tf32": self.allow_tf32,
            "strongly_typed": self.resolved_strongly_typed(tensorrt_major),
        }


@dataclasses.dataclass(frozen=True)
class EngineRequest:
    """One engine to build or reuse.

    Args:
        onnx_path: the ONNX graph.
        precision: ``fp32``, ``fp16`` or ``int8`` (a :class:`~edgeaff.runtime.artifacts.manifest.Precision` or its
            name). ``fp32`` is true FP32 (TF32 off unless :attr:`BuildOptions.allow_tf32`); ``fp16`` lets TensorRT
            use FP16 kernels (TensorRT 10) or builds an FP16 graph as typed (TensorRT 11); ``int8`` builds an
            explicitly quantised (Q/DQ) graph. Implicit INT8 calibration is not supported.
        profiles: ``{input_name: (min, opt, max)}`` for the dynamic inputs (static inputs need none).
        options: builder options.
        onnx_sha256: the graph's sha256 when the caller already verified it (a bundle manifest); computed from
            the file otherwise.
        external_data: files holding the graph's external weights; their content enters the cache key.

    Example:
        >>> request = EngineRequest("visual.onnx", "fp16", profiles={"frames": ((1, 3, 40, 40), (8, 3, 40, 40),
        ...                         (32, 3, 40, 40))})
        >>> request.shape_ranges["frames"].describe()
        '(1..32, 3, 40, 40)'
    """

    onnx_path: Path
    precision: Precision = Precision.FP32
    profiles: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    options: BuildOptions = BuildOptions()
    onnx_sha256: str | None = None
    external_data: tuple[Path, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "onnx_path", Path(self.onnx_path))
        object.__setattr__(self, "precision", Precision.parse(self.precision))
        ranges = {str(name): ShapeRange.of(value) for name, value in sorted(dict(self.profiles).items())}
        object.__setattr__(self, "profiles", types.MappingProxyType(ranges))
        object.__setattr__(self, "external_data", tuple(Path(p) for p in self.external_data))
        if self.onnx_sha256 is not None and (
            len(self.onnx_sha256) != 64 or any(c not in "0123456789abcdef" for c in self.onnx_sha256)
        ):
            raise InvalidInputError(f"onnx_sha256 must be 64 lowercase hex digits, got {self.onnx_sha256!r}")

    @property
    def shape_ranges(self) -> Mapping[str, ShapeRange]:
        """The profile, input name -> :class:`ShapeRange` (sorted by name)."""
        return self.profiles

    @property
    def label(self) -> str:
        """Short name for logs: ``<graph file stem>.<precision>``."""
        return f"{self.onnx_path.stem}.{self.precision.value}"


@dataclasses.dataclass(frozen=True)
class DeviceIdentity:
    """The GPU an engine is built for. Engines are specific to the GPU model (``anchors.md`` §2.7).

    ``multiprocessors`` tells apart modules that report the same name and compute capability (every Jetson
    Orin reports "Orin" and 8.7; an Orin Nano has fewer SMs than an AGX Orin).
    """

    name: str
    compute_capability: tuple[int, int]
    multiprocessors: int

    @property
    def sm(self) -> str:
        """``sm_87`` style label."""
        return f"sm_{self.compute_capability[0]}{self.compute_capability[1]}"


@dataclasses.dataclass(frozen=True)
class BuildEnvironment:
    """TensorRT version and device the engines of this process are built and run with."""

    tensorrt_version: str
    device: DeviceIdentity

    @property
    def tensorrt_major(self) -> int:
        """Major TensorRT version (10 on JetPack 6)."""
        head = self.tensorrt_version.split(".", 1)[0]
        if not head.isdigit():
            raise EdgeaffError(f"cannot read the TensorRT version '{self.tensorrt_version}'")
        return int(head)


@dataclasses.dataclass(frozen=True)
class GraphInput:
    """A network input as the parser reports it; ``-1`` marks a dynamic axis."""

    name: str
    shape: tuple[int, ...]

    @property
    def is_dynamic(self) -> bool:
        """Whether any axis is dynamic."""
        return any(d < 0 for d in self.shape)


def resolve_profiles(
    inputs: Sequence[GraphInput], requested: Mapping[str, ShapeRange], *, where: str
) -> dict[str, ShapeRange]:
    """Check a requested profile against a graph's inputs and complete it with the static inputs.

    Every dynamic input needs a range of its rank whose fixed axes equal the graph's; a range given for a static
    input must be that exact shape; a range for an input the graph does not have is an error.

    Returns:
        ``{input: ShapeRange}`` for every graph input, in graph order.

    Raises:
        InvalidInputError: with the graph's inputs and shapes in the message.
    """
    known = {i.name: i for i in inputs}
    unknown = sorted(set(requested) - set(known))
    listing = ", ".join(f"{i.name} {_render(i.shape)}" for i in inputs)
    if unknown:
        raise InvalidInputError(
            f"{where}: profile names inputs {unknown} that the graph does not have (inputs: {listing})"
        )
    missing = [i.name for i in inputs if i.is_dynamic and i.name not in requested]
    if missing:
        raise InvalidInputError(
            f"{where}: dynamic inputs {missing} need (min, opt, max) shapes in the profile (inputs: {listing})"
        )
    resolved: dict[str, ShapeRange] = {}
    for graph_input in inputs:
        given = requested.get(graph_input.name)
        if given is None:
            resolved[graph_input.name] = ShapeRange.fixed(graph_input.shape)
            continue
        if given.rank != len(graph_input.shape):
            raise InvalidInputError(
                f"{where}: input '{graph_input.name}' has {len(graph_input.shape)} dimensions "
                f"{_render(graph_input.shape)}, the profile gives {given.rank}: {given.describe()}"
            )
        for axis, dim in enumerate(graph_input.shape):
            if dim >= 0 and not given.min[axis] == given.opt[axis] == given.max[axis] == dim:
                raise InvalidInputError(
                    f"{where}: input '{graph_input.name}' has fixed size {dim} on axis {axis} "
                    f"{_render(graph_input.shape)}, the profile gives {given.describe()}"
                )
        resolved[graph_input.name] = given
    return resolved


def check_in_profile(name: str, shape: ShapeLike, profile: ShapeRange, *, where: str) -> None:
    """Raise :class:`InvalidInputError` unless ``shape`` lies inside the engine's profile for input ``name``."""
    if profile.contains(shape):
        return
    raise InvalidInputError(
        f"{where}: input '{name}' has shape {tuple(shape)}, outside the engine's profile {profile.describe()} "
        f"(min {profile.min}, max {profile.max}); engines never rebuild mid-stream: feed shapes inside the profile "
        "or build the engine with a wider one"
    )


def _render(shape: Sequence[int]) -> str:
    return "(" + ", ".join("?" if d < 0 else str(d) for d in shape) + ")"
