"""Per-stage wall-clock timers for the runtime pipeline and the benchmarks.

A stage is timed per call (a call may process several frames, e.g. a batch of face crops); the summary gives the
number of calls and frames, the mean and the 50th/90th/99th percentiles of the per-call milliseconds, the total,
and the milliseconds per frame. Count, total and mean are exact. Percentiles are exact up to
:data:`MAX_SAMPLES` calls per stage; beyond that they come from a uniform random sample of that many calls
(reservoir sampling), so a stream that runs for days keeps a fixed amount of memory. A timer may be fed from
several threads (the prefetch thread times reading and faces while the main thread times the graphs).
"""

from __future__ import annotations

import array
import contextlib
import random
import threading
import time
from collections.abc import Iterator
from typing import Any

import numpy as np

PERCENTILES = (50, 90, 99)
MAX_SAMPLES = 100_000  # per stage: 800 kB


class _Stage:
    def __init__(self, seed: int) -> None:
        self.samples: array.array[float] = array.array("d")
        self.calls = 0
        self.frames = 0
        self.total = 0.0
        self._random = random.Random(seed)

    def add(self, milliseconds: float, frames: int) -> None:
        self.calls += 1
        self.frames += frames
        self.total += milliseconds
        if len(self.samples) < MAX_SAMPLES:
            self.samples.append(milliseconds)
            return
        slot = self._random.randrange(self.calls)  # keep each call with probability MAX_SAMPLES / calls
        if slot < MAX_SAMPLES:
            self.samples[slot] = milliseconds


class StageTimer:
    """Collects durations per named stage.

    Example:
        >>> timer = StageTimer()
        >>> with timer.measure("visual", frames=8):
        ...     pass
        >>> timer.summary()["visual"]["frames"]
        8
    """

    def __init__(self) -> None:
        self._stages: dict[str, _Stage] = {}
        self._lock = threading.Lock()

    @contextlib.contextmanager
    def measure(self, stage: str, *, frames: int = 1) -> Iterator[None]:
        """Time the body as one call of ``stage`` that handled ``frames`` frames."""
        start = time.perf_counter()
        try:
            yield
        finally:
            self.add(stage, (time.perf_counter() - start) * 1000.0, frames=frames)

    def add(self, stage: str, milliseconds: float, *, frames: int = 1) -> None:
        """Record one call of ``stage`` that took ``milliseconds`` for ``frames`` frames (thread-safe)."""
        with self._lock:
            entry = self._stages.get(stage)
            if entry is None:
                entry = self._stages[stage] = _Stage(seed=len(self._stages))
            entry.add(float(milliseconds), frames)

    def stages(self) -> list[str]:
        """Stage names in the order they were first recorded."""
        return list(self._stages)

    def values(self, stage: str) -> np.ndarray:
        """The kept per-call milliseconds of ``stage`` (all of them up to :data:`MAX_SAMPLES` calls; a copy)."""
        entry = self._stages.get(stage)
        return np.asarray(entry.samples if entry else [], dtype=np.float64).copy()

    def summary(self) -> dict[str, dict[str, Any]]:
        """``{stage: {calls, frames, mean_ms, p50_ms, p90_ms, p99_ms, total_ms, ms_per_frame}}``."""
        report = {}
        for stage, entry in self._stages.items():
            values = np.asarray(entry.samples, dtype=np.float64)
            item: dict[str, Any] = {"calls": entry.calls, "frames": entry.frames, "mean_ms": entry.total / entry.calls}
            for q, value in zip(PERCENTILES, np.percentile(values, PERCENTILES), strict=True):
                item[f"p{q}_ms"] = float(value)
            item["total_ms"] = entry.total
            item["ms_per_frame"] = entry.total / entry.frames if entry.frames else None
            report[stage] = item
        return report


def format_summary(summary: dict[str, dict[str, Any]]) -> str:
    """A small fixed-width table of :meth:`StageTimer.summary` for the terminal."""
    lines = [f"{'stage':<14}{'calls':>8}{'frames':>8}{'mean ms':>10}{'p50':>9}{'p90':>9}{'p99':>9}{'ms/frame':>10}"]
    for stage, entry in summary.items():
        per_frame = entry["ms_per_frame"]
        lines.append(
            f"{stage:<14}{entry['calls']:>8}{entry['frames']:>8}{entry['mean_ms']:>10.2f}{entry['p50_ms']:>9.2f}"
            f"{entry['p90_ms']:>9.2f}{entry['p99_ms']:>9.2f}{'-' if per_frame is None else f'{per_frame:.2f}':>10}"
        )
    return "\n".join(lines)
