"""Where a batch's videos run: in this process, in local worker processes, or on Ray actors.

Each executor gives every worker one :class:`~edgeaff.batch.worker.VideoWorker` (one pipeline, opened once) and
hands it videos one at a time, reporting through :class:`Events`. All three stop the same way when the caller is
interrupted (Ctrl-C) or fails: nothing more is started, running videos are stopped (their temporary files removed
where the worker can still do it, otherwise by the next run), and the exception goes on to the caller.

* :func:`run_inline`: ``--workers 1``; the pipeline runs in this process.
* :func:`run_processes`: ``--workers N``; ``spawn`` processes that die with this one
  (:func:`edgeaff.runtime.processes.process_pool`). A worker ignores Ctrl-C (the terminal sends it to the whole
  process group); this process stops them with SIGTERM, which a worker turns into a clean stop of its video.
* :func:`run_ray`: ``--ray``; Ray actors (:class:`edgeaff.runtime.cluster.ActorFarm`), each asking for its threads'
  CPUs and, for the GPU backends, one GPU.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import dataclasses
import multiprocessing
import os
import signal
import time
from collections.abc import Callable, Sequence
from typing import Any

from edgeaff.batch.discover import BatchItem
from edgeaff.batch.settings import BatchSettings
from edgeaff.batch.worker import FrameReport, VideoResult, VideoStatus, VideoWorker, one_line
from edgeaff.runtime import EdgeaffError, InvalidInputError, limits
from edgeaff.runtime.cluster import ActorFarm, ClusterResources, connect, disconnect, plan_actors
from edgeaff.runtime.processes import process_pool

STOP_GRACE_S = 10.0
"""How long stopped worker processes get to finish cleaning up before they are killed."""
MAX_BARREN_POOLS = 3
"""Worker pools in a row that may die before running any video before the batch gives up."""
QUEUED_PER_WORKER = 2
"""Videos handed to the process pool ahead, per worker (the rest wait here, so the pool holds no long queue)."""


@dataclasses.dataclass(frozen=True)
class Events:
    """What an executor reports: a video started, frames read so far, a video's result."""

    started: Callable[[BatchItem], None]
    frames: FrameReport
    finished: Callable[[VideoResult], None]


def run_inline(settings: BatchSettings, items: Sequence[BatchItem], events: Events, *, threads: int | None) -> None:
    """Every video in turn on one pipeline in this process."""
    with VideoWorker(settings, threads=threads, on_frames=events.frames) as worker:
        for item in items:
            events.started(item)
            events.finished(worker.run(item))


# -- local worker processes ------------------------------------------------------------------------------------------


class _Terminated(BaseException):
    """SIGTERM arrived while a worker process was running a video."""


class WorkerHost:
    """A :class:`VideoWorker` in a worker process or Ray actor: a worker that could not open its pipeline answers
    every video with a ``fatal`` result instead of failing to start (so the batch can say why and stop)."""

    def __init__(self, settings: BatchSettings, threads: int | None, on_frames: FrameReport | None = None) -> None:
        self.fatal: str | None = None
        self.worker: VideoWorker | None = None
        try:
            self.worker = VideoWorker(settings, threads=threads, on_frames=on_frames).__enter__()
        except Exception as exc:
            self.fatal = one_line(exc)

    def run(self, item: BatchItem) -> VideoResult:
        """Run one video (see :meth:`VideoWorker.run`)."""
        if self.worker is None:
            return VideoResult(item.key, VideoStatus.FAILED, error=self.fatal, fatal=True)
        return self.worker.run(item)


_HOST: WorkerHost | None = None
_EVENTS: Any = None  # the event queue of this worker process (a SimpleQueue: a put is written before it returns)
_STOPPING = False  # SIGTERM came: run nothing more
_IN_VIDEO = False  # a video is running: SIGTERM stops it


def _init_process(settings: BatchSettings, threads: int | None, events: Any) -> None:
    global _HOST, _EVENTS  # noqa: PLW0603 - one pipeline per worker process
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole group; the parent decides
    signal.signal(signal.SIGTERM, _on_sigterm)
    _EVENTS = events

    def report(key: str, frames: int, declared: int | None) -> None:
        with contextlib.suppress(Exception):
            events.put(("frames", key, frames, declared))

    _HOST = WorkerHost(settings, threads, report)


def _on_sigterm(signum: int, frame: object) -> None:
    global _STOPPING  # noqa: PLW0603 - the worker process's one stop flag
    _STOPPING = True
    if _IN_VIDEO:
        raise _Terminated


def _run_in_process(item: BatchItem) -> VideoResult:
    """A worker process's task: one video, or ``pending`` once the parent has stopped the batch."""
    global _IN_VIDEO  # noqa: PLW0603
    assert _HOST is not None, "worker not initialised"
    if _STOPPING:
        return VideoResult(item.key, VideoStatus.PENDING)
    _EVENTS.put(("started", item.key))  # written before the video starts
    try:
        _IN_VIDEO = True
        result = _HOST.run(item)
    except _Terminated:
        result = VideoResult(item.key, VideoStatus.INTERRUPTED)
    finally:
        _IN_VIDEO = False
    # also on the event queue: a pool that breaks (another worker died) drops the results it has not yet read
    _EVENTS.put(("finished", item.key, result))
    return result


def run_processes(
    settings: BatchSettings, items: Sequence[BatchItem], events: Events, *, workers: int, threads: int | None
) -> None:
    """The videos on ``workers`` local processes (module docstring), one :class:`_PoolRun` after another.

    A worker process that dies (a crash, the out-of-memory killer) fails the video it was running. Its pool is lost
    with it: the pool stops the other workers, whose videos (stopped cleanly) go back in the queue with those that
    had not started, and a new pool takes them."""
    by_key = {item.key: item for item in items}
    remaining = list(reversed(items))  # popped from the end: in order
    barren = 0  # pools in a row that broke without a video to blame (a worker died at start-up or between videos)
    while remaining:
        if barren == MAX_BARREN_POOLS:
            raise EdgeaffError(
                f"the worker processes died {barren} times in a row outside any video (see the messages above); "
                "run the batch with --workers 1 to see the error"
            )
        run = _PoolRun(settings, by_key, events, workers=workers, threads=threads)
        if run.run(remaining):
            barren = 0
        else:
            barren += 1


class _PoolRun:
    """One process pool of a batch: it takes videos from the queue until the queue is empty or a worker dies.

    Workers report on an event queue: a video started, frames read, its result. The result
    also comes back through the pool; the event queue's copy is the one that survives a pool that breaks (a broken
    pool drops the results it has not yet read). Each message is in the pipe before the worker goes on (a
    ``SimpleQueue``, no feeder thread), so a worker killed in the middle of a video has said that it started it."""

    def __init__(
        self,
        settings: BatchSettings,
        by_key: dict[str, BatchItem],
        events: Events,
        *,
        workers: int,
        threads: int | None,
    ) -> None:
        self.by_key = by_key
        self.events = events
        self.workers = workers
        self.messages = multiprocessing.get_context("spawn").SimpleQueue()
        self.pool = process_pool(workers, initializer=_init_process, initargs=(settings, threads, self.messages))
        self.futures: dict[concurrent.futures.Future[VideoResult], BatchItem] = {}
        self.announced: set[str] = set()  # videos a worker said it started
        self.reported: dict[str, VideoResult] = {}  # results seen on the event queue, until their future gives them

    def run(self, remaining: list[BatchItem]) -> bool:
        """Run videos popped from ``remaining`` until none is left or the pool breaks; after a break, put back the
        videos to run again. Returns False only when the pool broke and no video failed with it."""
        try:
            broken = self._feed(remaining)
        except BaseException:
            self._drain()
            _stop_processes(self.pool, self.futures, self.events)
            self.messages.close()
            raise
        if not broken:
            self.pool.shutdown(wait=True)
            self.messages.close()
            return True
        lost = self._settle(remaining)
        self.messages.close()
        return lost

    def _feed(self, remaining: list[BatchItem]) -> bool:
        """Keep the pool :data:`QUEUED_PER_WORKER` videos ahead per worker and report results; True if it broke."""
        while remaining or self.futures:
            while remaining and len(self.futures) < QUEUED_PER_WORKER * self.workers:
                item = remaining.pop()
                try:
                    self.futures[self.pool.submit(_run_in_process, item)] = item
                except concurrent.futures.process.BrokenProcessPool:
                    remaining.append(item)
                    return True
            done, _ = concurrent.futures.wait(self.futures, timeout=0.25, return_when="FIRST_COMPLETED")
            self._drain()
            for future in done:
                try:
                    result = future.result()
                except concurrent.futures.process.BrokenProcessPool:
                    return True
                del self.futures[future]
                self.reported.pop(result.key, None)
                self.events.finished(result)
        return False

    def _drain(self) -> None:
        """Pass on what the workers reported since the last call."""
        while True:
            try:
                if self.messages.empty():
                    return
                kind, key, *rest = self.messages.get()
            except (OSError, EOFError, ValueError):  # closed
                return
            if key not in self.by_key:
                continue
            if kind == "started":
                self.announced.add(key)
                self.events.started(self.by_key[key])
            elif kind == "frames":
                self.events.frames(key, rest[0], rest[1])
            elif kind == "finished":
                self.reported[key] = rest[0]

    def _settle(self, remaining: list[BatchItem]) -> bool:
        """After a worker died: wait for the pool's other workers to exit (reading the event queue meanwhile, so none
        blocks writing to it), then settle each of the pool's videos. One that finished is reported; one its worker
        stopped, or that never started, goes back in ``remaining``; one that started and has no result was on the
        dead worker and fails. Returns whether any video failed so."""
        deadline = time.monotonic() + STOP_GRACE_S
        while multiprocessing.active_children() and time.monotonic() < deadline:
            self._drain()
            time.sleep(0.05)
        self.pool.shutdown(wait=True, cancel_futures=True)
        self._drain()
        lost = False
        for future, item in self.futures.items():
            result = self.reported.pop(item.key, None)
            if result is None and future.done() and not future.cancelled() and future.exception() is None:
                result = future.result()
            if result is not None and result.status not in (VideoStatus.INTERRUPTED, VideoStatus.PENDING):
                self.events.finished(result)
            elif result is not None or item.key not in self.announced:
                remaining.append(item)  # stopped by the pool, not by the user, or never started: run it again
            else:
                lost = True
                self.events.finished(
                    VideoResult(
                        item.key,
                        VideoStatus.FAILED,
                        error="its worker process died while running it (a crash or the out-of-memory killer); "
                        "rerun to retry it",
                    )
                )
        return lost


def _stop_processes(
    pool: concurrent.futures.ProcessPoolExecutor,
    futures: dict[concurrent.futures.Future[VideoResult], BatchItem],
    events: Events,
) -> None:
    """Stop a pool at once: cancel what has not started, SIGTERM the workers (a running video stops and removes its
    temporary files), give them :data:`STOP_GRACE_S`, then SIGKILL what is left."""
    running = {f: item for f, item in futures.items() if not f.cancel()}
    children = multiprocessing.active_children()
    for child in children:
        with contextlib.suppress(OSError):
            os.kill(child.pid or 0, signal.SIGTERM)
    try:
        done, _ = concurrent.futures.wait(running, timeout=STOP_GRACE_S)
        for future in done:
            with contextlib.suppress(Exception):
                events.finished(future.result())
    except BaseException:  # a second Ctrl-C: no more waiting
        pass
    deadline = time.monotonic() + STOP_GRACE_S
    try:  # a worker whose video ended may still be cleaning up: it gets the rest of the grace
        for child in children:
            child.join(max(0.0, deadline - time.monotonic()))
    except BaseException:  # a second Ctrl-C: no more waiting
        pass
    for child in children:
        if child.is_alive():
            with contextlib.suppress(OSError):
                os.kill(child.pid or 0, signal.SIGKILL)
    for child in children:
        child.join(STOP_GRACE_S)  # reaped before the batch reports that it stopped
    pool.shutdown(wait=False, cancel_futures=True)


# -- Ray -------------------------------------------------------------------------------------------------------------


class RayWorker(WorkerHost):
    """The Ray actor of a batch: a :class:`WorkerHost` (no progress within a video)."""

    def __init__(self, settings: BatchSettings, threads: int | None) -> None:
        super().__init__(settings, threads)


def run_ray(
    settings: BatchSettings,
    items: Sequence[BatchItem],
    events: Events,
    *,
    address: str,
    workers: int | None,
    threads: int | None,
) -> None:
    """The videos on Ray actors; ``address`` as :func:`edgeaff.runtime.cluster.connect` takes it."""
    backend = settings.options.backend
    if backend.backend.gpu and backend.device not in (None, 0):
        raise InvalidInputError("on Ray each worker gets the GPU Ray assigns it; drop --device cuda:N")
    settings, items = _absolute(settings, items)  # Ray workers may run in other folders, on other machines
    ray = connect(address, purpose="edgeaff infer on Ray (--ray)")
    try:
        count, threads = plan_actors(
            ClusterResources.of(ray), gpu=backend.backend.gpu, items=len(items), actors=workers, threads=threads
        )
        farm: ActorFarm[BatchItem] = ActorFarm(
            ray,
            RayWorker,
            (settings, threads),
            count=count,
            num_cpus=threads,
            num_gpus=1 if backend.backend.gpu else 0,
            on_start=events.started,
        )
        with farm:
            for outcome in farm.map_unordered(items):
                if outcome.error is not None:
                    events.finished(VideoResult(outcome.item.key, VideoStatus.FAILED, error=outcome.error))
                else:
                    events.finished(outcome.value)
    finally:
        disconnect(ray, address)


def _absolute(settings: BatchSettings, items: Sequence[BatchItem]) -> tuple[BatchSettings, list[BatchItem]]:
    options = settings.options
    options = dataclasses.replace(
        options,
        haar_cascade=None if options.haar_cascade is None else options.haar_cascade.absolute(),
        spool_dir=None if options.spool_dir is None else options.spool_dir.absolute(),
    )
    absolute = dataclasses.replace(settings, bundle=settings.bundle.absolute(), options=options)
    return absolute, [dataclasses.replace(i, video=i.video.absolute(), out_dir=i.out_dir.absolute()) for i in items]


def local_threads(workers: int, threads: int | None) -> int | None:
    """Threads per graph for ``workers`` local workers: the cores shared out (``None`` for one worker: the
    backend's own default, as ``edgeaff infer`` uses), or ``threads`` if it fits.

    Raises:
        InvalidInputError: ``workers`` out of range, or ``workers × threads`` above the thread limit.
    """
    limits.check_workers(workers)
    if threads is not None:
        limits.check_threads(threads)
        if workers * threads > limits.max_threads():
            raise InvalidInputError(
                f"--workers {workers} × --threads {threads} is more than the {limits.max_threads()} threads this "
                f"machine allows ({limits.THREADS_PER_CORE} per core); lower one of them"
            )
        return threads
    return None if workers == 1 else max(1, limits.usable_cores() // workers)
