"""``edgeaff serve`` as a user runs it: a subprocess on a free loopback port with a file source, checked over real
HTTP and WebSocket connections."""

from __future__ import annotations

import json
import math
import signal
import threading
import time
from pathlib import Path

import pytest
from process_tools import wait_for
from serve_support import (
    CLIP_FRAMES,
    TOKEN,
    get,
    get_json,
    request,
    running_server,
    serve_args,
    ws_url,
)
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect

from edgeaff.runtime import Pipeline
from edgeaff.runtime.sinks.message import prediction_record
from edgeaff.serve.metrics import parse_exposition

pytestmark = pytest.mark.slow

COMPARED = ("frame", "time_s", "valence", "arousal", "face", "box", "audio", "gap")


ONE_CROP = ("--batch", "1")
"""The server plays a file at its own pace and embeds the frames that have arrived, usually one per call; the
pipeline over the file gathers up to 16. A graph call's batch can change the last bit of a float, so the tests that
compare values exactly fix it on both sides."""


def reference(bundle_path: Path, clip: Path, *, batch: int | None = None) -> list[dict]:
    """The pipeline's own predictions for the clip, in stream mode, as messages (``batch``: crops per visual graph
    call; ``None``: the runtime's choice, as for a file read at full speed: an upload, ``edgeaff infer``)."""
    with Pipeline(bundle_path, mode="stream", batch=batch) as pipeline:
        return [prediction_record(p, pipeline.model_names) for p in pipeline.run(str(clip))]


def collect_pass(url: str, frames: int, *, timeout_s: float = 90.0) -> list[dict]:
    """Messages of the first complete pass (frames 0 .. frames-1 of one loop) a WebSocket client sees."""
    by_loop: dict[int, list[dict]] = {}
    deadline = time.monotonic() + timeout_s
    with connect(url, open_timeout=30) as socket:
        while time.monotonic() < deadline:
            message = json.loads(socket.recv(timeout=30))
            entries = by_loop.setdefault(message["loop"], [])
            if message["frame"] == 0 or entries:
                entries.append(message)
            if len(entries) == frames:
                return entries
    raise AssertionError(f"no complete pass within {timeout_s} s: {[(k, len(v)) for k, v in by_loop.items()]}")


def test_websocket_messages_equal_the_pipelines_predictions(serve_bundle, face_clip) -> None:
    expected = reference(serve_bundle.path, face_clip, batch=1)
    assert len(expected) == CLIP_FRAMES and any(e["face"] for e in expected) and not all(e["face"] for e in expected)
    with running_server(serve_args(serve_bundle, face_clip, "--loop", *ONE_CROP)) as server:
        got = collect_pass(ws_url(server.url), CLIP_FRAMES)
    assert [m["frame"] for m in got] == list(range(CLIP_FRAMES))
    seqs = [m["seq"] for m in got]
    assert seqs == list(range(seqs[0], seqs[0] + CLIP_FRAMES))  # nothing dropped
    for message, want in zip(got, expected, strict=True):
        assert {k: message[k] for k in COMPARED} == {k: want[k] for k in COMPARED}  # exact: JSON floats round-trip
        assert message["latency_ms"] >= 0 and message["emitted_at"] > 0


def test_status_counts_the_source_to_its_end_and_the_server_stays_up(serve_bundle, face_clip) -> None:
    expected = reference(serve_bundle.path, face_clip, batch=1)
    with running_server(serve_args(serve_bundle, face_clip, *ONE_CROP)) as server:
        ended = wait_for(lambda: get_json(server.url + "status")["source"]["state"] == "ended", 60)
        status = get_json(server.url + "status")
        assert ended, status
        assert status["frames"] == CLIP_FRAMES
        assert status["frames_with_face"] == sum(e["face"] for e in expected)
        assert status["frames_with_audio"] == sum(e["audio"] for e in expected)
        assert status["source"]["ended"] == "end_of_stream" and status["source"]["kind"] == "file"
        assert status["source"]["runs"] == 1 and status["source"]["loops"] == 0
        assert status["backend"] == "ort-cpu" and status["precision"] == "fp32" and status["mode"] == "stream"
        assert status["latency_ms"]["window"] == CLIP_FRAMES
        assert 0 <= status["latency_ms"]["p50"] <= status["latency_ms"]["p99"]
        assert status["dropped_frames"] == 0 and status["uptime_s"] > 0
        # the last prediction, the metrics and the health check agree, after the end
        latest = get_json(server.url + "latest")
        assert {k: latest[k] for k in COMPARED} == {k: expected[-1][k] for k in COMPARED}
        assert latest["seq"] == CLIP_FRAMES - 1
        metrics = parse_exposition(get(server.url + "metrics")[2].decode())
        assert metrics["edgeaff_frames_total"] == CLIP_FRAMES
        assert metrics["edgeaff_frames_with_face_total"] == status["frames_with_face"]
        assert metrics["edgeaff_latency_seconds_count"] == CLIP_FRAMES
        assert metrics["edgeaff_source_up"] == 0.0
        assert get_json(server.url + "health") == {"ok": True, "source": "ended"}
        code, headers, body = get(server.url + "preview.jpg")
        assert code == 200 and headers["content-type"] == "image/jpeg" and body[:2] == b"\xff\xd8"
        # a client that connects now is served (no messages: the source is over) and can leave
        with connect(ws_url(server.url), open_timeout=30) as socket, pytest.raises(TimeoutError):
            socket.recv(timeout=1)
        assert get_json(server.url + "status")["clients"]["connected"] == 0


def test_every_endpoint_but_health_needs_the_token(serve_bundle, face_clip) -> None:
    with running_server(serve_args(serve_bundle, face_clip, "--loop"), env={"EDGEAFF_SERVE_TOKEN": TOKEN}) as server:
        assert TOKEN not in server.output()  # never printed
        wait_for(lambda: get(server.url + "latest", token=TOKEN)[0] == 200, 30)
        paths = ["", "status", "latest", "metrics", "preview.jpg", "static/dashboard.js", "static/uPlot.iife.min.js"]
        for path in paths:
            for token in (None, "wrong-token-0123456789", TOKEN[:-1], TOKEN + "x"):
                code, headers, body = get(server.url + path, token=token)
                assert (code, body) == (401, b"unauthorized\n"), path
                assert headers.get("www-authenticate", "").startswith("Bearer")
            assert get(server.url + path, token=TOKEN)[0] == 200, path
            assert get(server.url + path + f"?token={TOKEN}")[0] == 200, path
        code, _, body = request("POST", server.url + "predict", body=b"x" * 100)
        assert (code, body) == (401, b"unauthorized\n")
        for url in (ws_url(server.url), ws_url(server.url, "wrong-token-0123456789")):
            with pytest.raises(InvalidStatus) as refused:
                connect(url, open_timeout=30)
            assert refused.value.response.status_code == 401
        with connect(ws_url(server.url, TOKEN), open_timeout=30) as socket:
            assert "valence" in json.loads(socket.recv(timeout=30))
        with connect(ws_url(server.url), additional_headers={"Authorization": f"Bearer {TOKEN}"}) as socket:
            assert "valence" in json.loads(socket.recv(timeout=30))
        assert get(server.url + "health") == (200, get(server.url + "health")[1], b'{"ok":true,"source":"running"}')
        # the dashboard passes the token on to its own assets
        page = get(server.url, token=TOKEN)[2].decode()
        assert f"static/dashboard.js?token={TOKEN}" in page


def test_uploads_are_checked_before_decoding_and_run_like_the_live_view(
    serve_bundle, face_clip, tmp_path: Path
) -> None:
    temp = tmp_path / "tmp"
    temp.mkdir()
    args = serve_args(serve_bundle, face_clip, "--max-upload-mb", "1", "--max-upload-s", "3")
    with running_server(args, env={"TMPDIR": str(temp)}) as server:
        private = list(temp.glob("edgeaff-serve-*"))
        assert len(private) == 1 and private[0].stat().st_mode & 0o777 == 0o700
        upload = server.url + "predict"
        # larger than the limit: refused from its declared size, and from its bytes when no size is declared
        big = face_clip.read_bytes() + bytes(1024 * 1024)
        code, _, body = request("POST", upload, body=big)
        assert code == 413 and "larger than the limit of 1 MiB (--max-upload-mb)" in json.loads(body)["error"]

        def chunks():
            yield face_clip.read_bytes()
            for _ in range(20):
                yield bytes(64 * 1024)

        code, _, body = request("POST", upload, body=chunks(), headers={"Transfer-Encoding": "chunked"})
        assert code == 413, body
        # not a video
        for content in (b"%PDF-1.7\n" + bytes(2000), b"RIFF\x24\x00\x00\x00WAVEfmt " + bytes(600), b"hello"):
            code, _, body = request("POST", upload, body=content)
            assert code == 415 and "not a video file" in json.loads(body)["error"], body
        code, _, body = request("POST", upload, body=b"")
        assert code == 400 and "no body" in json.loads(body)["error"]
        # a video container with a broken header: refused before any decoding
        code, _, body = request("POST", upload, body=face_clip.read_bytes()[:600])
        assert code in (415, 422), body
        assert str(temp) not in body.decode()
        # a valid clip: its per-frame predictions are the pipeline's
        code, _, body = request("POST", upload, body=face_clip.read_bytes(), headers={"Content-Type": "video/mp4"})
        assert code == 200, body
        result = json.loads(body)
        expected = reference(serve_bundle.path, face_clip)
        assert result["frames"] == CLIP_FRAMES and result["container"] == "MP4/MOV" and result["mode"] == "stream"
        assert math.isclose(result["duration_s"], CLIP_FRAMES / 15, rel_tol=0.05)
        got = [{k: p[k] for k in COMPARED} for p in result["predictions"]]
        assert got == [{k: e[k] for k in COMPARED} for e in expected]
        # nothing left behind in the private folder
        assert list(private[0].iterdir()) == []
        uploads = get_json(server.url + "status")["uploads"]
        assert uploads["done"] == 1 and uploads["refused"] >= 6
    assert not private[0].exists()


def test_an_upload_longer_than_the_limit_is_refused(serve_bundle, face_clip) -> None:
    with running_server(serve_args(serve_bundle, face_clip, "--max-upload-s", "1")) as server:
        code, _, body = request("POST", server.url + "predict", body=face_clip.read_bytes())
        assert code == 422
        assert json.loads(body)["error"] == "the clip is 2.0 s long; the limit is 1 s (--max-upload-s)"


def test_twenty_clients_at_once_each_get_every_message(serve_bundle, face_clip) -> None:
    clients = 20
    wanted = 45  # three seconds of the 15 fps clip
    with running_server(serve_args(serve_bundle, face_clip, "--loop", "--max-clients", "20")) as server:
        url = ws_url(server.url)
        received: list[list[int]] = [[] for _ in range(clients)]
        errors: list[BaseException] = []
        connected = threading.Barrier(clients + 1, timeout=60)

        def client(index: int) -> None:
            try:
                with connect(url, open_timeout=60) as socket:
                    connected.wait()
                    while len(received[index]) < wanted:
                        received[index].append(json.loads(socket.recv(timeout=30))["seq"])
                    connected.wait()
            except BaseException as exc:
                errors.append(exc)
                connected.abort()

        threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
        for thread in threads:
            thread.start()
        connected.wait()
        status = get_json(server.url + "status")
        assert status["clients"]["connected"] == clients
        # one more is refused while twenty are connected
        with pytest.raises(InvalidStatus) as refused:
            connect(url, open_timeout=30)
        assert refused.value.response.status_code == 503
        connected.wait()
        for thread in threads:
            thread.join(60)
        assert not errors, errors
        for seqs in received:
            assert seqs == list(range(seqs[0], seqs[0] + wanted))  # in order, none dropped
        assert wait_for(lambda: get_json(server.url + "status")["clients"]["connected"] == 0, 10)
        assert get_json(server.url + "status")["dropped_messages"] == 0


def test_sigterm_and_ctrl_c_shut_down_cleanly(serve_bundle, face_clip, tmp_path: Path) -> None:
    for sig, word in ((signal.SIGTERM, "SIGTERM"), (signal.SIGINT, "Ctrl-C")):
        temp = tmp_path / word
        temp.mkdir()
        args = serve_args(serve_bundle, face_clip, "--loop")
        with running_server(args, env={"TMPDIR": str(temp)}) as server, connect(ws_url(server.url)) as socket:
            socket.recv(timeout=30)
            assert len(list(temp.glob("edgeaff-serve-*"))) == 1
            started = time.monotonic()
            code = server.stop(sig)
            assert code == 0, server.output()
            assert time.monotonic() - started < 15
            assert f"stopped ({word})" in server.output() and "Traceback" not in server.output()
            assert list(temp.glob("edgeaff-serve-*")) == []  # the private folder is gone
            with pytest.raises(ConnectionClosed) as closed:  # the client was told
                while True:
                    socket.recv(timeout=10)
            assert closed.value.rcvd is not None and closed.value.rcvd.code in (1001, 1012)  # going away, restarting
