"""Reading a source ahead in a background thread (edgeaff.runtime.io.prefetch.Prefetcher)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import numpy as np
import pytest

from edgeaff.runtime.errors import InvalidInputError
from edgeaff.runtime.io.prefetch import MAX_AHEAD, Prefetcher
from edgeaff.runtime.io.sources import AudioChunk, SourceItem, VideoFrame


def _frame(index: int) -> VideoFrame:
    return VideoFrame(index, index / 25, np.zeros((2, 2, 3), np.uint8), time.perf_counter())


def _items(count: int, *, audio_every: int = 3) -> list[SourceItem]:
    items: list[SourceItem] = []
    for index in range(count):
        if index % audio_every == 0:
            items.append(AudioChunk(np.full(4, index, np.float32)))
        items.append(_frame(index))
    return items


def test_items_arrive_in_order_with_what_the_thread_prepared() -> None:
    items = _items(20)
    threads: set[str] = set()
    reads: list[tuple[str, float]] = []

    def prepare(item: SourceItem) -> object:
        threads.add(threading.current_thread().name)
        return ("face", item.index) if isinstance(item, VideoFrame) else None

    with Prefetcher(items, ahead=3, prepare=prepare, on_read=lambda i, ms: reads.append((type(i).__name__, ms))) as p:
        received = list(p)
    assert [item for item, _ in received] == items
    assert [prepared for _, prepared in received] == [
        ("face", item.index) if isinstance(item, VideoFrame) else None for item in items
    ]
    assert threads == {"edgeaff-prefetch"}  # prepared in the background thread, not the consumer's
    assert [kind for kind, _ in reads] == [type(item).__name__ for item in items] and all(ms >= 0 for _, ms in reads)


def test_no_more_than_ahead_frames_wait_for_a_slow_consumer() -> None:
    produced = 0
    lock = threading.Lock()
    most_ahead = 0

    def prepare(item: SourceItem) -> None:
        nonlocal produced
        if isinstance(item, VideoFrame):
            with lock:
                produced += 1

    with Prefetcher(_items(30), ahead=4, prepare=prepare) as prefetcher:
        consumed = 0
        for item, _ in prefetcher:
            if isinstance(item, VideoFrame):
                consumed += 1
                time.sleep(0.01)  # a slow consumer: the producer is always ahead
                with lock:
                    most_ahead = max(most_ahead, produced - consumed)
                assert prefetcher.waiting <= 4
    assert consumed == 30
    # the producer may hold one prepared frame while it waits for room: ahead + 1 at most
    assert 3 <= most_ahead <= 5


def test_a_producer_error_reaches_the_consumer_after_the_items_before_it() -> None:
    def source() -> Iterator[SourceItem]:
        yield _frame(0)
        yield _frame(1)
        raise OSError("the disk went away")

    received = []
    with Prefetcher(source(), ahead=8) as prefetcher, pytest.raises(OSError, match="disk went away"):
        for item, _ in prefetcher:
            received.append(item)
    assert [item.index for item in received] == [0, 1]


def test_closing_early_stops_the_thread_and_closes_the_source() -> None:
    closed = threading.Event()

    def endless() -> Iterator[SourceItem]:
        try:
            index = 0
            while True:
                yield _frame(index)
                index += 1
        finally:
            closed.set()

    prefetcher = Prefetcher(endless(), ahead=2)
    first = next(iter(prefetcher))
    prefetcher.close()
    assert first[0].index == 0 and not prefetcher.alive and closed.wait(1.0)


@pytest.mark.parametrize("ahead", [0, MAX_AHEAD + 1, True])
def test_ahead_is_bounded(ahead: int) -> None:
    with pytest.raises(InvalidInputError, match="read ahead"):
        Prefetcher([], ahead=ahead)
