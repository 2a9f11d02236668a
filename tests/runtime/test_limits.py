"""edgeaff.runtime.limits: the one place where the ranges of numeric options are decided."""

from __future__ import annotations

import math
import os

import pytest

from edgeaff.runtime import limits
from edgeaff.runtime.errors import InvalidInputError


def test_cores_follow_the_affinity_mask() -> None:
    expected = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    assert limits.usable_cores() == expected
    assert limits.max_threads() == limits.THREADS_PER_CORE * expected


def test_threads_are_bounded_by_the_cores() -> None:
    assert limits.check_threads(None) is None
    assert limits.check_threads(1) == 1
    assert limits.check_threads(limits.max_threads()) == limits.max_threads()
    for bad in (0, -1, limits.max_threads() + 1, 100_000):
        with pytest.raises(InvalidInputError, match=rf"--threads must be between 1 and {limits.max_threads()}"):
            limits.check_threads(bad)
    with pytest.raises(InvalidInputError, match="--intra must be"):
        limits.check_threads(0, option="--intra")


def test_workers_are_bounded_by_the_cores() -> None:
    assert limits.check_workers(limits.usable_cores()) == limits.usable_cores()
    for bad in (0, limits.usable_cores() + 1):
        with pytest.raises(InvalidInputError, match="one per core at most"):
            limits.check_workers(bad)


def test_time_outs_batches_seeds_and_types() -> None:
    assert limits.check_timeout(0.5) == 0.5
    for bad in (0.0, -1.0, math.nan, math.inf, limits.MAX_TIMEOUT_S * 2):
        with pytest.raises(InvalidInputError, match=r"--timeout must be in \(0"):
            limits.check_timeout(bad)
    assert limits.check_batch_size(None) is None and limits.check_batch_size(1024) == 1024
    with pytest.raises(InvalidInputError, match="--batch-size must be between 1 and 1024, got 0"):
        limits.check_batch_size(0)
    assert limits.check_seed(2**32 - 1) == 2**32 - 1
    with pytest.raises(InvalidInputError, match="--seed must be between 0 and 4294967295, got -1"):
        limits.check_seed(-1)
    with pytest.raises(InvalidInputError, match="whole number"):
        limits.check_int_range(True, option="--n", low=0)  # type: ignore[arg-type]
