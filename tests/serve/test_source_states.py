"""What ``/status`` says when the live source stalls, comes back, or goes for good: a real RTSP server
(``tools/rtsp_server.py``, GStreamer) frozen, resumed and killed under a running ``edgeaff serve``."""

from __future__ import annotations

import json
import time

import pytest
from process_tools import wait_for
from rtsp_server import RtspTestServer
from serve_support import get_json, running_server, ws_url
from websockets.sync.client import connect

pytestmark = pytest.mark.slow


def source_state(url: str) -> dict:
    return get_json(url + "status")["source"]


def test_a_stream_that_stalls_recovers_and_then_dies(rtsp_server_available: None, serve_bundle) -> None:
    with RtspTestServer(fps=15, size=(160, 120), audio=False) as camera:
        args = ["--bundle", str(serve_bundle.path), "--source", camera.url, "--timeout", "2",
                "--reconnect", "interval=0.3,backoff=1.5,max-interval=1,give-up=6", "--no-preview"]  # fmt: skip
        with running_server(args) as server:
            assert wait_for(lambda: source_state(server.url)["state"] == "running", 60), source_state(server.url)
            state = source_state(server.url)
            assert state["kind"] == "rtsp" and state["live"] and not state["loop"]

            camera.pause()  # the stream freezes: connection open, nothing sent
            assert wait_for(lambda: source_state(server.url)["state"] == "stalled", 20), source_state(server.url)
            # /health says the same; polled, because a paused stream's last frame can still come out about when the
            # reader times out (2 s, seen at 2.2 s), i.e. just as the state turns stalled, and make it running for
            # another 2 s
            stalled = {"ok": True, "source": "stalled"}
            assert wait_for(lambda: get_json(server.url + "health") == stalled, 20), get_json(server.url + "health")
            frames_before = get_json(server.url + "status")["frames"]
            camera.resume()
            assert wait_for(lambda: source_state(server.url)["state"] == "running", 30), source_state(server.url)
            assert wait_for(lambda: get_json(server.url + "status")["frames"] > frames_before + 15, 30)
            with connect(ws_url(server.url), open_timeout=30) as socket:
                assert "valence" in json.loads(socket.recv(timeout=30))

            camera.stop()  # gone for good: reconnection gives up after 6 s
            assert wait_for(lambda: source_state(server.url)["state"] == "timeout", 60), source_state(server.url)
            state = source_state(server.url)
            assert state["detail"] and state["outages"] is not None and state["outages"]["attempts"] >= 1
            # the server itself keeps serving
            time.sleep(0.5)
            assert get_json(server.url + "health") == {"ok": True, "source": "timeout"}
            status = get_json(server.url + "status")
            assert status["frames"] > frames_before and status["fps"] == 0.0
            with connect(ws_url(server.url), open_timeout=30) as socket, pytest.raises(TimeoutError):
                socket.recv(timeout=1)
