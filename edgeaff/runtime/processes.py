"""Worker processes that never outlive the command that started them.

:func:`process_pool` is the one way edgeaff starts a pool of worker processes (``prepare --workers``, ``train
--workers``, ``synth --workers``). Its workers are started with the ``spawn`` method and, on Linux, ask the kernel
to kill them when their parent dies (``prctl(PR_SET_PDEATHSIG, SIGKILL)`` through ctypes), so a hard kill of the
command (``kill -9``, the OOM killer) never leaves workers behind that go on writing into the output or hold
memory. A worker whose parent is already gone when it starts exits at once. Elsewhere the pool's own shutdown
applies (the parent's normal exit or Ctrl-C still stops its workers).
"""

from __future__ import annotations

import concurrent.futures
import ctypes
import ctypes.util
import multiprocessing
import os
import signal
import sys
from collections.abc import Callable
from typing import Any

_PR_SET_PDEATHSIG = 1


def die_with_parent(parent_pid: int) -> bool:
    """Make the calling process receive SIGKILL when its parent exits (Linux); exit now if it already has.

    Args:
        parent_pid: the pid of the process that started this one (checked after the request, to close the race
            where the parent died before it was made).

    Returns:
        Whether the kernel accepted the request (``False`` on other systems).
    """
    armed = False
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
            armed = libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) == 0
        except (OSError, AttributeError):
            armed = False
    if os.getppid() != parent_pid:
        os._exit(1)  # the parent died before the request: nobody will collect this worker's results
    return armed


def _start_worker(parent_pid: int, initializer: Callable[..., None] | None, initargs: tuple[Any, ...]) -> None:
    die_with_parent(parent_pid)
    if initializer is not None:
        initializer(*initargs)


def process_pool(
    workers: int,
    *,
    initializer: Callable[..., None] | None = None,
    initargs: tuple[Any, ...] = (),
) -> concurrent.futures.ProcessPoolExecutor:
    """A ``spawn`` process pool of ``workers`` processes that die with this process (see the module docstring).

    Args:
        workers: number of processes (validated by the caller, e.g. with
            :func:`edgeaff.runtime.limits.check_workers`).
        initializer: called once in each worker after it is set up, with ``initargs``.
        initargs: arguments of ``initializer`` (picklable).

    Example:
        >>> with process_pool(2) as pool:  # doctest: +SKIP
        ...     list(pool.map(abs, [-1, -2]))
        [1, 2]
    """
    return concurrent.futures.ProcessPoolExecutor(
        max_workers=workers,
        mp_context=multiprocessing.get_context("spawn"),
        initializer=_start_worker,
        initargs=(os.getpid(), initializer, initargs),
    )
