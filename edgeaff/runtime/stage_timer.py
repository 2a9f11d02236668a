"""Per-stage wall-clock timers for the runtime pipeline and the benchmarks.

A stage is timed per call (a call may process several frames, e.g. a batch of face crops); the summary gives the
number of calls and frames, the mean and the 50th/90th/99th percentiles of the per-call milliseconds, the total,
and the milliseconds per frame. Samples are kept in compact arrays (8 bytes each).
"""

from __future__ import annotations

import array
import contextlib
import time
from collections.abc import Iterator
from typing import Any

import numpy as np

PERCENTILES = (50, 90, 99)


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
        self._samples: dict[str, array.array[float]] = {}
        self._frames: dict[str, int] = {}

    @contextlib.contextmanager
    def measure(self, stage: str, *, frames: int = 1) -> Iterator[None]:
        """Time the body as one call of ``stage`` that handled ``frames`` frames."""
        start = time.perf_counter()
        try:
            yield
        finally:
            self.add(stage, (time.perf_counter() - start) * 1000.0, frames=frames)

    def add(self, stage: str, milliseconds: float, *, frames: int = 1) -> None:
        """Record one call of ``stage`` that took ``milliseconds`` for ``frames`` frames."""
        self._samples.setdefault(stage, array.array("d")).append(float(milliseconds))
        self._frames[stage] = self._frames.get(stage, 0) + frames

    def stages(self) -> list[str]:
        """Stage names in the order they were first recorded."""
        return list(self._samples)

    def values(self, stage: str) -> np.ndarray:
        """All per-call milliseconds of ``stage`` (a copy)."""
        return np.asarray(self._samples.get(stage, array.array("d")), dtype=np.float64).copy()

    def summary(self) -> dict[str, dict[str, Any]]:
        """``{stage: {calls, frames, mean_ms, p50_ms, p90_ms, p99_ms, total_ms, ms_per_frame}}``."""
        report = {}
        for stage, samples in self._samples.items():
            values = np.asarray(samples, dtype=np.float64)
            frames = self._frames.get(stage, 0)
            entry: dict[str, Any] = {"calls": len(values), "frames": frames, "mean_ms": float(values.mean())}
            for q, value in zip(PERCENTILES, np.percentile(values, PERCENTILES), strict=True):
                entry[f"p{q}_ms"] = float(value)
            entry["total_ms"] = float(values.sum())
            entry["ms_per_frame"] = float(values.sum() / frames) if frames else None
            report[stage] = entry
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
