"""Slow, stalled and restless clients: the server's memory stays bounded and the other clients are not held back."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import socket
import threading
import time
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
from media_fixtures import write_media
from onnx_bundle import TinyBundle, build_bundle
from process_tools import wait_for
from serve_support import get_json, open_fds, rss_kib, running_server, serve_args, ws_url
from websockets.sync.client import connect

from edgeaff.serve.hub import Hub


def test_a_subscriber_that_never_reads_holds_at_most_its_queue() -> None:
    """100 MB of messages through the hub: the stalled subscriber keeps its last 16, the reading one gets all."""
    count, size, queue = 10_000, 10_000, 16

    async def flood() -> tuple[int, int, list[int], Hub]:
        hub = Hub(queue=queue, max_clients=4)
        hub.attach(asyncio.get_running_loop())
        stalled = hub.subscribe("stalled")
        reader = hub.subscribe("reader")
        assert stalled is not None and reader is not None
        got: list[int] = []

        async def read() -> None:
            while len(got) < count:
                message = await reader.next()
                assert message is not None
                got.append(int(message.split(":", 1)[0]))

        task = asyncio.create_task(read())
        tracemalloc.start()
        for i in range(count):
            hub.post(f"{i}:" + "x" * size)
            if i % 8 == 7:
                await asyncio.sleep(0)
        await asyncio.wait_for(task, 60)
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        assert len(stalled.queue) == queue
        assert [int(m.split(":", 1)[0]) for m in stalled.queue] == list(range(count - queue, count))
        return peak, stalled.dropped, got, hub

    peak, dropped, got, hub = asyncio.run(flood())
    assert got == list(range(count))  # the reading client lost nothing
    assert dropped == count - queue and hub.dropped == count - queue
    assert peak < 3 * 1024 * 1024, peak  # against 100 MB posted


def test_the_hub_refuses_clients_beyond_its_limit_and_counts_departed_drops() -> None:
    async def run() -> None:
        hub = Hub(queue=2, max_clients=2)
        hub.attach(asyncio.get_running_loop())
        first, second = hub.subscribe("a"), hub.subscribe("b")
        assert first is not None and second is not None and hub.subscribe("c") is None
        for i in range(5):
            hub.post(str(i))
        await asyncio.sleep(0.01)
        assert list(first.queue) == ["3", "4"] and first.dropped == 3
        hub.unsubscribe(first)
        assert hub.dropped == 6 and hub.subscribe("c") is not None  # the drops of a departed client stay counted
        hub.close()
        assert await second.next() == "3" and await second.next() == "4" and await second.next() is None

    asyncio.run(run())


@pytest.fixture(scope="module")
def many_models(tmp_path_factory: pytest.TempPathFactory) -> TinyBundle:
    """Twelve models, as many as the paper's ensemble: with --per-model, messages of about 700 bytes."""
    return build_bundle(tmp_path_factory.mktemp("serve-12"), models=12, face_detector=True)


@pytest.fixture(scope="module")
def fast_clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """3 s at 60 fps, 96×72, no sound: many small messages a second."""
    path = tmp_path_factory.mktemp("serve-fast") / "fast.mp4"
    rng = np.random.default_rng(3)
    frames = [rng.integers(0, 255, (72, 96, 3), dtype=np.uint8) for _ in range(8)]
    return write_media(path, lambda i: frames[i % len(frames)], count=180, rate=60)


def stalled_client(port: int) -> socket.socket:
    """A WebSocket client that completes the handshake and then never reads (receive buffer 4 KiB)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", port))
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall(
        f"GET /ws HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode()
    )
    head = b""
    while b"\r\n\r\n" not in head:
        head += sock.recv(1)
    assert head.startswith(b"HTTP/1.1 101"), head
    return sock


@pytest.mark.slow
def test_a_client_that_never_reads_keeps_memory_bounded(many_models, fast_clip) -> None:
    queue = 8
    args = serve_args(many_models, fast_clip, "--loop", "--queue", str(queue), "--per-model", "--no-preview")
    with running_server(args) as server:
        port = int(server.url.rsplit(":", 1)[1].strip("/"))
        stalled = stalled_client(port)
        name = f"127.0.0.1:{stalled.getsockname()[1]}"
        seqs: list[int] = []
        stop = threading.Event()

        def read() -> None:
            with connect(ws_url(server.url), open_timeout=30) as client:
                while not stop.is_set():
                    seqs.append(json.loads(client.recv(timeout=30))["seq"])

        reader = threading.Thread(target=read)
        reader.start()
        try:

            def stalled_entry() -> dict:
                clients = get_json(server.url + "status")["clients"]["clients"]
                return next(c for c in clients if c["name"].startswith(name))

            queued = []

            def dropping() -> bool:
                entry = stalled_entry()
                queued.append(entry["queued"])
                return entry["dropped"] > 0

            assert wait_for(dropping, 120, poll_s=0.5), stalled_entry()
            # from here on every message to the stalled client is one more dropped, none is kept
            rss_start, dropped_start = rss_kib(server.pid), stalled_entry()["dropped"]
            for _ in range(10):
                time.sleep(1)
                queued.append(stalled_entry()["queued"])
            entry = stalled_entry()
            queued.append(entry["queued"])
            rss_end = rss_kib(server.pid)
        finally:
            stop.set()
            reader.join(60)
            stalled.close()
        assert max(queued) <= queue, queued
        assert entry["dropped"] - dropped_start > 200 and entry["sent"] > 0  # ~60 a second
        assert rss_end - rss_start < 20 * 1024, (rss_start, rss_end)
        assert len(seqs) > 100 and seqs == list(range(seqs[0], seqs[0] + len(seqs)))  # the other client lost none
        status = get_json(server.url + "status")
        assert status["dropped_messages"] >= entry["dropped"]
        assert wait_for(lambda: get_json(server.url + "status")["clients"]["connected"] == 0, 30)


@pytest.mark.slow
def test_clients_connecting_and_leaving_in_a_loop(serve_bundle, fast_clip) -> None:
    with running_server(serve_args(serve_bundle, fast_clip, "--loop", "--no-preview")) as server:
        url = ws_url(server.url)
        with connect(url, open_timeout=30) as first:
            first.recv(timeout=30)
        time.sleep(1)
        fds, rss = open_fds(server.pid), rss_kib(server.pid)
        for round_ in range(150):
            with connect(url, open_timeout=30) as client:
                if round_ % 3:
                    client.recv(timeout=30)  # one in three leaves without reading anything
        raw = [stalled_client(int(server.url.rsplit(":", 1)[1].strip("/"))) for _ in range(10)]
        for sock in raw:
            sock.close()  # gone without a closing handshake
        assert wait_for(lambda: get_json(server.url + "status")["clients"]["connected"] == 0, 30)
        assert get_json(server.url + "health")["ok"]
        assert open_fds(server.pid) <= fds + 5
        assert rss_kib(server.pid) - rss < 40 * 1024
        with connect(url, open_timeout=30) as last:
            assert "valence" in json.loads(last.recv(timeout=30))
