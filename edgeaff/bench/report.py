"""The benchmark document (JSON), its Markdown rendering, and the terminal table.

The JSON document is the result; Markdown and the rich table are views of it. Every number is milliseconds unless
its key says otherwise.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from edgeaff.runtime.files import atomic_output

FORMAT = "edgeaff-bench"
SCHEMA_VERSION = 1
LOAD_NOTE = (
    "Absolute times depend on the machine's load (the stamp records the load average before and after); ratios "
    "measured side by side in alternating pairs are the steadier figures."
)

# Stage names in report order: the runtime's own stage names, then the finer and isolated ones edgeaff.bench adds.
STAGE_DESCRIPTIONS: dict[str, str] = {
    "read": "decode: read one video frame and convert it to BGR",
    "audio_read": "decode: one audio chunk, resampled to 16 kHz mono",
    "face": "face stage per frame: detect or track, align, crop",
    "face_detect": "face detection, per frame that ran the detector",
    "face_track": "face tracking (optical flow), per frame that tracked",
    "face_align": "alignment and 48x48 crop, per frame with a face",
    "audio_features": "MFCC + log-mel streams and each frame's rows",
    "mfcc": "MFCC-39 stream, per audio chunk",
    "log_mel": "VGGish log-mel stream, per audio chunk",
    "vggish": "VGGish graph, per call",
    "visual": "visual graph (backbones, or shared trunk + tails), per batch of crops",
    "temporal": "temporal graph as the pipeline ran it (a window offline, a chunk in stream mode)",
    "temporal_window": "temporal graph, one full window",
    "temporal_step": "streaming graph, one frame with its state",
    "ensemble": "fold ensembling (CCC-centering) and clipping",
    "ensemble_offline": "fold ensembling over the whole clip",
    "ensemble_causal": "causal fold ensembling, per frame",
    "write": "writing the result files",
    "overlay": "drawing the overlay video",
}
GPU_SPLIT = ("h2d", "compute", "d2h")
GPU_SPLIT_WORDS = {"h2d": "host to device copies", "compute": "compute", "d2h": "device to host copies"}


def describe_stage(name: str) -> str:
    """What a stage measures (GPU split stages are ``<graph>_h2d`` / ``_compute`` / ``_d2h``)."""
    if name in STAGE_DESCRIPTIONS:
        return STAGE_DESCRIPTIONS[name]
    graph, _, part = name.rpartition("_")
    if part in GPU_SPLIT:
        return f"{graph} graph on the GPU: {GPU_SPLIT_WORDS[part]}"
    return name


def stage_order(names: list[str]) -> list[str]:
    """Known stages in report order, GPU splits after their graph, unknown ones last."""
    known = list(STAGE_DESCRIPTIONS)

    def key(name: str) -> tuple[int, int, str]:
        if name in STAGE_DESCRIPTIONS:
            return (known.index(name), 0, name)
        graph, _, part = name.rpartition("_")
        if part in GPU_SPLIT and graph in STAGE_DESCRIPTIONS:
            return (known.index(graph), 1 + GPU_SPLIT.index(part), name)
        return (len(known), 0, name)

    return sorted(names, key=key)


def build_document(
    *,
    stamp: Mapping[str, Any],
    stages: Mapping[str, Mapping[str, Any]],
    end_to_end: Mapping[str, Any] | None,
    comparisons: list[Mapping[str, Any]],
    skipped: list[Mapping[str, str]],
    notes: list[str],
    checks: Mapping[str, Any] | None = None,
    peaks: Mapping[str, Any] | None = None,
    efficiency: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The benchmark document.

    Args:
        stamp: :func:`edgeaff.bench.stamp.make_stamp`.
        stages: per stage: ``where`` (``pipeline`` or ``isolated``) and the statistics of
            :meth:`~edgeaff.bench.stats.LatencyStats.to_dict`.
        end_to_end: the pipeline's figures, or ``None`` without a source.
        comparisons: :meth:`~edgeaff.bench.stats.PairedTiming.to_dict` of each comparison.
        skipped: ``{"what", "why"}`` for measurements that did not run.
        notes: remarks (precision fallbacks, missing audio, ...).
        checks: other named results worth a line each (e.g. the max abs difference of two implementations).
        peaks: :meth:`edgeaff.bench.peak.Peaks.to_dict`, the machine's measured peaks (``None``: not measured).
        efficiency: :func:`edgeaff.bench.efficiency.efficiency`, achieved GOP/s and fractions of peak per graph
            stage and end to end (``None``: FLOPs not counted).
    """
    ordered = {name: {**stages[name], "description": describe_stage(name)} for name in stage_order(list(stages))}
    return {
        "format": FORMAT,
        "schema_version": SCHEMA_VERSION,
        "stamp": dict(stamp),
        "end_to_end": None if end_to_end is None else dict(end_to_end),
        "stages": ordered,
        "comparisons": [dict(c) for c in comparisons],
        "skipped": [dict(s) for s in skipped],
        "checks": dict(checks or {}),
        "peaks": None if peaks is None else dict(peaks),
        "efficiency": None if efficiency is None else dict(efficiency),
        "notes": [*notes, LOAD_NOTE],
    }


def write_json(document: Mapping[str, Any], path: str | Path) -> Path:
    """Write the document as JSON, atomically."""
    with atomic_output(path) as tmp:
        tmp.write_text(json.dumps(document, indent=2, allow_nan=False) + "\n")
    return Path(path)


def write_markdown(document: Mapping[str, Any], path: str | Path, *, title: str | None = None) -> Path:
    """Write :func:`render_markdown` of the document, atomically."""
    with atomic_output(path) as tmp:
        tmp.write_text(render_markdown(document, title=title))
    return Path(path)


def _number(value: Any, digits: int = 2) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        if abs(value) >= 1000:
            return f"{value:.0f}"
        return f"{value:.{digits}f}"
    return str(value)


def _check(value: Any) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)


def _settings_line(settings: Mapping[str, Any]) -> str:
    keys = ("backend", "precision", "mode", "models", "folds", "dimensions", "backbone", "shared_trunk",
            "visual_batch", "isolated_batch", "window", "hop", "threads", "face_detector", "detect_every")  # fmt: skip
    return ", ".join(f"{k} {settings[k]}" for k in keys if settings.get(k) is not None)


def render_markdown(document: Mapping[str, Any], *, title: str | None = None) -> str:
    """The document as Markdown: stamp, end-to-end figures, stage table, comparisons, skipped, notes."""
    settings = document["stamp"].get("settings", {})
    fps = (settings.get("source") or {}).get("fps") or 30.0
    lines = _stamp_markdown(document["stamp"], title)
    lines += _end_to_end_markdown(document.get("end_to_end"))
    lines += render_peak_markdown(document)
    if document.get("checks"):
        lines += ["## Checks", ""] + [f"- {k}: {_check(v)}" for k, v in document["checks"].items()] + [""]
    lines += _stages_markdown(document["stages"], fps)
    lines += _comparisons_markdown(document.get("comparisons") or [])
    if document.get("skipped"):
        lines += ["", "## Not measured", ""] + [f"- {s['what']}: {s['why']}" for s in document["skipped"]]
    notes = [n for n in document.get("notes", []) if n != LOAD_NOTE]
    if notes:
        lines += ["", "## Notes", ""] + [f"- {n}" for n in notes]
    return "\n".join(lines) + "\n"


def _stamp_markdown(stamp: Mapping[str, Any], title: str | None) -> list[str]:
    """Title and the stamp: device, date and load, settings, source, batches, threads, instruction sets, versions."""
    settings = stamp.get("settings", {})
    versions = ", ".join(f"{k} {v}" for k, v in stamp.get("versions", {}).items())
    load = stamp.get("load_average", {})
    lines = [
        f"# {title or 'edgeaff bench'}",
        "",
        f"- device: {stamp.get('device')}; {stamp.get('machine', {}).get('os')}",
        f"- date: {stamp.get('date')}; load average (1/5/15 min) before {load.get('before')}, after "
        f"{load.get('after')}; peak RSS {stamp.get('peak_rss_mib')} MiB",
        f"- settings: {_settings_line(settings)}",
    ]
    source = settings.get("source")
    if source:
        lines.append(
            f"- source: {source.get('uri')} ({source.get('width')}x{source.get('height')}, {source.get('fps')} fps, "
            f"{source.get('frames')} frames, audio {source.get('audio')})"
        )
    batches = settings.get("batches")
    if batches:
        tuned = batches.get("tuning") or {}
        sources = ", ".join(f"{role} {choice['source']}" for role, choice in tuned.items())
        lines.append(
            f"- batches: visual {batches.get('visual')}, vggish {batches.get('vggish')}"
            f"{' (stream: the frames waiting, up to this)' if batches.get('adaptive') else ''}"
            f"{f' ({sources})' if sources else ''}; prefetch {batches.get('prefetch')}"
        )
    if settings.get("threads_per_graph"):
        lines.append("- threads per graph: " + ", ".join(f"{k} {v}" for k, v in settings["threads_per_graph"].items()))
    stream_threads = settings.get("stream_threads")
    if stream_threads and stream_threads.get("ms_per_step"):
        timings = ", ".join(f"{k} threads {v:.2f} ms" for k, v in stream_threads["ms_per_step"].items())
        chosen = f"{stream_threads['threads']} ({stream_threads['source']}; {timings})"
        lines.append(f"- streaming graph's threads: {chosen}")
    machine = stamp.get("machine", {})
    if machine.get("isa_line"):
        lines.append(f"- CPU instruction sets: {machine['isa_line']}")
    return [*lines, f"- versions: {versions}", "", f"_{LOAD_NOTE}_", ""]


def _end_to_end_markdown(e2e: Mapping[str, Any] | None) -> list[str]:
    if not e2e:
        return []
    latency = e2e.get("frame_latency_ms")
    return [
        "## End to end",
        "",
        "| passes | frames | video s | wall s | frames/s | × real time | ms/frame "
        "| frame latency p50 / p90 / p99 ms | peak RSS MiB |",
        "|---|---|---|---|---|---|---|---|---|",
        f"| {e2e['passes']} | {e2e['frames']} | {_number(e2e['video_s'], 1)} | {_number(e2e['wall_s'], 1)} "
        f"| {_number(e2e['frames_per_s'], 1)} | {_number(e2e['x_real_time'], 2)} | {_number(e2e['ms_per_frame'])} "
        f"| {'-' if not latency else ' / '.join(_number(latency[k], 0) for k in ('p50_ms', 'p90_ms', 'p99_ms'))} "
        f"| {_number(e2e['peak_rss_mib'], 0)} |",
        "",
    ]


def _stages_markdown(stages: Mapping[str, Any], fps: float) -> list[str]:
    if not stages:
        return []
    lines = [
        "## Stages",
        "",
        f"ms per call; ms/video-s = milliseconds of this stage per second of {fps:g} fps video "
        "(the whole pipeline must stay under 1000 to keep up).",
        "",
        "| stage | where | calls | frames | mean | p50 | p90 | p99 | ms/frame | ms/video-s | what |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, stage in stages.items():
        per_frame = stage.get("ms_per_frame")
        per_second = None if per_frame is None else per_frame * fps
        cells = [stage["count"], stage["frames"], stage["mean_ms"], stage["p50_ms"], stage["p90_ms"], stage["p99_ms"]]
        lines.append(
            f"| {name} | {stage['where']} | " + " | ".join(_number(c) for c in cells)
            + f" | {_number(per_frame, 3)} | {_number(per_second, 1)} | {stage['description']} |"
        )  # fmt: skip
    return lines


def _comparisons_markdown(comparisons: list[Mapping[str, Any]]) -> list[str]:
    if not comparisons:
        return []
    lines = [
        "",
        "## Side by side (one run, alternating pairs)",
        "",
        "ratio = B's time / A's time (how many times faster A is); the range is the 25th-75th percentile of the "
        "per-pair ratios.",
        "",
        "| comparison | A | B | ratio | range | A p50 ms | B p50 ms | pairs | note |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for c in comparisons:
        lines.append(
            f"| {c['name']} | {c['a_label']} | {c['b_label']} | **{_number(c['ratio'])}** "
            f"| {_number(c['ratio_low'])}-{_number(c['ratio_high'])} | {_number(c['a']['p50_ms'], 3)} "
            f"| {_number(c['b']['p50_ms'], 3)} | {c['pairs']} | {c.get('note', '')} |"
        )
    return lines


def _gops(value: Any) -> str:
    return "-" if value is None else f"{value:.1f}"


def _fraction(value: Any) -> str:
    return "-" if value is None else f"{value:.0%}"


def render_peak_markdown(document: Mapping[str, Any]) -> list[str]:
    """The peaks and the fraction-of-peak tables (empty when neither was measured)."""
    lines: list[str] = []
    peaks = document.get("peaks")
    if peaks:
        threads = "" if peaks.get("threads") is None else f", {peaks['threads']} threads, spinning {peaks['spinning']}"
        lines += [
            "## Peaks",
            "",
            f"The machine's practical peak, measured at the start of this run ({peaks['engine']}{threads}; "
            f"{'GPU time' if peaks.get('timing') == 'gpu' else 'wall time'} per call).",
            "",
            "| peak | ran | one call | peak GOP/s (fastest call) | mean GOP/s | weights GB/s | calls |",
            "|---|---|---|---|---|---|---|",
        ]
        for entry in peaks["entries"]:
            gbs = entry.get("gbs")
            lines.append(
                f"| {entry['name']} | {entry['form']} | {entry['shape']} | **{_gops(entry['gops'])}** "
                f"| {_gops(entry['mean_gops'])} | {'-' if gbs is None else f'**{gbs:.1f}**'} | {entry['calls']} |"
            )
        lines.append("")
    report = document.get("efficiency")
    if report and report.get("stages"):
        lines += [
            "## Fraction of peak",
            "",
            "GOP/s = counted FLOPs (convolutions and matrix products) per second of the stage; bound = the time the "
            "stage would take at the measured peak of each node's precision and kind, or, when longer, to read its "
            "weights once per call at the bandwidth peak (bound by memory); fraction = bound / the time it took.",
            "",
            "| stage | graph (file) | where | items | MFLOP per item | GOP/s | weights MB per call | weights GB/s "
            "| bound by | peak GOP/s | fraction of peak |",
            "|---|---|---|---|---|---|---|---|---|---|---|",
        ]
        graphs = report.get("graphs", {})
        for stage, row in report["stages"].items():
            file = graphs.get(row["graph"], {}).get("file", "")
            lines.append(
                f"| {stage} | {row['graph']} ({file}) | {row['where']} | {row['items']} {row['item']}s "
                f"| {row['flops_per_item'] / 1e6:.1f} | {_gops(row['gops'])} "
                f"| {_number(row.get('weight_mb_per_call'), 1)} | {_number(row.get('weight_gbs'), 1)} "
                f"| {row.get('bound_by') or '-'} | {_gops(row['peak_gops'])} "
                f"| **{_fraction(row['fraction_of_peak'])}** |"
            )
        whole = report.get("end_to_end")
        if whole:
            lines += [
                "",
                f"End to end: {whole['graph_flops_per_frame'] / 1e9:.2f} GFLOP of graphs per frame, "
                f"{_gops(whole['gops'])} GOP/s over the whole run, **{_fraction(whole['fraction_of_peak'])} of peak**; "
                f"at the peaks, with nothing else taking time, the graphs would allow "
                f"{_number(whole['bound_frames_per_s'], 1)} frames/s "
                f"({_number(whole.get('int8_bound_frames_per_s'), 1)} with every graph at the INT8 peaks: this run "
                f"reached {_fraction(whole.get('fraction_of_int8_bound'))} of that INT8 bound).",
            ]
        bound = report.get("stream_step_vs_window")
        if bound:
            lines += [
                "",
                f"Streaming step vs window at the peaks: one step {bound['step_bound_ms']:.3f} ms (bound by "
                f"{bound['step_bound_by']}), one {bound['window_frames']}-frame window "
                f"{bound['window_bound_ms']:.1f} ms (bound by {bound['window_bound_by']}): the machine allows a step "
                f"at most **{bound['bound_ratio']:.1f}×** cheaper than re-running the window (the measured ratio is "
                "in the comparisons).",
            ]
        lines += [f"- {note}" for note in report.get("notes", [])]
        lines.append("")
    return lines


def print_tables(document: Mapping[str, Any]) -> None:
    """Print the end-to-end line, the stage table and the comparisons on the terminal (rich)."""
    import shutil

    from rich.console import Console
    from rich.table import Table

    console = Console(width=max(shutil.get_terminal_size().columns, 132))
    stamp = document["stamp"]
    console.print(f"[bold]edgeaff bench[/bold]  {stamp['device']}  ({_settings_line(stamp['settings'])})")
    console.print(f"load average before {stamp['load_average']['before']}, after {stamp['load_average']['after']}")
    e2e = document.get("end_to_end")
    if e2e:
        console.print(
            f"end to end: {e2e['frames']} frames in {e2e['wall_s']:.1f} s over {e2e['passes']} pass(es): "
            f"[bold]{_number(e2e['frames_per_s'], 1)} frames/s, {_number(e2e['x_real_time'], 2)}× real time[/bold], "
            f"peak RSS {e2e['peak_rss_mib']:.0f} MiB"
            + (
                f", {_number(e2e.get('faces_per_frame'), 2)} faces per frame"
                if stamp["settings"].get("faces") == "all"
                else ""
            )
        )
    table = Table(title="stages (ms per call)")
    for column in ("stage", "where", "calls", "mean", "p50", "p90", "p99", "ms/frame"):
        table.add_column(column, justify="left" if column in ("stage", "where") else "right")
    for name, stage in document["stages"].items():
        table.add_row(
            name,
            stage["where"],
            str(stage["count"]),
            *(_number(stage[k]) for k in ("mean_ms", "p50_ms", "p90_ms", "p99_ms")),
            _number(stage.get("ms_per_frame"), 3),
        )
    console.print(table)
    if document.get("comparisons"):
        pairs = Table(title="side by side: ratio = B / A (how many times faster A is)")
        for column in ("A", "B", "ratio", "A p50", "B p50", "pairs"):
            pairs.add_column(column, justify="left" if column in ("A", "B") else "right")
        for c in document["comparisons"]:
            pairs.add_row(
                c["a_label"], c["b_label"], f"{c['ratio']:.2f}", _number(c["a"]["p50_ms"], 3),
                _number(c["b"]["p50_ms"], 3), str(c["pairs"]),
            )  # fmt: skip
        console.print(pairs)
    peaks = document.get("peaks")
    if peaks:
        console.print(
            f"peaks ({peaks['engine']}): "
            + ", ".join(
                f"{e['name']} {e['gops']:.0f} GOP/s" if e.get("gbs") is None else f"{e['name']} {e['gbs']:.1f} GB/s"
                for e in peaks["entries"]
            )
        )
    report = document.get("efficiency")
    if report and report.get("stages"):
        rows = Table(title="fraction of peak (counted FLOPs)")
        for column in ("stage", "graph", "MFLOP/item", "GOP/s", "weights GB/s", "bound by", "peak GOP/s", "fraction"):
            rows.add_column(column, justify="left" if column in ("stage", "graph", "bound by") else "right")
        for stage, row in report["stages"].items():
            rows.add_row(
                stage, row["graph"], f"{row['flops_per_item'] / 1e6:.1f}", _gops(row["gops"]),
                _number(row.get("weight_gbs"), 1), row.get("bound_by") or "-", _gops(row["peak_gops"]),
                _fraction(row["fraction_of_peak"]),
            )  # fmt: skip
        console.print(rows)
        whole = report.get("end_to_end")
        if whole:
            console.print(
                f"end to end: {_gops(whole['gops'])} GOP/s, {_fraction(whole['fraction_of_peak'])} of peak; the graphs "
                f"alone at peak: {_number(whole['bound_frames_per_s'], 1)} frames/s"
            )
    for item in document.get("skipped", []):
        console.print(f"not measured: {item['what']}: {item['why']}")
    for note in document.get("notes", []):
        console.print(note)
