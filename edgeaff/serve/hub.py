"""Fan-out of messages from the pipeline thread to the WebSocket clients, with bounded memory.

The pipeline thread :meth:`Hub.post` s each message (a JSON string, made once and shared by every client) into a
small mailbox and wakes the event loop; the loop hands it to every client's queue. Each client's queue holds at
most ``queue`` messages: when a client reads slower than predictions come (a slow network, a stalled browser, a
program that never reads), its oldest message is dropped and counted, so the server's memory never grows with a
slow client and the others are not held back. The mailbox is bounded the same way, in case the event loop itself
falls behind. Messages carry a sequence number (``seq``), so a client sees where it lost some.
"""

from __future__ import annotations

import asyncio
import collections
import threading
from typing import Any


class Subscriber:
    """One client's bounded queue (drop oldest); used on the event loop only."""

    def __init__(self, size: int, name: str) -> None:
        self.name = name
        self.queue: collections.deque[str] = collections.deque(maxlen=size)
        self.dropped = 0
        self.sent = 0
        self.closed = False
        self._wake = asyncio.Event()

    def offer(self, message: str) -> None:
        """Queue a message, dropping (and counting) the oldest when the queue is full."""
        if len(self.queue) == self.queue.maxlen:
            self.dropped += 1
        self.queue.append(message)
        self._wake.set()

    async def next(self) -> str | None:
        """The next message, waiting for one; ``None`` once the hub is closed."""
        while not self.queue:
            if self.closed:
                return None
            self._wake.clear()
            await self._wake.wait()
        self.sent += 1
        return self.queue.popleft()

    def close(self) -> None:
        """No more messages: :meth:`next` returns ``None`` once the queue is empty."""
        self.closed = True
        self._wake.set()

    def info(self) -> dict[str, Any]:
        """The client's counts, for ``/status``."""
        return {"name": self.name, "queued": len(self.queue), "sent": self.sent, "dropped": self.dropped}


class Hub:
    """Bounded fan-out of messages to subscribers (see the module docstring).

    Args:
        queue: messages each subscriber may have waiting.
        max_clients: subscribers at once; :meth:`subscribe` refuses more.
    """

    def __init__(self, *, queue: int, max_clients: int) -> None:
        self.queue = queue
        self.max_clients = max_clients
        self.subscribers: set[Subscriber] = set()
        self.posted = 0
        self._departed_dropped = 0
        self._mailbox: collections.deque[str] = collections.deque(maxlen=max(queue, 64))
        self._mailbox_dropped = 0
        self._lock = threading.Lock()
        self._scheduled = False
        self._closed = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._serial = 0

    def attach(self, loop: asyncio.AbstractEventLoop) -> None:
        """Deliver on ``loop`` (the server's event loop); messages posted before are dropped."""
        self._loop = loop

    # -- any thread ------------------------------------------------------------------------------------------------

    def post(self, message: str) -> None:
        """Hand a message to every subscriber (thread-safe, never blocks)."""
        loop = self._loop
        if loop is None or self._closed:
            return
        with self._lock:
            self.posted += 1
            if len(self._mailbox) == self._mailbox.maxlen:
                self._mailbox_dropped += 1
            self._mailbox.append(message)
            if self._scheduled:
                return
            self._scheduled = True
        try:
            loop.call_soon_threadsafe(self._deliver)
        except RuntimeError:  # the loop is closed: the server is going away
            with self._lock:
                self._scheduled = False

    # -- event loop only -------------------------------------------------------------------------------------------

    def _deliver(self) -> None:
        with self._lock:
            messages = list(self._mailbox)
            self._mailbox.clear()
            self._scheduled = False
        for subscriber in list(self.subscribers):
            for message in messages:
                subscriber.offer(message)

    def subscribe(self, name: str) -> Subscriber | None:
        """A new subscriber, or ``None`` when :attr:`max_clients` are already connected or the hub is closed."""
        if self._closed or len(self.subscribers) >= self.max_clients:
            return None
        self._serial += 1
        subscriber = Subscriber(self.queue, f"{name}#{self._serial}")
        self.subscribers.add(subscriber)
        return subscriber

    def unsubscribe(self, subscriber: Subscriber) -> None:
        """Forget a subscriber (its drops stay counted)."""
        if subscriber in self.subscribers:
            self.subscribers.discard(subscriber)
            self._departed_dropped += subscriber.dropped
        subscriber.close()

    def close(self) -> None:
        """End every subscriber's stream (server shutdown)."""
        self._closed = True
        for subscriber in list(self.subscribers):
            subscriber.close()

    @property
    def dropped(self) -> int:
        """Messages dropped so far: in client queues (present and past clients) and in the mailbox."""
        return self._departed_dropped + sum(s.dropped for s in self.subscribers) + self._mailbox_dropped

    def info(self) -> dict[str, Any]:
        """Counts for ``/status``."""
        return {
            "connected": len(self.subscribers),
            "max": self.max_clients,
            "queue": self.queue,
            "posted": self.posted,
            "dropped_messages": self.dropped,
            "clients": sorted((s.info() for s in self.subscribers), key=lambda i: str(i["name"])),
        }
