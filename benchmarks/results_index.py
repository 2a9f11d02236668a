"""``benchmarks/results/<device>/README.md``: every result table there, and where each target stands.

Reads the JSON documents the scenarios wrote (``edgeaff bench``, ``reference_speed.py``, ``shared_trunk_speed.py``,
``jetson_ceilings.py``); a missing result is listed as not run. A gap to a target is reported as measured, not
hidden: it is what the numbers say on this machine.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from edgeaff.runtime.files import atomic_output

TARGETS = {
    "int8_bound": "12-network ensemble (IR-50, shared trunk), INT8, offline, end to end: >= 70% of the INT8 bound "
    "(frames/s with every graph at the machine's measured INT8 peaks and nothing else taking time)",
    "live": "one fold (valence + arousal, multimodal), IR-50, INT8, live in stream mode from a 30 fps source: real "
    "time (no frame dropped), per-frame latency p50/p99",
    "realtime": "12-network ensemble (6 folds x 2 dimensions, IR-50, INT8, shared trunk), end to end from an mp4 with "
    "face detection and tracking: >= 1.0x real time at 30 fps",
    "reference": ">= 10x the throughput of reference-style PyTorch inference, outputs equal within 1e-4 (FP32)",
    "streaming": "streaming per-frame temporal update >= 50x cheaper than re-running the 300-frame window",
    "jetson": "frames/s ceilings of the 12-network ensemble on Jetson Orin modules from counted FLOPs",
}


def _load(directory: Path, name: str) -> dict[str, Any] | None:
    path = directory / f"{name}.json"
    return json.loads(path.read_text()) if path.is_file() else None


def _comparison(document: dict[str, Any] | None, name: str) -> dict[str, Any] | None:
    if document is None:
        return None
    return next((c for c in document.get("comparisons", []) if c["name"] == name), None)


def _verdict(value: float | None, goal: float) -> str:
    if value is None:
        return "not run"
    return "met" if value >= goal else f"not met ({value / goal:.0%} of the target)"


def _load_line(document: dict[str, Any]) -> str:
    load = document["stamp"]["load_average"]
    return f"load {load['before'][0] if load['before'] else '?'} -> {load['after'][0] if load['after'] else '?'}"


def write_index(directory: Path, device: str) -> Path:
    """Write ``README.md`` in ``directory`` (the results of one device) and return its path."""
    lines = [f"# Benchmark results: {device}", ""]
    documents = {p.stem: json.loads(p.read_text()) for p in sorted(directory.glob("*.json")) if p.stem != "scenarios"}
    stamps = [d["stamp"] for d in documents.values() if "stamp" in d]
    if stamps:
        lines += [f"Device: {stamps[0]['device']} ({stamps[0]['machine']['os']}).", ""]
    lines += [
        "Random weights throughout (speed is real, accuracy is not). Every table stamps the load average: this "
        "machine is shared, so absolute times are load-sensitive; the side-by-side ratios (alternating pairs in one "
        "run) are the steadier figures.",
        "",
        "## Targets",
        "",
        "| target | measured | verdict | from |",
        "|---|---|---|---|",
    ]
    realtime = _load(directory, "ensemble12-ir50-int8-offline")
    whole = ((realtime or {}).get("efficiency") or {}).get("end_to_end") or {}
    if realtime is not None and whole.get("int8_bound_frames_per_s"):
        reached = whole["fraction_of_int8_bound"]
        lines.append(
            f"| {TARGETS['int8_bound']} | {realtime['end_to_end']['frames_per_s']:.1f} frames/s of "
            f"{whole['int8_bound_frames_per_s']:.1f}: {reached:.0%} ({_load_line(realtime)}) "
            f"| {_verdict(reached, 0.70)} | ensemble12-ir50-int8-offline.md |"
        )
    else:
        lines.append(f"| {TARGETS['int8_bound']} | - | not run | |")
    live = _load(directory, "live-fold0-ir50-int8")
    if live:
        data = live["live"]
        lines.append(
            f"| {TARGETS['live']} | {data['predicted_per_s']:.1f} predictions/s, {data['dropped_frames']} of "
            f"{data['frames_released']} frames dropped; latency p50 {data['latency_ms']['p50_ms']:.0f} ms, p99 "
            f"{data['latency_ms']['p99_ms']:.0f} ms ({_load_line(live)}) | "
            f"{'met' if data['keeps_up'] else 'not met'} | live-fold0-ir50-int8.md |"
        )
    else:
        lines.append(f"| {TARGETS['live']} | - | not run | |")
    if realtime and realtime.get("end_to_end"):
        e2e = realtime["end_to_end"]
        lines.append(
            f"| {TARGETS['realtime']} | {e2e['x_real_time']:.2f}x real time ({e2e['frames_per_s']:.1f} frames/s; "
            f"{_load_line(realtime)}) | {_verdict(e2e['x_real_time'], 1.0)} | ensemble12-ir50-int8-offline.md |"
        )
    else:
        lines.append(f"| {TARGETS['realtime']} | - | not run | |")
    references = [n for n in documents if n.startswith("reference-")]
    for name in references or ["reference-ir50-12"]:
        document = documents.get(name)
        pair = _comparison(document, "runtime_vs_reference_pytorch")
        if document is None or pair is None:
            lines.append(f"| {TARGETS['reference']} | - | not run | {name} |")
            continue
        checks = document["checks"]
        difference = checks["max |runtime - PyTorch| of the final per-frame predictions"]
        equal = "equal" if checks["equal within the tolerance"] else "NOT equal"
        models = document["stamp"]["settings"]["models"]
        backbone = ",".join(document["stamp"]["settings"]["backbone"])
        lines.append(
            f"| {TARGETS['reference']} ({models} x {backbone}) | {pair['ratio']:.1f}x (pairs {pair['pairs']}); "
            f"max diff {difference:.1e} ({equal}) | {_verdict(pair['ratio'] if equal == 'equal' else 0.0, 10.0)} "
            f"| {name}.md |"
        )
    stream = _comparison(realtime, "stream_step_vs_window")
    allowed = ((realtime or {}).get("efficiency") or {}).get("stream_step_vs_window")
    bound = "" if not allowed else (
        f"; the machine's roofline allows {allowed['bound_ratio']:.1f}x (step bound by {allowed['step_bound_by']}, "
        f"window by {allowed['window_bound_by']})"
    )  # fmt: skip
    lines.append(
        f"| {TARGETS['streaming']} | "
        + ("-" if stream is None else f"{stream['ratio']:.1f}x (step {stream['a']['p50_ms']:.2f} ms vs window "
           f"{stream['b']['p50_ms']:.1f} ms p50){bound}")
        + f" | {_verdict(None if stream is None else stream['ratio'], 50.0)} | ensemble12-ir50-int8-offline.md |"
    )  # fmt: skip
    ceilings = _load(directory, "jetson-ceilings")
    if ceilings:
        rows = {(r["device"], r["precision"]): r for r in ceilings["ceilings"]}
        picks = [("Orin Nano 8GB Super (1020 MHz)", "fp16"), ("Orin NX 16GB (918 MHz)", "fp16"),
                 ("AGX Orin 64GB (1.3 GHz)", "fp16")]  # fmt: skip
        text = "; ".join(
            f"{d.split(' (')[0]} {p}: {rows[(d, p)]['fps_shared_trunk_100pct']:.0f} fps ceiling, "
            f"{rows[(d, p)]['fps_shared_trunk_offline_util']:.0f} at MLPerf-offline utilisation"
            for d, p in picks
            if (d, p) in rows
        )
        lines.append(f"| {TARGETS['jetson']} | {text} | ceilings, not measurements | jetson-ceilings.md |")
    else:
        lines.append(f"| {TARGETS['jetson']} | - | not run | |")
    lines += ["", "## Result tables", ""]
    for name, document in documents.items():
        stamp = document.get("stamp", {})
        settings = stamp.get("settings", {})
        what = ", ".join(
            str(v) for v in (settings.get("backend"), settings.get("precision"), settings.get("mode")) if v
        ) or document.get("label", "")
        lines.append(f"- [{name}]({name}.md): {what}" + (f"; {_load_line(document)}" if stamp else ""))
    lines.append("")
    path = directory / "README.md"
    with atomic_output(path) as tmp:
        tmp.write_text("\n".join(lines))
    return path
