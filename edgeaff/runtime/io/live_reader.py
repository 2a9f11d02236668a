"""Reading a live source in a background thread, with a time-out and a bounded queue.

Cameras and network streams block while waiting for the next frame, and keep producing while the pipeline is
busy. :class:`LiveReader` runs the blocking producer in a daemon thread and hands its items over through a small
queue. The consumer waits at most ``timeout_s`` for each item, then raises
:class:`~edgeaff.runtime.io.sources.SourceTimeoutError`; the producer's end is the end of the iteration, and a producer
error is re-raised in the consumer. When the pipeline falls behind, the oldest queued *frame* is dropped (counted in
:attr:`LiveReader.dropped_frames`) so latency stays bounded; audio chunks and gaps are never dropped, as they carry
the timeline.

With a reconnect policy the producer itself notices a silent stream and reopens it; the consumer's time-out is then
only a backstop for a producer stuck in a read that cannot be interrupted (:func:`reader_timeout`).
"""

from __future__ import annotations

import collections
import threading
from collections.abc import Callable, Iterator

from edgeaff.runtime.io.sources import ReconnectPolicy, SourceItem, SourceTimeoutError, VideoFrame

# Slack of the backstop time-out over what a reconnecting producer may legitimately spend without an item.
_BACKSTOP_SLACK_S = 2.0


def reader_timeout(timeout_s: float, reconnect: ReconnectPolicy | None) -> float:
    """The consumer's wait for the next item of a live source read with ``timeout_s`` and ``reconnect``.

    Without reconnection it is ``timeout_s``. With it, the producer may go ``give_up_s`` without a frame, then make
    a last attempt that can take ``timeout_s`` to open and ``timeout_s`` to read before it raises its own
    :class:`SourceTimeoutError`; the consumer waits that long and a little more.
    """
    if reconnect is None:
        return timeout_s
    return reconnect.give_up_s + 2 * timeout_s + _BACKSTOP_SLACK_S


class LiveReader:
    """Run ``produce()`` in a thread and iterate its items with a time-out.

    Args:
        produce: a generator function of frames and audio chunks; it should return when ``stopping()`` is true.
        timeout_s: longest wait for the next item.
        what: the source, for messages.
        max_queued_frames: frames kept waiting before the oldest is dropped.
    """

    def __init__(
        self,
        produce: Callable[[Callable[[], bool]], Iterator[SourceItem]],
        *,
        timeout_s: float,
        what: str,
        max_queued_frames: int = 8,
    ) -> None:
        self._produce = produce
        self.timeout_s = timeout_s
        self.what = what
        self.max_queued_frames = max_queued_frames
        self.dropped_frames = 0
        self._items: collections.deque[SourceItem] = collections.deque()
        self._frames = 0
        self._done = False
        self._error: BaseException | None = None
        self._stop = threading.Event()
        self._ready = threading.Condition()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Start the producer thread."""
        self._thread = threading.Thread(target=self._run, name=f"edgeaff-source-{self.what}", daemon=True)
        self._thread.start()

    def stop(self, *, join_s: float = 2.0) -> None:
        """Ask the producer to stop and wait briefly for it (a read in progress finishes first)."""
        self._stop.set()
        with self._ready:
            self._ready.notify_all()
        if self._thread is not None:
            self._thread.join(join_s)

    @property
    def alive(self) -> bool:
        """Whether the producer thread is still running."""
        return self._thread is not None and self._thread.is_alive()

    def _run(self) -> None:
        items = self._produce(self._stop.is_set)
        try:
            for item in items:
                if self._stop.is_set():
                    break
                with self._ready:
                    if isinstance(item, VideoFrame):
                        if self._frames >= self.max_queued_frames:
                            self._drop_oldest_frame()
                        self._frames += 1
                    self._items.append(item)
                    self._ready.notify()
        except BaseException as exc:  # handed over to the consumer thread, which re-raises it
            self._error = exc
        finally:
            close = getattr(items, "close", None)
            if close is not None:
                close()  # runs the producer's own clean-up (e.g. releasing the camera) now, in this thread
            with self._ready:
                self._done = True
                self._ready.notify_all()

    def _drop_oldest_frame(self) -> None:
        for position, queued in enumerate(self._items):
            if isinstance(queued, VideoFrame):
                del self._items[position]
                self._frames -= 1
                self.dropped_frames += 1
                return

    def __iter__(self) -> Iterator[SourceItem]:
        while True:
            with self._ready:
                if not self._items and not self._done:
                    self._ready.wait_for(lambda: bool(self._items) or self._done, timeout=self.timeout_s)
                if self._items:
                    item = self._items.popleft()
                    if isinstance(item, VideoFrame):
                        self._frames -= 1
                elif self._done:
                    if self._error is not None:
                        raise self._error
                    return
                else:
                    raise SourceTimeoutError(
                        f"{self.what}: no frame for {self.timeout_s:g} s (time-out; the source is still open but "
                        "silent); check the camera or stream, or raise --timeout"
                    )
            yield item
