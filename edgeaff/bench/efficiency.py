"""How close the graphs come to the machine's peak: achieved GOP/s per graph and end to end, and the fraction.

For every graph the benchmark ran, the FLOPs of one item (a face crop for ``visual``, a log-mel example for
``vggish``, a frame for the temporal graphs) are counted from the file that ran (:mod:`edgeaff.bench.flops`), split
by precision and by kind (convolution or matrix product). A stage that ran ``frames`` items in ``total_ms`` then
achieved ``flops × frames / total_ms`` and, against the measured peaks (:mod:`edgeaff.bench.peak`), would have
taken at best

    bound_ms = Σ over (precision, kind) of flops[precision, kind] × frames / peak[precision, kind]

(each kind held against the peak of its own kind at its precision; the best peak of the precision where that kind
was not measured; FP16 on a CPU against FP32, which is what ONNX Runtime's CPU kernels compute).

A call also reads every weight of the graph once; at the measured bandwidth peak (GB/s of weights that a chain of
matrix-vector products reads, :mod:`edgeaff.bench.peak`) that takes at least

    memory_ms = calls × weight_bytes / bandwidth

and the stage's bound is the larger of the two (a roofline): a graph called on a whole window or a batch of crops is
bound by arithmetic, the streaming step (one frame per call, two FLOPs per weight) by memory. The **fraction of
peak** is ``bound_ms / total_ms``: 1.0 means the graph ran as fast as the machine's own large GEMM or convolution,
or, for a memory-bound graph, read its weights as fast as the machine's own matrix-vector chain. A graph whose
weights fit the last-level cache keeps them there between calls and can pass 1.0 against the memory bound.

End to end, the graph stages of the pipeline together give the FLOPs per frame, the achieved GOP/s over the whole
wall time and the **bound frames/s**: how many frames per second the machine would process if the graphs ran at
the peak and everything else (decoding, faces, audio features, Python) took no time. The **INT8 bound** is the same
with every graph held against the INT8 peaks (as if all of them were quantised, every weight one byte), the best
case an INT8 bundle can reach on this machine.

When the run timed both the temporal window and the streaming step, ``stream_step_vs_window`` gives the bound of
re-running one window over the bound of one step: the largest ratio the machine allows between the two, to set
beside the measured one (``edgeaff bench``'s comparison of the same name).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from edgeaff.bench.flops import CONV_OPS, GraphFlops, count_flops, graph_symbols, load_graph
from edgeaff.bench.peak import Peaks, weight_bytes
from edgeaff.runtime import BackendOptions, Bundle, graph_runner

# Stage -> (graph role, what one of the stage's frames is). The temporal stage runs the windowed graph offline and
# the streaming graph in stream mode.
STAGE_GRAPHS: dict[str, tuple[str, str]] = {
    "visual": ("visual", "face crop"),
    "vggish": ("vggish", "log-mel example"),
    "temporal_window": ("temporal", "frame of a window"),
    "temporal_step": ("temporal_stream", "frame"),
}


def _kind(op: str) -> str:
    return "conv" if op in CONV_OPS or op == "ConvTranspose" else "matmul"


@dataclasses.dataclass(frozen=True)
class GraphCount:
    """FLOPs of one item of a graph, as it ran.

    Attributes:
        role: the bundle graph.
        file: the file that ran (the variant the backend and precision chose).
        item: what one item is.
        flops: FLOPs per item.
        split: FLOPs per item by ``(precision, kind)``.
        counted: the full count (of ``steps`` items for the windowed graph, one item otherwise).
        steps: items in the counted call.
        weight_bytes: bytes of the graph's weights (initialisers), read once per call.
        int8_weight_bytes: the same with every weight one byte (the INT8 bound's).
    """

    role: str
    file: str
    item: str
    flops: float
    split: dict[tuple[str, str], float]
    counted: GraphFlops
    steps: int
    weight_bytes: int = 0
    int8_weight_bytes: int = 0

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "role": self.role,
            "file": self.file,
            "item": self.item,
            "flops_per_item": self.flops,
            "flops_per_item_by_precision": _by_precision(self.split),
            "weight_bytes": self.weight_bytes,
            "counted_call": {**self.counted.to_dict(), "items": self.steps},
        }


def _by_precision(split: Mapping[tuple[str, str], float]) -> dict[str, float]:
    result: dict[str, float] = {}
    for (precision, _), flops in split.items():
        result[precision] = result.get(precision, 0.0) + flops
    return result


def graph_path(bundle: Bundle, role: str, options: BackendOptions) -> Path:
    """The ONNX file graph ``role`` runs from on ``options`` (the runtime's own choice of variant)."""
    runner, choice = graph_runner(bundle, role, options)
    request = getattr(runner, "request", None)
    if request is not None:  # TensorRT runners know their ONNX file
        return Path(request.onnx_path)
    return bundle.root / choice.file


def count_graph(bundle: Bundle, role: str, options: BackendOptions, *, item: str) -> GraphCount:
    """Count the FLOPs per item of graph ``role`` as it runs on ``options``.

    The first dynamic axis of every input (the batch) is 1; a second one (the temporal graphs' steps) is the
    bundle's window length for the windowed graph and 1 for the streaming graph, and the count is divided by it.

    Raises:
        MissingDependencyError: the ``onnx`` package is missing.
    """
    path = graph_path(bundle, role, options)
    model = load_graph(path)
    steps = bundle.feature_spec.window.length if role == "temporal" else 1
    symbols: dict[str, int] = {}
    for tensor in model.graph.input:
        for axis, dim in enumerate(tensor.type.tensor_type.shape.dim):
            if dim.dim_param and dim.dim_param not in symbols:
                symbols[dim.dim_param] = 1 if axis == 0 else steps
    for name in graph_symbols(model):
        symbols.setdefault(name, 1)
    counted = count_flops(model, symbols)
    split: dict[tuple[str, str], float] = {}
    for node in counted.nodes:
        key = (node.precision, _kind(node.op))
        split[key] = split.get(key, 0.0) + node.flops / steps
    return GraphCount(
        role, path.name, item, counted.total / steps, split, counted, steps, weight_bytes(model),
        weight_bytes(model, as_int8=True),
    )  # fmt: skip


def peak_for(peaks: Peaks, precision: str, kind: str) -> tuple[float | None, str | None]:
    """The peak (GOP/s) a node of ``precision`` and ``kind`` is held against, and a note when it is a stand-in."""
    exact = {(e.precision, e.op): e.gops for e in peaks.entries}
    best = peaks.by_precision()
    if (precision, kind) in exact:
        return exact[(precision, kind)], None
    if precision in best:
        return best[precision], f"no {precision} {kind} peak: held against the best {precision} peak"
    cpu = peaks.engine == "onnxruntime-cpu"
    if cpu and precision in ("fp16", "bf16", "other") and ("fp32", kind) in exact:
        return exact[("fp32", kind)], f"{precision} nodes on {peaks.engine} held against its FP32 peak"
    return None, f"no {precision} peak was measured on {peaks.engine}"


def bound_ms(
    split: Mapping[tuple[str, str], float], items: float, peaks: Peaks, *, as_precision: str | None = None
) -> tuple[float | None, list[str]]:
    """Milliseconds ``items`` items of a graph with FLOPs ``split`` take at the peaks (``None``: a peak is missing).

    ``as_precision``: hold every node against that precision's peaks instead of its own (e.g. ``int8``: the bound
    if every graph were quantised).
    """
    total = 0.0
    notes: list[str] = []
    for (precision, kind), flops in split.items():
        if flops <= 0:
            continue
        peak, note = peak_for(peaks, as_precision or precision, kind)
        if note:
            notes.append(note)
        if peak is None or peak <= 0:
            return None, notes
        total += flops * items / (peak * 1e9) * 1000.0
    return total, notes


def stage_graphs(offline: bool) -> dict[str, tuple[str, str]]:
    """Stage -> (graph role, item) for a run in this mode (the pipeline's ``temporal`` stage follows the mode)."""
    temporal = ("temporal", "frame of a window") if offline else ("temporal_stream", "frame")
    return {**STAGE_GRAPHS, "temporal": temporal}


def efficiency(
    *,
    counts: Mapping[str, GraphCount],
    stages: Mapping[str, Mapping[str, Any]],
    peaks: Peaks | None,
    offline: bool,
    end_to_end: Mapping[str, Any] | None,
) -> dict[str, Any]:
    """The efficiency section of the benchmark document (see the module docstring).

    Args:
        counts: :func:`count_graph` of every graph that ran, by role.
        stages: the document's stages (``count``, ``frames``, ``total_ms``, ``where``).
        peaks: the measured peaks (``None``: achieved GOP/s only).
        offline: the pipeline's mode (which graph its ``temporal`` stage ran).
        end_to_end: the pipeline's end-to-end figures (``frames``, ``wall_s``), or ``None``.
    """
    notes: list[str] = []
    per_stage: dict[str, dict[str, Any]] = {}
    pipeline_flops = 0.0
    pipeline_bound: float | None = 0.0
    int8_bound: float | None = 0.0
    bandwidth = None if peaks is None else peaks.bandwidth_gbs
    for stage, (role, item) in stage_graphs(offline).items():
        entry, count = stages.get(stage), counts.get(role)
        if entry is None or count is None or not entry.get("frames") or not entry.get("total_ms"):
            continue
        frames, total_ms = float(entry["frames"]), float(entry["total_ms"])
        calls = float(entry.get("count") or 0)
        flops = count.flops * frames
        row: dict[str, Any] = {
            "graph": role,
            "where": entry.get("where"),
            "items": int(frames),
            "item": item,
            "flops_per_item": count.flops,
            "gops": flops / total_ms / 1e6,
            "weight_mb_per_call": count.weight_bytes / 1e6,
            "weight_gbs": calls * count.weight_bytes / total_ms / 1e6 if calls else None,
            "fraction_of_peak": None,
            "peak_gops": None,
            "bound_ms_per_item": None,
            "bound_by": None,
        }
        bound = memory = None
        if peaks is not None:
            bound, stage_notes = bound_ms(count.split, frames, peaks)
            notes += [f"{stage}: {n}" for n in stage_notes if f"{stage}: {n}" not in notes]
            memory = calls * count.weight_bytes / (bandwidth * 1e9) * 1000.0 if bandwidth and calls else None
            if bound is not None and memory is not None and memory > bound:
                bound = memory
                row["bound_by"] = "memory"
            elif bound is not None:
                row["bound_by"] = "compute"
            if bound is not None and bound > 0:
                row |= {
                    "fraction_of_peak": bound / total_ms,
                    "peak_gops": flops / bound / 1e6,
                    "bound_ms_per_item": bound / frames,
                }
        per_stage[stage] = row
        if entry.get("where") == "pipeline":
            pipeline_flops += flops
            pipeline_bound = None if bound is None or pipeline_bound is None else pipeline_bound + bound
            quantised = None if peaks is None else bound_ms(count.split, frames, peaks, as_precision="int8")[0]
            if quantised is not None and memory is not None:  # every weight one byte
                quantised = max(quantised, memory * count.int8_weight_bytes / max(count.weight_bytes, 1))
            int8_bound = None if quantised is None or int8_bound is None else int8_bound + quantised
    whole: dict[str, Any] | None = None
    if end_to_end and end_to_end.get("frames") and end_to_end.get("wall_s") and pipeline_flops > 0:
        frames, wall_ms = float(end_to_end["frames"]), float(end_to_end["wall_s"]) * 1000.0
        whole = {
            "graph_flops_per_frame": pipeline_flops / frames,
            "gops": pipeline_flops / wall_ms / 1e6,
            "fraction_of_peak": None if not pipeline_bound else pipeline_bound / wall_ms,
            "bound_frames_per_s": None if not pipeline_bound else frames / (pipeline_bound / 1000.0),
            "bound_ms_per_frame": None if not pipeline_bound else pipeline_bound / frames,
            "int8_bound_frames_per_s": None if not int8_bound else frames / (int8_bound / 1000.0),
            "fraction_of_int8_bound": None if not int8_bound else int8_bound / wall_ms,
        }
    return {
        "graphs": {role: count.to_dict() for role, count in counts.items()},
        "stages": per_stage,
        "end_to_end": whole,
        "stream_step_vs_window": step_vs_window_bound(per_stage, counts),
        "notes": notes,
    }


def step_vs_window_bound(
    per_stage: Mapping[str, Mapping[str, Any]], counts: Mapping[str, GraphCount]
) -> dict[str, Any] | None:
    """The bound of re-running one window over the bound of one streaming step (``None``: not both timed, or a
    peak is missing)."""
    window, step, graph = per_stage.get("temporal_window"), per_stage.get("temporal_step"), counts.get("temporal")
    if not window or not step or graph is None:
        return None
    if not window.get("bound_ms_per_item") or not step.get("bound_ms_per_item"):
        return None
    window_ms = window["bound_ms_per_item"] * graph.steps
    return {
        "window_frames": graph.steps,
        "window_bound_ms": window_ms,
        "window_bound_by": window.get("bound_by"),
        "step_bound_ms": step["bound_ms_per_item"],
        "step_bound_by": step.get("bound_by"),
        "bound_ratio": window_ms / step["bound_ms_per_item"],
    }
