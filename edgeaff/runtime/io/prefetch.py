"""Reading a source ahead in a background thread, so decoding overlaps the graphs.

:class:`Prefetcher` iterates a source's items in a daemon thread and hands them over, in order, through a bounded
queue: at most ``ahead`` frames wait (audio chunks and gaps travel with them and are never dropped; a file's source
already bounds how far its audio runs ahead of its frames). For each item the thread may also run ``prepare``, the
part of the per-item work that depends on nothing but the items before it (the pipeline passes its face stage), and
times the read itself with ``on_read``. Decoding (PyAV), OpenCV's image work and ONNX Runtime's calls release the
GIL, so on a machine with two or more cores the next frames are decoded and their faces found while the graphs run.

Unlike :class:`~edgeaff.runtime.io.live_reader.LiveReader`, nothing is dropped: when the consumer falls behind, the
producer waits. A producer error is raised in the consumer where the item would have come. :attr:`Prefetcher.waiting`
says how many frames are ready now, which lets the consumer batch what is already there and not wait for more.
"""

from __future__ import annotations

import collections
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from edgeaff.runtime.errors import InvalidInputError
from edgeaff.runtime.io.sources import SourceItem, VideoFrame

MAX_AHEAD = 256
"""Most frames a prefetcher may hold (at 480×360 BGR, about 130 MB)."""


class Prefetcher:
    """Iterate ``items`` in a background thread, up to ``ahead`` frames ahead of the consumer.

    Args:
        items: the source's items (the iterator is advanced in the background thread only).
        ahead: frames that may wait in the queue (1 .. :data:`MAX_AHEAD`).
        prepare: called in the background thread on every item, in order; its result comes with the item.
        on_read: called in the background thread with each item and the milliseconds its read took.
        name: the thread's name.

    Use as an iterator of ``(item, prepared)`` pairs, and :meth:`close` it (also on early exit; a ``with`` block
    does it).

    Raises:
        InvalidInputError: ``ahead`` out of range.
    """

    def __init__(
        self,
        items: Iterable[SourceItem],
        *,
        ahead: int,
        prepare: Callable[[SourceItem], Any] | None = None,
        on_read: Callable[[SourceItem, float], None] | None = None,
        name: str = "edgeaff-prefetch",
    ) -> None:
        if isinstance(ahead, bool) or not 1 <= int(ahead) <= MAX_AHEAD:
            raise InvalidInputError(f"frames to read ahead must be 1..{MAX_AHEAD}, got {ahead}")
        self.ahead = int(ahead)
        self._items = iter(items)
        self._prepare = prepare
        self._on_read = on_read
        self._queue: collections.deque[tuple[SourceItem, Any]] = collections.deque()
        self._frames = 0
        self._done = False
        self._error: BaseException | None = None
        self._stop = threading.Event()
        self._changed = threading.Condition()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    @property
    def waiting(self) -> int:
        """Frames read and prepared that the consumer has not taken yet."""
        with self._changed:
            return self._frames

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                start = time.perf_counter()
                item = next(self._items, None)
                if item is None:
                    break
                if self._on_read is not None:
                    self._on_read(item, (time.perf_counter() - start) * 1000.0)
                prepared = self._prepare(item) if self._prepare is not None else None
                frame = isinstance(item, VideoFrame)
                with self._changed:
                    while frame and self._frames >= self.ahead and not self._stop.is_set():
                        self._changed.wait()
                    if self._stop.is_set():
                        break
                    self._queue.append((item, prepared))
                    self._frames += int(frame)
                    self._changed.notify_all()
        except BaseException as exc:  # handed to the consumer, which raises it in its own thread
            self._error = exc
        finally:
            close = getattr(self._items, "close", None)
            if close is not None:
                close()  # the source's generator clean-up runs here, in the thread that advanced it
            with self._changed:
                self._done = True
                self._changed.notify_all()

    def __iter__(self) -> Iterator[tuple[SourceItem, Any]]:
        while True:
            with self._changed:
                self._changed.wait_for(lambda: bool(self._queue) or self._done)
                if self._queue:
                    item, prepared = self._queue.popleft()
                    self._frames -= int(isinstance(item, VideoFrame))
                    self._changed.notify_all()
                elif self._error is not None:
                    error, self._error = self._error, None
                    raise error
                else:
                    return
            yield item, prepared

    def close(self, *, join_s: float = 10.0) -> None:
        """Stop reading and wait for the background thread (a read or ``prepare`` in progress finishes first)."""
        self._stop.set()
        with self._changed:
            self._changed.notify_all()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(join_s)

    @property
    def alive(self) -> bool:
        """Whether the background thread still runs."""
        return self._thread.is_alive()

    def __enter__(self) -> Prefetcher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
