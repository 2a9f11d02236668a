"""The one progress display of a batch: videos and frames done, throughput and the time left, for all workers.

The bar measures the input's bytes: a finished video counts its file size, a running one the share of its frames
read so far (local workers report them twice a second; Ray workers only when a video ends). The time left is the
bytes still to do at the recent rate, so long and short videos weigh what they cost. Failures are printed above
the bar as they happen, one line each.
"""

from __future__ import annotations

import time
from types import TracebackType
from typing import Any, Protocol

from edgeaff.batch.worker import VideoResult, VideoStatus


class BatchProgress(Protocol):
    """What a batch tells a progress display (every call comes from the thread that runs the batch)."""

    def begin(self, *, videos: int, reused: int, total_bytes: int) -> None:
        """The batch starts: ``videos`` to run, ``reused`` already complete, ``total_bytes`` of input to read."""
        ...

    def started(self, key: str, size: int) -> None:
        """A video of ``size`` bytes started."""
        ...

    def frames(self, key: str, frames: int, declared: int | None) -> None:
        """A running video has read ``frames`` of the ``declared`` frames."""
        ...

    def finished(self, result: VideoResult, size: int) -> None:
        """A video ended (any status)."""
        ...


class RichProgress:
    """:class:`BatchProgress` on a rich progress bar (stderr); use as a context manager around the batch."""

    def __init__(self, console: Any = None) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

        self.console = console or Console(stderr=True)
        self._progress = Progress(
            TextColumn("infer"),
            BarColumn(),
            TextColumn("{task.fields[videos]}"),
            TextColumn("{task.fields[frames]}"),
            TimeRemainingColumn(),
            console=self.console,
            speed_estimate_period=120.0,
        )
        self._task = self._progress.add_task("batch", total=None, videos="", frames="")
        self._running: dict[str, tuple[int, int, int | None]] = {}  # key -> (size, frames, declared)
        self._videos = self._done = self._failed = 0
        self._frames_done = 0
        self._bytes_done = 0
        self._started = time.monotonic()

    def __enter__(self) -> RichProgress:
        self._progress.__enter__()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._update()
        self._progress.__exit__(exc_type, exc, tb)

    def begin(self, *, videos: int, reused: int, total_bytes: int) -> None:
        """See :class:`BatchProgress`."""
        self._videos = videos
        self._started = time.monotonic()
        self._progress.update(self._task, total=max(1, total_bytes), completed=0)
        if reused:
            self.console.print(f"{reused} video(s) already have complete results: kept", soft_wrap=True)
        self._update()

    def started(self, key: str, size: int) -> None:
        """See :class:`BatchProgress`."""
        self._running[key] = (size, 0, None)
        self._update()

    def frames(self, key: str, frames: int, declared: int | None) -> None:
        """See :class:`BatchProgress`."""
        if key in self._running:
            size, _, _ = self._running[key]
            self._running[key] = (size, frames, declared)
            self._update()

    def finished(self, result: VideoResult, size: int) -> None:
        """See :class:`BatchProgress`."""
        self._running.pop(result.key, None)
        self._bytes_done += size
        if result.status is VideoStatus.DONE:
            self._done += 1
            self._frames_done += result.frames or 0
        elif result.status is VideoStatus.FAILED:
            self._failed += 1
            self.console.print(f"failed: {result.key}: {result.error}", highlight=False, markup=False, soft_wrap=True)
        self._update()

    def _update(self) -> None:
        running_bytes = sum(
            size * min(1.0, frames / declared) for size, frames, declared in self._running.values() if declared
        )
        frames = self._frames_done + sum(frames for _, frames, _ in self._running.values())
        elapsed = max(1e-9, time.monotonic() - self._started)
        ended = self._done + self._failed
        videos = f"{ended}/{self._videos} videos" + (f" ({self._failed} failed)" if self._failed else "")
        rate = f"{frames} frames, {frames / elapsed:.1f} frames/s, {3600.0 * self._done / elapsed:.0f} videos/h"
        self._progress.update(self._task, completed=self._bytes_done + running_bytes, videos=videos, frames=rate)
