"""Helpers of the ``edgeaff serve`` tests: a tiny bundle with the face detector, a short face clip with speech, and
a real server started as ``edgeaff serve`` in a subprocess on a free loopback port.

Every request goes to 127.0.0.1 only.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from media_fixtures import face_frames, speech, write_media
from onnx_bundle import TinyBundle, build_bundle
from process_tools import sigint_as_from_a_terminal

CLIP_FPS = 15
CLIP_FRAMES = 30  # 2 s: short, so that a looping server starts a new pass every two seconds
HIDDEN = range(12, 18)  # frames where the face is out of the picture
TOKEN = "serve-test-token-0123456789"


@pytest.fixture(scope="session")
def serve_bundle(tmp_path_factory: pytest.TempPathFactory) -> TinyBundle:
    """A tiny multimodal bundle (valence and arousal, one fold each) that ships the face detector."""
    return build_bundle(tmp_path_factory.mktemp("serve-bundle"), models=[(0, "valence"), (0, "arousal")],
                        multimodal=True, face_detector=True)  # fmt: skip


@pytest.fixture(scope="session")
def face_clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The astronaut's face (hidden in frames 12-17) at 15 fps, 320×240, 2 s, with speech."""
    path = tmp_path_factory.mktemp("serve-media") / "face.mp4"
    sound = speech()[: int(16000 * CLIP_FRAMES / CLIP_FPS)]
    return write_media(path, face_frames(lambda i: i not in HIDDEN), count=CLIP_FRAMES, rate=CLIP_FPS, audio=sound)


class ServerProcess:
    """``edgeaff serve`` in a subprocess; its URL is read from the line it prints when it listens."""

    def __init__(self, args: list[str], *, env: dict[str, str] | None = None) -> None:
        command = [sys.executable, "-c", "from edgeaff.cli import main; main()", "serve", "--port", "0", *args]
        self.lines: list[str] = []
        self.url = ""
        self._ready = threading.Event()
        with sigint_as_from_a_terminal():
            self.process = subprocess.Popen(
                command,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                env={**os.environ, **(env or {})},
            )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line.rstrip("\n"))
            found = re.search(r"on (http://127\.0\.0\.1:\d+/) \(dashboard\)", line)
            if found:
                self.url = found.group(1)
                self._ready.set()
        self._ready.set()

    def wait_ready(self, timeout_s: float = 120.0) -> str:
        """The server's base URL once it listens (fails with its output if it exits first)."""
        if not self._ready.wait(timeout_s) or not self.url:
            self.stop()
            raise AssertionError("edgeaff serve did not start:\n" + "\n".join(self.lines[-30:]))
        return self.url

    @property
    def pid(self) -> int:
        return self.process.pid

    def output(self) -> str:
        return "\n".join(self.lines)

    def stop(self, sig: int = signal.SIGTERM, timeout_s: float = 30.0) -> int:
        """Send ``sig`` and wait for the exit status."""
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        self._reader.join(5)
        return int(self.process.returncode)


@contextlib.contextmanager
def running_server(args: list[str], *, env: dict[str, str] | None = None) -> Iterator[ServerProcess]:
    """A started server, stopped (SIGTERM) on exit."""
    server = ServerProcess(args, env=env)
    try:
        server.wait_ready()
        yield server
    finally:
        server.stop()


def serve_args(bundle: TinyBundle, source: Path | str, *extra: str) -> list[str]:
    return ["--bundle", str(bundle.path), "--source", str(source), *extra]


def get(url: str, *, token: str | None = None, timeout: float = 30.0) -> tuple[int, dict[str, str], bytes]:
    """``GET url``: status, headers and body (errors included, never raised)."""
    return request("GET", url, token=token, timeout=timeout)


def request(
    method: str,
    url: str,
    *,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
    token: str | None = None,
    timeout: float = 60.0,
) -> tuple[int, dict[str, str], bytes]:
    sent = dict(headers or {})
    if token is not None:
        sent["Authorization"] = f"Bearer {token}"
    call = urllib.request.Request(url, data=body, method=method, headers=sent)
    try:
        with urllib.request.urlopen(call, timeout=timeout) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


def get_json(url: str, *, token: str | None = None) -> Any:
    status, _, body = get(url, token=token)
    assert status == 200, (status, body[:300])
    return json.loads(body)


def rss_kib(pid: int) -> int:
    """Resident memory of a process, from /proc."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError(f"no VmRSS for {pid}")


def open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def ws_url(base: str, token: str | None = None) -> str:
    url = base.replace("http://", "ws://") + "ws"
    return url + (f"?token={token}" if token else "")
