"""Latency statistics, repetition budgets and interleaved A/B timing.

Percentiles use numpy's default (linear interpolation between order statistics), the same rule as the runtime's
:class:`~edgeaff.runtime.pipeline.timing.StageTimer`, so a stage's numbers read the same in ``edgeaff infer`` summaries
and here. Side-by-side comparisons alternate their order in every pair (A B, then B A, ...) and report the
**median of the per-pair ratios**: on a shared machine the load drifts over seconds, and a ratio of two
measurements taken back to back is steadier than a ratio of two medians taken minutes apart.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from edgeaff.runtime.errors import InvalidInputError

PERCENTILES = (50, 90, 99)


@dataclasses.dataclass(frozen=True)
class LatencyStats:
    """Milliseconds per call of one measured thing.

    Attributes:
        count: timed calls.
        frames: video frames those calls handled together (0 where a call is not tied to frames).
        mean_ms, p50_ms, p90_ms, p99_ms, min_ms, max_ms: per-call milliseconds.
        total_ms: sum over the calls.
    """

    count: int
    frames: int
    mean_ms: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    min_ms: float
    max_ms: float
    total_ms: float

    @property
    def ms_per_frame(self) -> float | None:
        """Total milliseconds per frame handled (``None`` when the calls handled no frames)."""
        return self.total_ms / self.frames if self.frames else None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form, ``ms_per_frame`` included."""
        return {**dataclasses.asdict(self), "ms_per_frame": self.ms_per_frame}


def latency_stats(samples_ms: Sequence[float] | np.ndarray, *, frames: int = 0) -> LatencyStats:
    """Summarise per-call milliseconds.

    Args:
        samples_ms: one duration per call (at least one).
        frames: frames those calls handled in total.

    Raises:
        InvalidInputError: no samples, or a sample that is negative or not finite.

    Example:
        >>> latency_stats([1.0, 2.0, 3.0, 4.0]).p50_ms
        2.5
    """
    values = np.asarray(samples_ms, dtype=np.float64).reshape(-1)
    if values.size == 0:
        raise InvalidInputError("no timing samples to summarise")
    if not np.all(np.isfinite(values)) or np.any(values < 0):
        raise InvalidInputError("timing samples must be finite and non-negative")
    p50, p90, p99 = (float(v) for v in np.percentile(values, PERCENTILES))
    return LatencyStats(
        count=int(values.size),
        frames=int(frames),
        mean_ms=float(values.mean()),
        p50_ms=p50,
        p90_ms=p90,
        p99_ms=p99,
        min_ms=float(values.min()),
        max_ms=float(values.max()),
        total_ms=float(values.sum()),
    )


@dataclasses.dataclass(frozen=True)
class Repeats:
    """How many timed repetitions: a fixed count, or as many as fit in a time budget.

    Attributes:
        iterations: exact number of timed repetitions (wins over ``duration_s``).
        duration_s: otherwise, repeat until this many seconds of timed work have passed.
        minimum: with a time budget, at least this many repetitions.
        warmup: untimed repetitions first.
    """

    iterations: int | None = None
    duration_s: float | None = 5.0
    minimum: int = 3
    warmup: int = 2

    def __post_init__(self) -> None:
        if self.iterations is None and self.duration_s is None:
            raise InvalidInputError("give a number of iterations or a duration")
        if self.iterations is not None and self.iterations < 1:
            raise InvalidInputError(f"--iterations must be at least 1, got {self.iterations}")
        if self.duration_s is not None and not self.duration_s > 0:
            raise InvalidInputError(f"--duration must be positive, got {self.duration_s}")
        if self.warmup < 0 or self.minimum < 1:
            raise InvalidInputError(f"--warmup must be >= 0 (got {self.warmup}) and the minimum >= 1")

    def more(self, done: int, elapsed_s: float) -> bool:
        """Whether another timed repetition is due after ``done`` of them took ``elapsed_s`` seconds."""
        if self.iterations is not None:
            return done < self.iterations
        assert self.duration_s is not None  # checked in __post_init__
        return done < self.minimum or elapsed_s < self.duration_s

    def with_minimum(self, minimum: int) -> Repeats:
        """The same budget with another minimum count."""
        return dataclasses.replace(self, minimum=minimum)


def time_calls(call: Callable[[], object], repeats: Repeats) -> list[float]:
    """Milliseconds of each timed call of ``call`` after ``repeats.warmup`` untimed ones."""
    for _ in range(repeats.warmup):
        call()
    samples: list[float] = []
    elapsed = 0.0
    while repeats.more(len(samples), elapsed):
        start = time.perf_counter()
        call()
        seconds = time.perf_counter() - start
        elapsed += seconds
        samples.append(seconds * 1000.0)
    return samples


@dataclasses.dataclass(frozen=True)
class PairedTiming:
    """Two ways of doing the same work, timed in alternating pairs.

    Attributes:
        name: what is compared.
        a_label, b_label: the two sides; ``ratio`` is how many times longer B takes than A.
        a, b: each side's per-call statistics.
        ratio: median over pairs of ``b_ms / a_ms``.
        ratio_low, ratio_high: 25th and 75th percentile of the per-pair ratios (the spread load causes).
        pairs: timed pairs.
        note: what one call of each side does.
    """

    name: str
    a_label: str
    b_label: str
    a: LatencyStats
    b: LatencyStats
    ratio: float
    ratio_low: float
    ratio_high: float
    pairs: int
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        document = dataclasses.asdict(self)
        document["a"], document["b"] = self.a.to_dict(), self.b.to_dict()
        return document


def paired_ratio(a_ms: Sequence[float], b_ms: Sequence[float]) -> tuple[float, float, float]:
    """(median, 25th, 75th percentile) of the per-pair ratios ``b / a``.

    Raises:
        InvalidInputError: the sides differ in length, are empty, or A has a zero duration.

    Example:
        >>> paired_ratio([1.0, 2.0, 4.0], [10.0, 10.0, 10.0])[0]
        5.0
    """
    a = np.asarray(a_ms, dtype=np.float64)
    b = np.asarray(b_ms, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 1 or a.size == 0:
        raise InvalidInputError(f"paired timings need two equally long, non-empty lists; got {a.shape} and {b.shape}")
    if np.any(a <= 0):
        raise InvalidInputError("a paired timing has a zero or negative duration on side A")
    ratios = b / a
    low, median, high = (float(v) for v in np.percentile(ratios, [25, 50, 75]))
    return median, low, high


def time_interleaved(
    first: Callable[[], object],
    second: Callable[[], object],
    repeats: Repeats,
    *,
    name: str,
    labels: tuple[str, str],
    frames: tuple[int, int] = (0, 0),
    note: str = "",
) -> PairedTiming:
    """Time ``first`` (A) and ``second`` (B) in alternating pairs and compare them.

    Pair k runs A then B when k is even, B then A when it is odd, so neither side always runs on a warmer cache.
    ``repeats.warmup`` untimed pairs come first; the budget counts pairs.

    Args:
        first, second: the two sides (each call does the same amount of work every time).
        repeats: number of pairs, or a time budget for them.
        name: what is compared.
        labels: names of A and B.
        frames: frames one call of A and of B handles (for ms/frame).
        note: what one call does.
    """
    for _ in range(repeats.warmup):
        first()
        second()
    a_ms: list[float] = []
    b_ms: list[float] = []
    elapsed = 0.0
    while repeats.more(len(a_ms), elapsed):
        order = ((first, a_ms), (second, b_ms)) if len(a_ms) % 2 == 0 else ((second, b_ms), (first, a_ms))
        for call, samples in order:
            start = time.perf_counter()
            call()
            seconds = time.perf_counter() - start
            elapsed += seconds
            samples.append(seconds * 1000.0)
    ratio, low, high = paired_ratio(a_ms, b_ms)
    return PairedTiming(
        name=name,
        a_label=labels[0],
        b_label=labels[1],
        a=latency_stats(a_ms, frames=frames[0] * len(a_ms)),
        b=latency_stats(b_ms, frames=frames[1] * len(b_ms)),
        ratio=ratio,
        ratio_low=low,
        ratio_high=high,
        pairs=len(a_ms),
        note=note,
    )
