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
        results: dict[str, VideoResult] = {}
        todo = []
        for item in items:
            summary = completed_summary(item, settings)
            if summary is None:
                todo.append(item)
            else:
                results[item.key] = VideoResult.from_summary(item.key, summary, reused=True)
        sizes = {item.key: _size(item) for item in todo}
        running: set[str] = set()
        ran: list[str] = []
        last_index = 0.0
        index: list[Path] = []

        def write(force: bool = False) -> None:
            nonlocal last_index, index
            now = time.monotonic()
            if force or now - last_index >= INDEX_EVERY_S:
                index = write_index(index_rows(items, results, out), out)
                last_index = now

        def on_started(item: BatchItem) -> None:
            if item.key in results:
                return  # a worker's "started" message that arrived after its result
            running.add(item.key)
            if progress is not None:
                progress.started(item.key, sizes.get(item.key, 0))

        def on_frames(key: str, frames: int, declared: int | None) -> None:
            if progress is not None and key in running:
                progress.frames(key, frames, declared)

        def on_finished(result: VideoResult) -> None:
            if result.fatal:
                running.discard(result.key)
                raise EdgeaffError(f"a batch worker could not start, so no video can run: {result.error}")
            running.discard(result.key)
            if result.status is VideoStatus.PENDING:  # handed to a worker after the batch was stopped
                return
            results[result.key] = result
            ran.append(result.key)
            if progress is not None:
                progress.finished(result, sizes.get(result.key, 0))
            write()

        if progress is not None:
            progress.begin(videos=len(todo), reused=len(items) - len(todo), total_bytes=sum(sizes.values()))
        events = Events(on_started, on_frames, on_finished)
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
            for key in sorted(running - set(results)):
                results[key] = VideoResult(key, VideoStatus.INTERRUPTED)
                ran.append(key)
            for item in todo:  # stopped just after its summary was written: its results are complete
                result = results.get(item.key)
                summary = None
                if result is not None and result.status is VideoStatus.INTERRUPTED:
                    summary = completed_summary(item, settings)
                if summary is not None:
                    results[item.key] = VideoResult.from_summary(item.key, summary, reused=False)
            write(force=True)
    for item in items:
        results.setdefault(item.key, VideoResult(item.key, VideoStatus.PENDING))
    return BatchReport(results, index, tuple(ran), time.perf_counter() - started, interrupted=interrupted)


def _size(item: BatchItem) -> int:
    try:
        return os.stat(item.video).st_size
    except OSError:
        return 0
