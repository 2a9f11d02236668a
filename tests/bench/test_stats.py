"""Latency statistics, repetition budgets and interleaved pairs (edgeaff.bench.stats)."""

from __future__ import annotations

import numpy as np
import pytest

from edgeaff.bench.stats import Repeats, latency_stats, paired_ratio, time_calls, time_interleaved
from edgeaff.runtime.errors import InvalidInputError


def test_percentiles_match_numpy_on_known_samples() -> None:
    rng = np.random.default_rng(4)
    samples = rng.lognormal(1.0, 0.8, 257)
    stats = latency_stats(samples, frames=514)
    for q, value in ((50, stats.p50_ms), (90, stats.p90_ms), (99, stats.p99_ms)):
        assert value == pytest.approx(np.percentile(samples, q), rel=1e-12)
    assert stats.count == 257 and stats.frames == 514
    assert stats.mean_ms == pytest.approx(samples.mean(), rel=1e-12)
    assert stats.min_ms == samples.min() and stats.max_ms == samples.max()
    assert stats.ms_per_frame == pytest.approx(samples.sum() / 514, rel=1e-12)


def test_percentiles_by_hand_linear_interpolation() -> None:
    # 1..100: rank (n-1)*q/100 -> p50 = 50.5, p90 = 90.1, p99 = 99.01 (linear between order statistics)
    stats = latency_stats(np.arange(1.0, 101.0))
    assert (stats.p50_ms, stats.p90_ms, stats.p99_ms) == pytest.approx((50.5, 90.1, 99.01), abs=1e-9)
    single = latency_stats([7.0])
    assert single.p50_ms == single.p99_ms == single.mean_ms == 7.0
    assert single.ms_per_frame is None  # no frames handled
    assert single.to_dict()["ms_per_frame"] is None


@pytest.mark.parametrize("bad", [[], [1.0, float("nan")], [1.0, -0.5], [float("inf")]])
def test_bad_samples_are_refused(bad: list[float]) -> None:
    with pytest.raises(InvalidInputError):
        latency_stats(bad)


def test_paired_ratio_is_the_median_of_per_pair_ratios_not_a_ratio_of_medians() -> None:
    a = [1.0, 2.0, 10.0]
    b = [3.0, 4.0, 40.0]  # per-pair ratios 3, 2, 4 -> median 3; median(b)/median(a) would be 2
    median, low, high = paired_ratio(a, b)
    assert median == pytest.approx(3.0)
    assert (low, high) == pytest.approx((np.percentile([3, 2, 4], 25), np.percentile([3, 2, 4], 75)))
    assert np.median(b) / np.median(a) == pytest.approx(2.0)  # the figure a naive comparison would report


def test_paired_ratio_refuses_unequal_or_empty_sides() -> None:
    with pytest.raises(InvalidInputError):
        paired_ratio([1.0], [1.0, 2.0])
    with pytest.raises(InvalidInputError):
        paired_ratio([], [])
    with pytest.raises(InvalidInputError):
        paired_ratio([0.0], [1.0])


def test_interleaved_pairs_alternate_their_order_and_count_pairs() -> None:
    calls: list[str] = []
    timing = time_interleaved(
        lambda: calls.append("a"),
        lambda: calls.append("b"),
        Repeats(iterations=4, warmup=1),
        name="x",
        labels=("A", "B"),
        frames=(2, 3),
    )
    warmup, timed = calls[:2], calls[2:]
    assert warmup == ["a", "b"] and timed == ["a", "b", "b", "a", "a", "b", "b", "a"]  # then alternating
    assert timing.pairs == 4 and timing.a.count == 4 and timing.b.count == 4
    assert timing.a.frames == 8 and timing.b.frames == 12
    document = timing.to_dict()
    assert document["a"]["count"] == 4 and document["ratio"] == timing.ratio > 0


def test_repeats_budget() -> None:
    fixed = Repeats(iterations=3)
    assert [fixed.more(n, 1e9) for n in range(5)] == [True, True, True, False, False]
    timed = Repeats(duration_s=1.0, minimum=2)
    assert timed.more(0, 5.0) and timed.more(1, 5.0) and not timed.more(2, 5.0)
    assert timed.more(10, 0.5)
    assert len(time_calls(lambda: None, Repeats(iterations=5, warmup=0))) == 5
    for bad in (dict(iterations=0), dict(iterations=None, duration_s=None), dict(duration_s=0.0), dict(warmup=-1)):
        with pytest.raises(InvalidInputError):
            Repeats(**bad)  # type: ignore[arg-type]
