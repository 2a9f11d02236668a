"""``--publish mqtt://…``: a real Mosquitto broker on loopback (Debian's ``mosquitto``, started here) receives the
predictions of ``edgeaff infer`` and ``edgeaff serve``."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from process_tools import wait_for
from serve_support import CLIP_FRAMES, running_server, serve_args, ws_url
from system_needs import require_system
from test_server import COMPARED, reference
from websockets.sync.client import connect

from edgeaff.runtime import InvalidInputError
from edgeaff.runtime.sinks.mqtt import check_qos, parse_mqtt_url

MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[int]:
    """A Mosquitto broker on 127.0.0.1 (anonymous, no persistence); its port."""
    require_system(None if Path(MOSQUITTO).exists() else "mosquitto is not installed (apt-get install mosquitto)")
    port = free_port()
    config = tmp_path / "mosquitto.conf"
    config.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n")
    process = subprocess.Popen([MOSQUITTO, "-c", str(config)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:

        def listening() -> bool:
            with socket.socket() as probe:
                return probe.connect_ex(("127.0.0.1", port)) == 0

        assert wait_for(listening, 20), process.stdout.read() if process.poll() is not None else "no port"
        yield port
    finally:
        process.terminate()
        process.wait(10)


class Subscriber:
    """A paho client subscribed to one topic, collecting JSON payloads."""

    def __init__(self, port: int, topic: str) -> None:
        self.messages: list[dict] = []
        self._subscribed = threading.Event()
        self.client = mqtt.Client(callback_api_version=mqtt.CallbackAPIVersion.VERSION2)
        self.client.on_message = lambda c, u, message: self.messages.append(json.loads(message.payload))
        self.client.on_subscribe = lambda *args: self._subscribed.set()
        self.client.connect("127.0.0.1", port)
        self.client.subscribe(topic, qos=1)
        self.client.loop_start()
        assert self._subscribed.wait(10)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def test_infer_publishes_every_prediction(broker: int, serve_bundle, face_clip, tmp_path: Path) -> None:
    subscriber = Subscriber(broker, "lab/edgeaff")
    try:
        result = subprocess.run(
            [sys.executable, "-c", "from edgeaff.cli import main; main()", "infer", str(face_clip), "--bundle",
             str(serve_bundle.path), "--mode", "stream", "--live", "-o", str(tmp_path / "out"), "--publish",
             f"mqtt://127.0.0.1:{broker}/lab/edgeaff", "--qos", "1"],
            capture_output=True, text=True, timeout=300, check=False,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        assert wait_for(lambda: len(subscriber.messages) >= CLIP_FRAMES, 20)
    finally:
        subscriber.close()
    expected = reference(serve_bundle.path, face_clip)
    got = [{k: m[k] for k in COMPARED} for m in subscriber.messages]
    assert got == [{k: e[k] for k in COMPARED} for e in expected]
    summary = json.loads((tmp_path / "out" / "face.json").read_text())
    assert summary["publish"] == {
        "url": f"mqtt://127.0.0.1:{broker}/lab/edgeaff",
        "qos": 1,
        "published": CLIP_FRAMES,
        "dropped": 0,
    }


def test_serve_publishes_what_it_streams(broker: int, serve_bundle, face_clip) -> None:
    subscriber = Subscriber(broker, "edgeaff/#")
    try:
        args = serve_args(serve_bundle, face_clip, "--loop", "--publish", f"mqtt://127.0.0.1:{broker}/edgeaff/live")
        with running_server(args) as server, connect(ws_url(server.url), open_timeout=30) as socket:
            streamed = [json.loads(socket.recv(timeout=30)) for _ in range(20)]
        assert wait_for(lambda: any(m["seq"] == streamed[-1]["seq"] for m in subscriber.messages), 10)
    finally:
        subscriber.close()
    published = {m["seq"]: m for m in subscriber.messages}
    for message in streamed:
        assert published[message["seq"]] == message  # the same message, byte for byte after parsing


def test_an_unreachable_broker_is_one_line(serve_bundle, face_clip, tmp_path: Path) -> None:
    port = free_port()  # nothing listens there
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-c", "from edgeaff.cli import main; main()", "infer", str(face_clip), "--bundle",
         str(serve_bundle.path), "-o", str(tmp_path), "--publish", f"mqtt://127.0.0.1:{port}/x"],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert f"error: --publish: cannot connect to the MQTT broker at 127.0.0.1:{port}" in result.stderr
    assert time.monotonic() - started < 60
    assert not list(tmp_path.glob("face.*"))  # nothing was written


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("http://host/topic", "give mqtt://HOST:PORT/TOPIC"),
        ("mqtt://host", "plain topic name"),
        ("mqtt://host:1883/a/+/b", "plain topic name"),
        ("mqtt://host:1883/a/#", "plain topic name"),
        ("mqtt://host:99999/a", "port must be a number"),
        ("mqtt:///topic", "no broker host"),
    ],
)
def test_bad_publish_urls(url: str, problem: str) -> None:
    with pytest.raises(InvalidInputError, match=problem):
        parse_mqtt_url(url)


def test_publish_urls_and_qos() -> None:
    target = parse_mqtt_url("mqtts://user:secret@broker.local/lab/room%201")
    assert (target.host, target.port, target.topic, target.tls) == ("broker.local", 8883, "lab/room 1", True)
    assert (target.username, target.password) == ("user", "secret")
    assert "secret" not in target.url and "secret" not in repr(target)
    assert parse_mqtt_url("mqtt://[::1]/t").url == "mqtt://[::1]:1883/t"
    assert [check_qos(q) for q in (0, 1, 2)] == [0, 1, 2]
    for bad in (3, -1, True):
        with pytest.raises(InvalidInputError, match="--qos must be 0, 1 or 2"):
            check_qos(bad)
