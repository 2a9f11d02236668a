"""Pipeline settings or code versions side by side: end-to-end frames/s in alternating runs, each in its own process.

Absolute speeds on a shared machine move with its load; what holds is the comparison of variants run one after the
other, many times, in alternating order (ABC, CBA, ...). Each run is a fresh process that opens the bundle, runs
64 frames untimed (and measures the batch sizes when the runtime does that), then times one pass over the source
through :class:`edgeaff.runtime.Pipeline` and prints its frames/s, per-frame stage times and the load average.

A variant is ``NAME=JSON`` (Pipeline settings, e.g. ``spin='{"spinning": true}'``) or, with ``--tree NAME=PATH``,
a checkout of edgeaff put first on ``PYTHONPATH`` (e.g. ``main`` before and this branch after; both must have the
public Pipeline API). Settings and trees combine: every variant runs on every tree.

Usage::

    python benchmarks/pipeline_ab.py --bundle BUNDLE --source VIDEO [--precision int8] [--mode offline]
        [--variant NAME=JSON ...] [--tree NAME=PATH ...] [--rounds 3] [--json OUT.json] [--markdown OUT.md]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from edgeaff.runtime.files import atomic_output

HERE = Path(__file__).resolve().parent
REPO = HERE.parent

_CHILD = """
import json, os, sys, time
from edgeaff.runtime import Pipeline, load_bundle
bundle, source, precision, mode, settings = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], json.loads(sys.argv[5])
with Pipeline(load_bundle(bundle), precision=precision, mode=mode, **settings) as pipeline:
    list(pipeline.run(source, max_frames=64))
    load = os.getloadavg()[0]
    start = time.perf_counter()
    run = pipeline.run(source)
    frames = sum(1 for _ in run)
    wall = time.perf_counter() - start
    report = run.report()
timing = {k: v.get("ms_per_frame") for k, v in report["timing_ms"].items()}
print(json.dumps({"frames": frames, "wall_s": wall, "frames_per_s": frames / wall, "load_before": load,
                  "load_after": os.getloadavg()[0], "batches": report.get("batches"), "ms_per_frame": timing}))
"""


def _pairs(values: list[str], what: str) -> dict[str, str]:
    pairs = {}
    for value in values:
        name, sep, rest = value.partition("=")
        if not sep or not name:
            raise SystemExit(f"error: {what} must be NAME=VALUE, got {value!r}")
        pairs[name] = rest
    return pairs


def run_once(tree: Path, bundle: Path, source: Path, *, precision: str, mode: str, settings: dict[str, Any]) -> dict:
    """One timed pass in a fresh process running the edgeaff in ``tree``."""
    env = {**os.environ, "PYTHONPATH": str(tree)}
    command = [sys.executable, "-c", _CHILD, str(bundle), str(source), precision, mode, json.dumps(settings)]
    done = subprocess.run(command, env=env, cwd=tree, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"error: a run failed ({tree}, {settings}):\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def measure(
    bundle: Path,
    source: Path,
    *,
    precision: str,
    mode: str,
    variants: dict[str, dict[str, Any]],
    trees: dict[str, Path],
    rounds: int,
) -> dict[str, Any]:
    """Every (tree, variant) ``rounds`` times in alternating order; the medians and the ratios to the first."""
    names = [(tree, variant) for tree in trees for variant in variants]
    runs: dict[str, list[dict[str, Any]]] = {f"{t}/{v}": [] for t, v in names}
    for round_ in range(rounds):
        for tree, variant in names if round_ % 2 == 0 else list(reversed(names)):
            result = run_once(trees[tree], bundle, source, precision=precision, mode=mode, settings=variants[variant])
            runs[f"{tree}/{variant}"].append(result)
            print(f"round {round_}: {tree}/{variant} {result['frames_per_s']:.1f} frames/s (load "
                  f"{result['load_before']:.2f} -> {result['load_after']:.2f})", flush=True)  # fmt: skip
    first = next(iter(runs))
    base = statistics.median(r["frames_per_s"] for r in runs[first])
    summary = {}
    for name, results in runs.items():
        median = statistics.median(r["frames_per_s"] for r in results)
        summary[name] = {"median_frames_per_s": median, "ratio_to_first": median / base, "runs": results}
    loads = [r[k] for results in runs.values() for r in results for k in ("load_before", "load_after")]
    return {
        "format": "edgeaff-pipeline-ab",
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "bundle": str(bundle), "source": str(source), "precision": precision, "mode": mode, "rounds": rounds,
        "trees": {k: str(v) for k, v in trees.items()}, "variants": variants,
        "load_average_1min": [min(loads), max(loads)], "cpus": os.cpu_count(), "results": summary,
    }  # fmt: skip


def render_markdown(document: dict[str, Any]) -> str:
    """The comparison as a Markdown table."""
    low, high = document["load_average_1min"]
    lines = [
        f"# {document['precision']} {document['mode']}: {Path(document['bundle']).name} on "
        f"{Path(document['source']).name}",
        "",
        f"{document['date']}; {document['rounds']} alternating rounds; 1-minute load average {low:.2f}-{high:.2f}.",
        "",
        "| variant | median frames/s | runs | × the first |",
        "|---|---|---|---|",
    ]
    for name, entry in document["results"].items():
        runs = ", ".join(f"{r['frames_per_s']:.1f}" for r in entry["runs"])
        lines.append(f"| {name} | {entry['median_frames_per_s']:.1f} | {runs} | {entry['ratio_to_first']:.2f} |")
    return "\n".join(lines) + "\n"


def main() -> int:
    """Parse arguments, measure, write."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bundle", type=Path, required=True)
    parser.add_argument("--source", type=Path, required=True)
    parser.add_argument("--precision", default="int8")
    parser.add_argument("--mode", default="offline", choices=["offline", "stream"])
    parser.add_argument("--variant", action="append", default=[], help="NAME=JSON of Pipeline settings")
    parser.add_argument("--tree", action="append", default=[], help="NAME=PATH of an edgeaff checkout")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--markdown", type=Path)
    args = parser.parse_args()
    if not 1 <= args.rounds <= 50:
        raise SystemExit("error: --rounds must be 1..50")
    variants = {name: json.loads(value) for name, value in _pairs(args.variant, "--variant").items()} or {"default": {}}
    trees = {name: Path(value).resolve() for name, value in _pairs(args.tree, "--tree").items()} or {"this": REPO}
    document = measure(
        args.bundle, args.source, precision=args.precision, mode=args.mode, variants=variants, trees=trees,
        rounds=args.rounds,
    )  # fmt: skip
    text = render_markdown(document)
    print(text)
    for path, content in ((args.json, json.dumps(document, indent=2) + "\n"), (args.markdown, text)):
        if path is not None:
            with atomic_output(path) as tmp:
                tmp.write_text(content)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
