"""Engines for a bundle's graphs: the requests (shared by ``edgeaff build-engines`` and the runtime), and building them.

The runtime and ``build-engines`` must ask for *identical* requests, or the runtime would find no engine and build
its own on first use; both therefore call :func:`bundle_engine_requests`. A bundle's graph inputs name their dynamic
axes (``frames``, ``examples``, ``batch``, ``steps``); each axis gets a (min, opt, max) range:

==========================  ================  ===============================================================
axis                        default           why
==========================  ================  ===============================================================
``frames`` (visual)         1 / 8 / 64        face crops per call: 1 live, batches when processing files
``examples`` (vggish)       1 / 8 / 64        log-mel examples per call, likewise
``batch`` (temporal)        1 / 1 / 4         windows or streams per call
``steps`` (temporal)        1 / W / W         frames per window, W = the feature spec's window length (300)
``temporal_stream.steps``   1 / 1 / W         frames per streaming chunk: 1 live, up to a window to catch up
==========================  ================  ===============================================================

``--shape [GRAPH.]AXIS=MIN:OPT:MAX`` overrides one (a graph-qualified entry wins over a plain one); the runtime must
be given the same overrides. Precision follows the bundle's rule: a graph uses its variant at the requested
precision where the bundle has one, else its FP32 graph, built in FP32 (said in the output, never silently).
"""

from __future__ import annotations

import dataclasses
import logging
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from edgeaff.runtime.artifacts.bundle import Bundle, GraphTensor
from edgeaff.runtime.artifacts.manifest import TENSORRT_INT8, Precision
from edgeaff.runtime.engines.cache import EngineBuilder, EngineCache
from edgeaff.runtime.engines.spec import BuildOptions, EngineRequest, ShapeRange
from edgeaff.runtime.errors import InvalidInputError

log = logging.getLogger("edgeaff.engines")

AxisRange = tuple[int, int, int]
_AXIS_SPEC = re.compile(
    r"^(?:(?P<graph>[A-Za-z_][\w]*)\.)?(?P<axis>[A-Za-z_]\w*)=(?P<min>\d+):(?P<opt>\d+):(?P<max>\d+)$"
)


def default_axis_ranges(window_length: int) -> dict[str, AxisRange]:
    """The default (min, opt, max) of each named dynamic axis (see the module docstring)."""
    return {
        "frames": (1, 8, 64),
        "examples": (1, 8, 64),
        "batch": (1, 1, 4),
        "steps": (1, window_length, window_length),
        "temporal_stream.steps": (1, 1, window_length),
    }


def parse_axis_range(text: str) -> tuple[str, AxisRange]:
    """Parse ``[GRAPH.]AXIS=MIN:OPT:MAX`` into ``("GRAPH.AXIS" or "AXIS", (min, opt, max))``.

    Raises:
        InvalidInputError: malformed text or not min <= opt <= max.
    """
    match = _AXIS_SPEC.match(text.strip())
    if match is None:
        raise InvalidInputError(f"--shape '{text}' is not [GRAPH.]AXIS=MIN:OPT:MAX, e.g. visual.frames=1:8:64")
    low, opt, high = int(match["min"]), int(match["opt"]), int(match["max"])
    if not 1 <= low <= opt <= high:
        raise InvalidInputError(f"--shape '{text}' needs 1 <= MIN <= OPT <= MAX")
    name = f"{match['graph']}.{match['axis']}" if match["graph"] else match["axis"]
    return name, (low, opt, high)


def graph_profile(role: str, inputs: Sequence[GraphTensor], ranges: Mapping[str, AxisRange]) -> dict[str, ShapeRange]:
    """The optimisation profile of one graph: its named axes replaced by their ranges.

    Raises:
        InvalidInputError: an axis has no range (the message lists the ``--shape`` to add).
    """
    profile: dict[str, ShapeRange] = {}
    for tensor in inputs:
        if all(isinstance(d, int) for d in tensor.shape):
            continue
        shapes: list[list[int]] = [[], [], []]
        for dim in tensor.shape:
            if isinstance(dim, int):
                bounds: AxisRange = (dim, dim, dim)
            else:
                found = ranges.get(f"{role}.{dim}", ranges.get(str(dim)))
                if found is None:
                    raise InvalidInputError(
                        f"graph '{role}' input '{tensor.name}' has a dynamic axis '{dim}' with no range; "
                        f"add --shape {role}.{dim}=MIN:OPT:MAX"
                    )
                bounds = found
            for which in range(3):
                shapes[which].append(bounds[which])
        profile[tensor.name] = ShapeRange(tuple(shapes[0]), tuple(shapes[1]), tuple(shapes[2]))
    return profile


@dataclasses.dataclass(frozen=True)
class BundleEngine:
    """The engine request of one bundle graph, and why its precision differs from the one asked (if it does)."""

    role: str
    request: EngineRequest
    note: str | None = None


def bundle_engine_requests(
    bundle: Bundle,
    precision: Precision | str,
    *,
    overrides: Mapping[str, AxisRange] | None = None,
    options: BuildOptions | None = None,
    roles: Iterable[str] | None = None,
) -> list[BundleEngine]:
    """One :class:`EngineRequest` per graph of ``bundle`` (in manifest order), for ``precision``.

    Args:
        bundle: a loaded, verified bundle (:func:`edgeaff.runtime.artifacts.bundle.load_bundle`).
        precision: requested precision.
        overrides: axis ranges replacing the defaults (keys ``AXIS`` or ``GRAPH.AXIS``).
        options: builder options.
        roles: only these graphs (default: all).

    Raises:
        InvalidInputError: an unknown role, or a dynamic axis without a range.
    """
    wanted = Precision.parse(precision)
    ranges = {**default_axis_ranges(bundle.feature_spec.window.length), **(overrides or {})}
    selected = list(bundle.graphs) if roles is None else list(roles)
    unknown = sorted(set(selected) - set(bundle.graphs))
    if unknown:
        raise InvalidInputError(f"the bundle has no graphs {unknown}; it has {list(bundle.graphs)}")
    engines = []
    for role in selected:
        graph = bundle.graphs[role]
        variant = graph.variant(wanted.value, tensorrt=True)
        note = None
        if variant.precision == "fp32" and wanted.value != "fp32":
            note = f"the bundle has no {wanted.value} variant of '{role}': its FP32 graph is built in fp32"
        request = EngineRequest(
            variant.path,
            Precision.parse("int8" if variant.precision == TENSORRT_INT8 else variant.precision),
            graph_profile(role, graph.inputs, ranges),
            options or BuildOptions(),
            onnx_sha256=variant.sha256,
        )
        engines.append(BundleEngine(role, request, note))
    return engines


@dataclasses.dataclass(frozen=True)
class EngineOutcome:
    """What :func:`build_engines` did for one graph."""

    role: str
    precision: Precision
    path: str
    built: bool
    seconds: float
    reason: str | None


def build_engines(
    engines: Sequence[BundleEngine],
    *,
    cache: EngineCache,
    builder: EngineBuilder,
    check: Callable[[bytes], Any],
    echo: Callable[[str], None] = print,
) -> list[EngineOutcome]:
    """Build (or reuse) each engine in turn, saying what happens.

    Args:
        engines: from :func:`bundle_engine_requests`.
        cache: the engine cache.
        builder: builds missing engines.
        check: deserialises engine bytes to prove a cached engine loads (raises ``EngineLoadError`` otherwise).
        echo: where progress lines go.

    Raises:
        EngineBuildError / InvalidInputError: on the first graph that cannot be built; engines built before it
        stay in the cache.
    """
    outcomes = []
    for index, engine in enumerate(engines, start=1):
        request = engine.request
        prefix = f"[{index}/{len(engines)}] {engine.role} ({request.precision.value}, {request.onnx_path.name})"
        if engine.note:
            echo(f"{prefix}: note: {engine.note}")
        echo(f"{prefix}: looking up the engine cache")
        cached = cache.get_or_build(request, builder=builder, load=check)
        seconds = cached.record.build_seconds if cached.built else 0.0
        state = f"built in {seconds:.1f} s" if cached.built else "cached engine is valid"
        echo(f"{prefix}: {state} -> {cached.path}")
        outcomes.append(
            EngineOutcome(engine.role, request.precision, str(cached.path), cached.built, seconds, cached.reason)
        )
    return outcomes
