"""Live in stream mode: a file replayed as a camera would deliver it, at its own frame rate, through the pipeline.

A real-time target needs a source that does not wait for the pipeline. :class:`PacedSource` replays a media file in
real time: each frame is released at its presentation time and each audio chunk when its last sample would have
been captured, in that order (a file source delivers its audio ahead of the frames; a camera does not), by a
background reader that drops the oldest waiting frame when the pipeline falls behind (the runtime's own
:class:`~edgeaff.runtime.io.live_reader.LiveReader`, as for cameras and network streams). The pipeline runs in
stream mode (its defaults: prefetch thread, frames batched only while they wait) and every prediction's latency is
measured from its frame's release.

It keeps up when no frame was dropped and every frame got its prediction. Multimodal predictions are final only
when the frame's VGGish example is complete, 0.975 s of audio after the frame (the reference's look-ahead), so their
latency is at least that; the table also gives the latency beyond the look-ahead (the processing delay).

Usage::

    python benchmarks/live_speed.py --bundle BUNDLE --source VIDEO [--precision int8] [--speed 1.0] [--warmup 60]
        [--threads N] [--json OUT.json] [--markdown OUT.md]
"""

from __future__ import annotations

import argparse
import dataclasses
import heapq
import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np

from edgeaff.bench.stamp import load_average, make_stamp
from edgeaff.bench.stats import latency_stats
from edgeaff.runtime import AudioChunk, Pipeline, SourceInfo, VideoFrame, load_bundle, open_source
from edgeaff.runtime.files import atomic_output
from edgeaff.runtime.io.live_reader import LiveReader
from edgeaff.runtime.io.sources import SourceItem

AUDIO_RATE = 16000.0  # the sources' audio rate (AudioChunk)
REORDER_S = 3.0  # how far (in source seconds) items are read ahead to release them in capture order


class PacedSource:
    """``path`` replayed in real time (``speed`` × its own rate) as a live source (see the module docstring)."""

    def __init__(self, path: Path, *, speed: float = 1.0, max_queued_frames: int = 8, timeout_s: float = 10.0) -> None:
        if not speed > 0:
            raise ValueError("speed must be positive")
        self.path, self.speed = path, speed
        self._inner: Any = open_source(path)
        self._reader: LiveReader | None = None
        self._max_queued = max_queued_frames
        self._timeout_s = timeout_s
        self.info: SourceInfo = self._inner.info
        self.released = 0

    @property
    def dropped_frames(self) -> int:
        """Frames the reader dropped because the pipeline fell behind."""
        return 0 if self._reader is None else self._reader.dropped_frames

    def __enter__(self) -> PacedSource:
        self._inner.__enter__()
        self.info = dataclasses.replace(self._inner.info, live=True, frame_count=None)
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._reader is not None:
            self._reader.stop()
        self._inner.__exit__(exc_type, exc, tb)

    def _due(self) -> Iterator[tuple[float, SourceItem]]:
        """The file's items, each with the seconds after the start at which a camera would deliver it."""
        first_t: float | None = None
        samples = 0
        for item in self._inner:
            if isinstance(item, VideoFrame):
                first_t = item.t_s if first_t is None else first_t
                yield item.t_s - first_t, item
            elif isinstance(item, AudioChunk):
                samples += item.samples.size
                yield samples / AUDIO_RATE, item  # when its last sample would have been captured
            else:
                yield 0.0, item

    def _produce(self, stopping: Callable[[], bool]) -> Iterator[SourceItem]:
        # A file source delivers its audio up to 1.25 s ahead of the frames; a camera delivers both as they are
        # captured. Items are read up to REORDER_S ahead of the next one due and released in order of due time.
        pending: list[tuple[float, int, SourceItem]] = []
        items = self._due()
        latest, count, exhausted = 0.0, 0, False
        start: float | None = None
        while not stopping():
            while not exhausted and (not pending or latest < pending[0][0] + REORDER_S):
                entry = next(items, None)
                if entry is None:
                    exhausted = True
                    break
                latest = max(latest, entry[0])
                heapq.heappush(pending, (entry[0], count, entry[1]))
                count += 1
            if not pending:
                return
            due, _, item = heapq.heappop(pending)
            start = time.perf_counter() if start is None else start
            wait = start + due / self.speed - time.perf_counter()
            if wait > 0:
                time.sleep(wait)
            if isinstance(item, VideoFrame):
                self.released += 1
                yield dataclasses.replace(item, arrival=time.perf_counter())  # it "arrives" now
            else:
                yield item

    def __iter__(self) -> Iterator[SourceItem]:
        self._reader = LiveReader(
            self._produce, timeout_s=self._timeout_s, what=str(self.path), max_queued_frames=self._max_queued
        )
        self._reader.start()
        yield from self._reader


def measure(
    bundle_path: Path, source: Path, *, precision: str, threads: int | None, speed: float, warmup: int
) -> dict[str, Any]:
    """Warm the pipeline up on the first ``warmup`` frames, then replay ``source`` live and measure."""
    load_before = load_average()
    bundle = load_bundle(bundle_path)
    with Pipeline(bundle, precision=precision, mode="stream", threads=threads) as pipeline:
        if warmup:
            list(pipeline.run(source, max_frames=warmup))
        paced = PacedSource(source, speed=speed)
        started = time.perf_counter()
        run = pipeline.run(paced)
        latencies = [p.latency_ms for p in run if p.latency_ms is not None]
        wall = time.perf_counter() - started
        report = run.report()
    lookahead = float(report.get("audio_lookahead_ms") or 0.0)
    values = np.asarray(latencies, dtype=np.float64)
    predicted = len(latencies)
    fps = (report["source"]["fps"] or 30.0) * speed
    result = {
        "source_fps": fps,
        "frames_released": paced.released,
        "frames_predicted": predicted,
        "dropped_frames": report["source"]["dropped_frames"],
        "wall_s": wall,
        "predicted_per_s": predicted / wall if wall > 0 else None,
        "keeps_up": report["source"]["dropped_frames"] == 0 and predicted == paced.released,
        "audio_lookahead_ms": lookahead,
        "latency_ms": latency_stats(values).to_dict(),
        "latency_beyond_lookahead_ms": latency_stats(np.maximum(values - lookahead, 0.0)).to_dict(),
        "batches": report.get("batches"),
        "timing_ms": report["timing_ms"],
    }
    settings = {
        "bundle": str(bundle.root),
        "models": len(bundle.models),
        "kinds": sorted({m.kind.value for m in bundle.models}),
        "dimensions": sorted({m.dimension.value for m in bundle.models}),
        "backbone": sorted({m.backbone for m in bundle.models}),
        "backend": "ort-cpu",
        "precision": precision,
        "mode": "stream (live replay)",
        "threads": threads,
        "speed": speed,
        "source": str(source),
        "warmup_frames": warmup,
    }
    return {"format": "edgeaff-live-bench", "stamp": make_stamp(settings=settings, load_before=load_before),
            "live": result}  # fmt: skip


def render_markdown(document: dict[str, Any]) -> str:
    """The live measurement as a Markdown page."""
    stamp, live = document["stamp"], document["live"]
    settings = stamp["settings"]
    latency, beyond = live["latency_ms"], live["latency_beyond_lookahead_ms"]
    load = stamp["load_average"]
    timing = live["timing_ms"]
    stage_rows = [
        f"| {name} | {entry['calls']} | {entry['frames']} | {entry['mean_ms']:.2f} | {entry['p99_ms']:.2f} | "
        + ("-" if entry["ms_per_frame"] is None else f"{entry['ms_per_frame']:.2f}")
        + " |"
        for name, entry in timing.items()
    ]
    lines = [
        "# Live in stream mode",
        "",
        f"- device: {stamp['device']}; {stamp['machine'].get('isa_line', '')}",
        f"- date: {stamp['date']}; load average (1/5/15 min) before {load['before']}, after {load['after']}",
        f"- bundle: {settings['models']} models ({', '.join(settings['backbone'])}, {', '.join(settings['kinds'])}, "
        f"{', '.join(settings['dimensions'])}), {settings['precision']}, threads {settings['threads'] or 'auto'}",
        f"- source: {settings['source']} replayed at {live['source_fps']:.1f} fps (speed {settings['speed']:g}); "
        f"warm-up {settings['warmup_frames']} frames",
        "",
        "| frames released | predicted | dropped | keeps up | predictions/s | latency p50 / p90 / p99 ms "
        "| beyond the audio look-ahead p50 / p99 ms |",
        "|---|---|---|---|---|---|---|",
        f"| {live['frames_released']} | {live['frames_predicted']} | {live['dropped_frames']} "
        f"| **{'yes' if live['keeps_up'] else 'no'}** | {live['predicted_per_s']:.1f} "
        f"| {latency['p50_ms']:.0f} / {latency['p90_ms']:.0f} / {latency['p99_ms']:.0f} "
        f"| {beyond['p50_ms']:.0f} / {beyond['p99_ms']:.0f} |",
        "",
        f"The audio look-ahead is {live['audio_lookahead_ms']:.0f} ms: a multimodal prediction waits for its frame's "
        "VGGish example to be complete.",
        "",
        "| stage | calls | frames | mean ms | p99 ms | ms/frame |",
        "|---|---|---|---|---|---|",
        *stage_rows,
    ]
    return "\n".join(lines) + "\n"


def main() -> int:
    """Parse arguments, measure, write."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bundle", type=Path, required=True)
    parser.add_argument("--source", type=Path, required=True)
    parser.add_argument("--precision", default="int8")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--speed", type=float, default=1.0, help="replay speed (1.0: the file's own frame rate)")
    parser.add_argument("--warmup", type=int, default=60, help="frames run first, unpaced and untimed")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--markdown", type=Path)
    args = parser.parse_args()
    document = measure(
        args.bundle, args.source, precision=args.precision, threads=args.threads, speed=args.speed, warmup=args.warmup
    )
    text = render_markdown(document)
    print(text)
    for path, content in ((args.json, json.dumps(document, indent=2) + "\n"), (args.markdown, text)):
        if path is not None:
            with atomic_output(path) as tmp:
                tmp.write_text(content)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
