"""Throughput of ``edgeaff infer`` on many videos: one worker, two workers, and the shell loop a batch replaces.

The same ``--videos`` synthetic videos (a real face drifting over a background, the speech fixture as sound; see
``infer_speed.py``) go through

* ``loop``: ``edgeaff infer VIDEO`` once per video, a new process each time (what a shell loop does);
* ``batch-1`` and ``batch-2``: ``edgeaff infer FOLDER --workers 1`` / ``--workers 2`` (fresh output folders);

each timed from the command's start to its end. In this process the script also times what one ``Pipeline`` costs
to open (median of three) and what each video then takes on it, which is the per-video start-up a batch pays once
per worker instead of once per video. Prints a table and writes JSON with the load average around each run.

Usage::

    python benchmarks/batch_speed.py [--bundle DIR | --backbone ir-tiny --folds 6] [--videos 8] [--seconds 10]
        [--size 480x360] [--work DIR] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from infer_speed import FPS, build_bundle, write_video


def _load() -> float:
    return round(os.getloadavg()[0], 2)


def _command(args: list[str]) -> dict[str, Any]:
    before = _load()
    started = time.perf_counter()
    result = subprocess.run([sys.executable, "-m", "edgeaff.cli", *args], capture_output=True, text=True, check=False)
    wall = time.perf_counter() - started
    if result.returncode != 0:
        raise SystemExit(f"edgeaff {' '.join(args)} failed:\n{result.stderr}")
    return {"wall_s": wall, "load_before": before, "load_after": _load()}


def _in_process(bundle: Path, videos: list[Path], out: Path) -> dict[str, Any]:
    from edgeaff.runtime import Pipeline, write_results

    opens = []
    for _ in range(3):
        started = time.perf_counter()
        with Pipeline(bundle):
            opens.append(time.perf_counter() - started)
    runs = []
    with Pipeline(bundle) as pipeline:
        for video in videos:
            started = time.perf_counter()
            write_results(pipeline.run(video), out, echo=lambda _: None, show=lambda _: None)
            runs.append(time.perf_counter() - started)
    return {"pipeline_open_s": statistics.median(opens), "opens_s": opens, "video_runs_s": runs}


def main() -> None:
    """Parse arguments, build what is missing, run, print and save."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bundle", type=Path, default=None, help="an existing bundle (else one is exported)")
    parser.add_argument("--backbone", default="ir-tiny", choices=["ir-tiny", "ir-small", "ir50"])
    parser.add_argument("--folds", type=int, default=6, help="folds of the exported bundle (2 models each)")
    parser.add_argument("--videos", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--size", default="480x360")
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "edgeaff-batch-bench")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.lower().split("x"))
    work = args.work
    bundle = args.bundle or build_bundle(work / f"{args.backbone}-{args.folds}", list(range(args.folds)), args.backbone)
    corpus = work / f"videos-{args.videos}x{args.seconds:g}s-{width}x{height}"
    corpus.mkdir(parents=True, exist_ok=True)
    videos = [corpus / f"clip{i:03d}.mp4" for i in range(args.videos)]
    for video in videos:
        if not video.is_file():
            write_video(video, seconds=args.seconds, width=width, height=height)
    frames = args.videos * round(args.seconds * FPS)
    runs: dict[str, dict[str, Any]] = {}
    out = Path(tempfile.mkdtemp(prefix="batch-speed-", dir=work))
    print(f"{args.videos} videos x {args.seconds:g} s at {FPS} fps ({frames} frames), bundle {bundle}")
    runs["in_process"] = _in_process(bundle, videos, out / "in-process")
    print(f"  pipeline open {runs['in_process']['pipeline_open_s']:.2f} s (median of 3)")
    loop = {"wall_s": 0.0, "load_before": _load()}
    for video in videos:
        loop["wall_s"] += _command(["infer", str(video), "--bundle", str(bundle), "-o", str(out / "loop")])["wall_s"]
    runs["loop"] = {**loop, "load_after": _load()}
    print(f"  loop: {runs['loop']['wall_s']:.1f} s")
    for workers in (1, 2):
        name = f"batch-{workers}"
        target = str(out / name)
        runs[name] = _command(["infer", str(corpus), "--bundle", str(bundle), "-o", target, "--workers", str(workers)])
        print(f"  {name}: {runs[name]['wall_s']:.1f} s")
    for run in runs.values():
        if "wall_s" in run:
            run["frames_per_second"] = frames / run["wall_s"]
            run["videos_per_hour"] = 3600.0 * args.videos / run["wall_s"]
    per_video = statistics.median(runs["in_process"]["video_runs_s"])
    removed = (runs["loop"]["wall_s"] - runs["batch-1"]["wall_s"]) / args.videos
    lines = [
        "| run | wall s | frames/s | videos/h | load avg before / after |",
        "|---|---|---|---|---|",
        *(
            f"| {name} | {r['wall_s']:.1f} | {r['frames_per_second']:.1f} | {r['videos_per_hour']:.0f} | "
            f"{r['load_before']} / {r['load_after']} |"
            for name, r in runs.items()
            if "wall_s" in r
        ),
        "",
        f"pipeline open (in process, median of 3): {runs['in_process']['pipeline_open_s']:.2f} s; "
        f"one {args.seconds:g} s video on an open pipeline: {per_video:.2f} s (median); "
        f"start-up a batch removes per video (loop - batch-1) / videos: {removed:.2f} s",
    ]
    print("\n".join(lines))
    if args.json is not None:
        document = {
            "benchmark": "batch_speed",
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "machine": {"platform": platform.platform(), "processor": platform.processor(), "cpus": os.cpu_count()},
            "settings": {**vars(args), "bundle": str(bundle), "work": str(work), "json": str(args.json)},
            "frames": frames,
            "runs": runs,
            "startup_removed_per_video_s": removed,
            "video_on_open_pipeline_s": per_video,
        }
        args.json.write_text(json.dumps(document, indent=1))


if __name__ == "__main__":
    main()
