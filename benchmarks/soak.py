"""Soak of a reconnecting live source: a real RTSP server on loopback, killed and restarted on a schedule, read at
the source level for a long time, with this process's memory, open files and threads sampled as it goes.

Usage::

    python benchmarks/soak.py [--duration 600] [--restart-every 30] [--down 2] [--fps 120] [--size 128x96]
                              [--sample-every 10] [--json benchmarks/results/soak.json]

Needs GStreamer's RTSP server for the system Python (Debian: ``gstreamer1.0-rtsp gir1.2-gst-rtsp-server-1.0
gstreamer1.0-plugins-base gstreamer1.0-plugins-good gstreamer1.0-plugins-ugly python3-gi``; ``.ci/run`` installs
them). Prints a Markdown table of the samples and the totals, and writes the same with the machine stamp as JSON.
Memory is flat when the RSS of the last samples matches the first samples after the first reconnection; file
descriptors and threads should not move at all while the stream is up, and return to their starting count after.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tools"))  # the RTSP test server and the soak loop, shared with the soak test

from live_soak import SoakResult, SoakSettings, run_soak  # noqa: E402
from rtsp_server import rtsp_server_problem  # noqa: E402

from edgeaff.bench.stamp import load_average, make_stamp  # noqa: E402
from edgeaff.runtime.files import atomic_output  # noqa: E402
from edgeaff.runtime.io.sources import ReconnectPolicy  # noqa: E402

MAX_DURATION_S = 7 * 24 * 3600.0


def steady_growth_mib(result: SoakResult) -> float:
    """RSS of the last third of the samples after the first reconnection minus that of the first third (means)."""
    steady = [sample.rss_mib for sample in result.samples if sample.gaps >= 1]
    if len(steady) < 3:
        return 0.0
    third = len(steady) // 3
    return round(sum(steady[-third:]) / third - sum(steady[:third]) / third, 2)


def _positive(text: str) -> float:
    value = float(text)
    if not 0 < value <= MAX_DURATION_S:
        raise argparse.ArgumentTypeError(f"must be more than 0 and at most {MAX_DURATION_S:g} s, got {text}")
    return value


def main() -> None:
    """Run the soak and report it (see the module docstring)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=_positive, default=600.0, help="seconds of reading")
    parser.add_argument("--restart-every", type=_positive, default=30.0, help="seconds between server kills")
    parser.add_argument("--down", type=_positive, default=2.0, help="seconds the server stays down")
    parser.add_argument("--fps", type=int, default=120, choices=range(1, 241), metavar="1..240")
    parser.add_argument("--size", default="128x96", help="frame size WIDTHxHEIGHT")
    parser.add_argument("--sample-every", type=_positive, default=10.0, help="seconds between samples")
    parser.add_argument("--json", type=Path, default=None, help="write the results here")
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.lower().split("x"))
    if not (16 <= width <= 1920 and 16 <= height <= 1080):
        parser.error(f"--size must be within 16x16 .. 1920x1080, got {args.size}")
    problem = rtsp_server_problem()
    if problem is not None:
        parser.error(problem)

    settings = SoakSettings(
        duration_s=args.duration, restart_every_s=args.restart_every, down_s=args.down, fps=args.fps, width=width,
        height=height, sample_every_s=args.sample_every,
        policy=ReconnectPolicy(interval_s=0.2, backoff=2.0, max_interval_s=1.0, give_up_s=max(10.0, 4 * args.down)),
    )  # fmt: skip
    load_before = load_average()
    result = run_soak(settings, report=True)
    growth = steady_growth_mib(result)
    recorded = {**dataclasses.asdict(settings), "policy": dataclasses.asdict(settings.policy)}
    stamp = make_stamp(settings=recorded, load_before=load_before)
    print(f"\nSoak of a reconnecting RTSP source, {args.duration:g} s, server killed every {args.restart_every:g} s "
          f"for {args.down:g} s, {args.fps} fps {width}x{height} with audio; {stamp['device']}\n")  # fmt: skip
    print("| t s | frames | gaps | restarts | video s | audio s | RSS MiB | fds | threads |")
    print("|---|---|---|---|---|---|---|---|---|")
    for s in [result.before, *result.samples, result.after]:
        print(f"| {s.t_s:.1f} | {s.frames} | {s.gaps} | {s.restarts} | {s.video_s:.2f} | {s.audio_s:.2f} | "
              f"{s.rss_mib:.1f} | {s.fds} | {s.threads} |")  # fmt: skip
    print(f"\nframes {result.frames}, gaps {result.gaps}, restarts {result.restarts}, dropped "
          f"{result.dropped_frames}, reconnect attempts {result.outages.attempts}, lost {result.outages.lost_s:.1f} s; "
          f"steady RSS growth {growth:+.2f} MiB; fds {result.before.fds} before, {result.after.fds} after; "
          f"ended: {result.ended}")  # fmt: skip
    if args.json is not None:
        report = {
            "stamp": stamp,
            "samples": [dataclasses.asdict(s) for s in result.samples],
            "before": dataclasses.asdict(result.before),
            "after": dataclasses.asdict(result.after),
            "totals": {
                "frames": result.frames,
                "gaps": result.gaps,
                "restarts": result.restarts,
                "dropped_frames": result.dropped_frames,
                "outages": dataclasses.asdict(result.outages),
                "steady_rss_growth_mib": growth,
                "ended": result.ended,
            },
        }
        with atomic_output(args.json) as tmp:
            tmp.write_text(json.dumps(report, indent=2) + "\n")
        print(f"\nwrote {args.json}")


if __name__ == "__main__":
    main()
