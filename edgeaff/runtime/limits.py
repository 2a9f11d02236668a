"""Ranges of numeric options: one place for the rules every command (and the library API) applies.

No option may make edgeaff take unbounded threads, processes, memory, disk or time. The rules:

=====================  ====================================================================================
threads                1 .. :func:`max_threads` = :data:`THREADS_PER_CORE` × the cores this process may use.
                       More threads than cores never computes faster; the small multiple still lets a run be
                       repeated with the thread count it was made with (training results depend on it) on a
                       smaller machine.
worker processes       1 .. :func:`usable_cores` (each worker holds its own models and buffers).
epochs, counts         at least 1, at most a stated ceiling.
batch sizes            1 .. :data:`MAX_BATCH_SIZE`.
time-outs (seconds)    above 0, at most :data:`MAX_TIMEOUT_S`.
seeds                  0 .. 2**32 - 1 (what every random generator edgeaff uses accepts).
=====================  ====================================================================================

Every check raises :class:`~edgeaff.runtime.errors.InvalidInputError` naming the option, the range and the
value, so the CLI prints one line. Example::

    >>> check_int_range(3, option="--epochs", low=1, high=10_000)
    3
"""

from __future__ import annotations

import math
import os

from edgeaff.runtime.errors import InvalidInputError

THREADS_PER_CORE = 4
MAX_BATCH_SIZE = 1024
MAX_EPOCHS = 10_000
MAX_TIMEOUT_S = 24 * 3600.0
MAX_SEED = 2**32 - 1


def usable_cores() -> int:
    """CPU cores this process may run on (its affinity mask where the OS has one, else ``os.cpu_count()``)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def max_threads() -> int:
    """Largest thread count an option may ask for: :data:`THREADS_PER_CORE` × :func:`usable_cores`."""
    return THREADS_PER_CORE * usable_cores()


def check_int_range(value: int, *, option: str, low: int, high: int | None = None, note: str = "") -> int:
    """``value`` if ``low <= value <= high`` (no upper bound when ``high`` is ``None``), else a one-line error.

    Args:
        value: the option's value.
        option: its name as the user typed it, e.g. ``"--epochs"``.
        low: smallest value allowed.
        high: largest value allowed.
        note: why the bound is what it is, appended to the message.

    Raises:
        InvalidInputError: outside the range (or not an integer).
    """
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidInputError(f"{option} must be a whole number, got {value!r}")
    if value < low or (high is not None and value > high):
        allowed = f"at least {low}" if high is None else f"between {low} and {high}"
        raise InvalidInputError(f"{option} must be {allowed}, got {value}{f' ({note})' if note else ''}")
    return value


def check_float_range(
    value: float, *, option: str, low: float, high: float, low_open: bool = False, note: str = ""
) -> float:
    """``value`` if it is a finite number in ``[low, high]`` (``(low, high]`` with ``low_open``).

    Raises:
        InvalidInputError: NaN, infinite or outside the range.
    """
    number = float(value)
    below = number <= low if low_open else number < low
    if not math.isfinite(number) or below or number > high:
        bracket = "(" if low_open else "["
        raise InvalidInputError(
            f"{option} must be in {bracket}{low:g}, {high:g}], got {value}{f' ({note})' if note else ''}"
        )
    return number


def check_threads(value: int | None, *, option: str = "--threads") -> int | None:
    """A thread count: ``None`` (the library's default) or 1 .. :func:`max_threads`.

    This is the rule for every ``--threads`` option (train, infer, bench).

    Raises:
        InvalidInputError: outside the range.
    """
    if value is None:
        return None
    cores = usable_cores()
    return check_int_range(
        value, option=option, low=1, high=max_threads(), note=f"{THREADS_PER_CORE} per core, {cores} core(s) here"
    )


def check_workers(value: int, *, option: str = "--workers") -> int:
    """A number of worker processes: 1 .. :func:`usable_cores`.

    Raises:
        InvalidInputError: outside the range.
    """
    cores = usable_cores()
    return check_int_range(value, option=option, low=1, high=cores, note=f"one per core at most; {cores} here")


def check_timeout(value: float, *, option: str = "--timeout") -> float:
    """A time-out in seconds: above 0, at most :data:`MAX_TIMEOUT_S`.

    Raises:
        InvalidInputError: not a finite number in range.
    """
    return check_float_range(value, option=option, low=0.0, high=MAX_TIMEOUT_S, low_open=True)


def check_batch_size(value: int | None, *, option: str = "--batch-size") -> int | None:
    """A batch size: ``None`` (the default) or 1 .. :data:`MAX_BATCH_SIZE`.

    Raises:
        InvalidInputError: outside the range.
    """
    return None if value is None else check_int_range(value, option=option, low=1, high=MAX_BATCH_SIZE)


def check_seed(value: int, *, option: str = "--seed") -> int:
    """A random seed: 0 .. :data:`MAX_SEED`.

    Raises:
        InvalidInputError: outside the range.
    """
    return check_int_range(value, option=option, low=0, high=MAX_SEED)
