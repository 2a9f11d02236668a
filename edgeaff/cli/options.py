"""Checks of numeric command-line options, as typer callbacks (``typer.Option(..., callback=threads)``).

The rules themselves are in :mod:`edgeaff.runtime.limits` (the library API applies the same ones); these callbacks
apply them while the command line is parsed, so a bad value is one ``error:`` line before any work starts or any
file is written. Each callback reads the option's name from click, so one callback serves every command.

Example::

    threads: Annotated[int | None, typer.Option("--threads", callback=options.threads)] = None
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import click

from edgeaff.runtime import cluster, limits

T = TypeVar("T")


def _name(param: click.Parameter) -> str:
    opts = getattr(param, "opts", None) or []
    return max(opts, key=len) if opts else str(param.name)


def _optional(check: Callable[[T, str], T]) -> Callable[[click.Context, click.Parameter, T | None], T | None]:
    def callback(ctx: click.Context, param: click.Parameter, value: T | None) -> T | None:
        if value is None or ctx.resilient_parsing:
            return value
        return check(value, _name(param))

    return callback


threads = _optional(lambda v, o: limits.check_threads(v, option=o))
"""``--threads``: 1 .. 4 × the usable cores (:func:`edgeaff.runtime.limits.check_threads`)."""
workers = _optional(lambda v, o: limits.check_workers(v, option=o))
"""``--workers``: 1 .. the usable cores (:func:`edgeaff.runtime.limits.check_workers`)."""
timeout = _optional(lambda v, o: limits.check_timeout(v, option=o))
"""A time-out in seconds: (0, 24 h] (:func:`edgeaff.runtime.limits.check_timeout`)."""
batch_size = _optional(lambda v, o: limits.check_batch_size(v, option=o))
"""A batch size: 1 .. 1024 (:func:`edgeaff.runtime.limits.check_batch_size`)."""
seed = _optional(lambda v, o: limits.check_seed(v, option=o))
"""A seed: 0 .. 2**32 - 1 (:func:`edgeaff.runtime.limits.check_seed`)."""
epochs = _optional(lambda v, o: limits.check_int_range(v, option=o, low=1, high=limits.MAX_EPOCHS))
"""``--epochs``: 1 .. 10000."""
ray_address = _optional(lambda v, o: cluster.check_address(v, option=o))
"""``--ray``: auto, local, HOST:PORT or ray://HOST:PORT (:func:`edgeaff.runtime.cluster.check_address`)."""
device_index = _optional(lambda v, o: limits.check_int_range(v, option=o, low=0, high=63))
"""A CUDA device ordinal: 0 .. 63."""


def int_range(low: int, high: int | None = None) -> Callable[[click.Context, click.Parameter, int | None], int | None]:
    """A callback for an integer option in ``[low, high]`` (no upper bound when ``high`` is ``None``)."""
    return _optional(lambda v, o: limits.check_int_range(v, option=o, low=low, high=high))


def float_range(
    low: float, high: float, *, low_open: bool = False
) -> Callable[[click.Context, click.Parameter, float | None], float | None]:
    """A callback for a finite float option in ``[low, high]`` (``(low, high]`` with ``low_open``)."""
    return _optional(lambda v, o: limits.check_float_range(v, option=o, low=low, high=high, low_open=low_open))
