"""A batch from start to end: skip what is complete, run the rest, keep the index up to date.

:func:`run_batch` takes the videos (:func:`~edgeaff.batch.discover.find_videos`), checks which already have
complete, current results (:func:`~edgeaff.batch.settings.completed_summary`), runs the others on the chosen
executor, and writes the index as results come in (at most every :data:`INDEX_EVERY_S`) and once more at the end,
also when the batch is interrupted (Ctrl-C) or fails. One batch at a time may write into an output folder: a second
is refused while the first holds the folder's lock.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import os
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

from edgeaff.batch.discover import INDEX_NAME, BatchItem
from edgeaff.batch.executors import Events, local_threads, run_inline, run_processes, run_ray
from edgeaff.batch.index import index_rows, write_index
from edgeaff.batch.progress import BatchProgress
from edgeaff.batch.settings import BatchSettings, completed_summary
from edgeaff.batch.worker import VideoResult, VideoStatus
from edgeaff.runtime import EdgeaffError, InvalidInputError
from edgeaff.runtime.files import remove_stale_temporaries

INDEX_EVERY_S = 2.0
"""Shortest interval between two index writes while the batch runs."""
LOCK_NAME = f".{INDEX_NAME}.lock"


@dataclasses.dataclass(frozen=True)
class BatchReport:
    """What a batch did.

    Attributes:
        results: every video's :class:`VideoResult` by key (``pending`` for those never started).
        index: the index files written.
        ran: keys of the videos run in this call (not those whose results were kept).
        wall_s: seconds the call took.
        interrupted: the batch was stopped (Ctrl-C) before its end.
    """

    results: dict[str, VideoResult]
    index: list[Path]
    ran: tuple[str, ...]
    wall_s: float
    interrupted: bool = False

    def count(self, status: VideoStatus) -> int:
        """How many videos ended with ``status``."""
        return sum(1 for r in self.results.values() if r.status is status)

    @property
    def reused(self) -> int:
        """Videos whose complete results from an earlier run were kept."""
        return sum(1 for r in self.results.values() if r.reused)

    @property
    def frames(self) -> int:
        """Frames processed in this call."""
        return sum(self.results[k].frames or 0 for k in self.ran if self.results[k].status is VideoStatus.DONE)


@contextlib.contextmanager
def output_lock(out_dir: Path) -> Iterator[None]:
    """Hold ``out_dir``'s batch lock (an advisory lock on a hidden file, released when this process ends).

    Raises:
        InvalidInputError: another batch holds it.
    """
    path = out_dir / LOCK_NAME
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o666)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise InvalidInputError(
                f"another edgeaff batch is writing into {out_dir}; wait for it to end or choose another -o"
            ) from None
        yield
    finally:
        os.close(fd)


def run_batch(
    items: Sequence[BatchItem],
    out_dir: str | Path,
    settings: BatchSettings,
    *,
    workers: int | None = None,
    threads: int | None = None,
    ray: str | None = None,
    progress: BatchProgress | None = None,
) -> BatchReport:
    """Run the videos of a batch that are not complete yet and write the index (module docstring).

    Args:
        items: the videos (:func:`~edgeaff.batch.discover.find_videos`).
        out_dir: the output folder (the items' result folders lie under it).
        settings: the batch's settings (:meth:`BatchSettings.create`).
        workers: local worker processes (1..the usable cores; default 1), or with ``ray`` the number of Ray actors
            (default: what the cluster offers, see :func:`edgeaff.runtime.cluster.plan_actors`).
        threads: ONNX Runtime threads per graph in each worker (default: the cores shared out among the workers).
        ray: run on Ray: ``auto``, ``local`` or a cluster address.
        progress: receives the batch's progress (e.g. :class:`~edgeaff.batch.progress.RichProgress`).

    Returns:
        A :class:`BatchReport`. Ctrl-C (``KeyboardInterrupt``) stops the batch: the running videos are stopped,
        the index written, and the report says ``interrupted``.

    Raises:
        InvalidInputError: bad worker or thread counts, another batch in ``out_dir``.
        EdgeaffError: a worker could not open the pipeline (the bundle or the backend), so no video could run.
    """
    started = time.perf_counter()
    out = Path(out_dir)
    local = 1 if workers is None else workers
    per_worker = None if ray is not None else local_threads(local, threads)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InvalidInputError(f"cannot create the output folder {out} ({exc.strerror})") from None
    with output_lock(out):
        remove_stale_temporaries(out, (f"{INDEX_NAME}.csv.", f"{INDEX_NAME}.parquet."))  # a killed batch's index
        ledger = _Ledger(items, out, settings, progress)
        todo = ledger.todo
        if progress is not None:
            progress.begin(videos=len(todo), reused=len(items) - len(todo), total_bytes=sum(ledger.sizes.values()))
        events = Events(ledger.on_started, ledger.on_frames, ledger.on_finished)
        interrupted = False
        try:
            if not todo:
                pass
            elif ray is not None:
                run_ray(settings, todo, events, address=ray, workers=workers, threads=threads)
            elif local == 1:
                run_inline(settings, todo, events, threads=per_worker)
            else:
                run_processes(settings, todo, events, workers=local, threads=per_worker)
        except KeyboardInterrupt:
            interrupted = True
        finally:
            ledger.settle()
    results = ledger.results
    for item in items:
        results.setdefault(item.key, VideoResult(item.key, VideoStatus.PENDING))
    return BatchReport(results, ledger.index, tuple(ledger.ran), time.perf_counter() - started, interrupted=interrupted)


class _Ledger:
    """A batch's book of videos: which to run, which run now, their results, the index and the progress display.

    The executors report to it through :class:`~edgeaff.batch.executors.Events`; the index is rewritten as results
    come in (at most every :data:`INDEX_EVERY_S`) and once more by :meth:`settle`.
    """

    def __init__(
        self, items: Sequence[BatchItem], out: Path, settings: BatchSettings, progress: BatchProgress | None
    ) -> None:
        self.items = items
        self.out = out
        self.settings = settings
        self.progress = progress
        self.results: dict[str, VideoResult] = {}
        self.todo: list[BatchItem] = []
        for item in items:
            summary = completed_summary(item, settings)
            if summary is None:
                self.todo.append(item)
            else:
                self.results[item.key] = VideoResult.from_summary(item.key, summary, reused=True)
        self.sizes = {item.key: _size(item) for item in self.todo}
        self.running: set[str] = set()
        self.ran: list[str] = []
        self.index: list[Path] = []
        self._last_index = 0.0

    def write(self, *, force: bool = False) -> None:
        """Rewrite the index, unless it was written less than :data:`INDEX_EVERY_S` ago (``force``: always)."""
        now = time.monotonic()
        if force or now - self._last_index >= INDEX_EVERY_S:
            self.index = write_index(index_rows(self.items, self.results, self.out), self.out)
            self._last_index = now

    def on_started(self, item: BatchItem) -> None:
        if item.key in self.results:
            return  # a worker's "started" message that arrived after its result
        self.running.add(item.key)
        if self.progress is not None:
            self.progress.started(item.key, self.sizes.get(item.key, 0))

    def on_frames(self, key: str, frames: int, declared: int | None) -> None:
        if self.progress is not None and key in self.running:
            self.progress.frames(key, frames, declared)

    def on_finished(self, result: VideoResult) -> None:
        self.running.discard(result.key)
        if result.fatal:
            raise EdgeaffError(f"a batch worker could not start, so no video can run: {result.error}")
        if result.status is VideoStatus.PENDING:  # handed to a worker after the batch was stopped
            return
        self.results[result.key] = result
        self.ran.append(result.key)
        if self.progress is not None:
            self.progress.finished(result, self.sizes.get(result.key, 0))
        self.write()

    def settle(self) -> None:
        """After the executor returned or was stopped: videos still running are interrupted, the index written.

        A video stopped just after its summary was written has complete results, and is recorded as done.
        """
        for key in sorted(self.running - set(self.results)):
            self.results[key] = VideoResult(key, VideoStatus.INTERRUPTED)
            self.ran.append(key)
        for item in self.todo:
            result = self.results.get(item.key)
            summary = None
            if result is not None and result.status is VideoStatus.INTERRUPTED:
                summary = completed_summary(item, self.settings)
            if summary is not None:
                self.results[item.key] = VideoResult.from_summary(item.key, summary, reused=False)
        self.write(force=True)


def _size(item: BatchItem) -> int:
    try:
        return os.stat(item.video).st_size
    except OSError:
        return 0
