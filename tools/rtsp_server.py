"""A real RTSP server on loopback for tests and the soak benchmark: GStreamer's RTSP server (``gst-rtsp-server``).

Run as a script by the system Python, which has the GObject bindings (Debian: ``python3-gi``,
``gir1.2-gst-rtsp-server-1.0``, ``gstreamer1.0-rtsp``, ``gstreamer1.0-plugins-base``, ``-good``, ``-ugly``), it
serves an endless synthetic stream: H.264 video of a moving test pattern and, unless ``--no-audio``, an A-law
440 Hz tone, at ``rtsp://127.0.0.1:PORT/live``::

    /usr/bin/python3 tools/rtsp_server.py --port 8554 --fps 30 --size 160x120

It prints ``ready PORT`` once it listens. Killing it drops every client at once, like a camera that loses power.

Imported (by tests, from any Python), :class:`RtspTestServer` starts, kills and restarts that script in a
subprocess on one port, and :func:`rtsp_server_problem` says why it cannot run here, if it cannot.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import TracebackType

SYSTEM_PYTHON = "/usr/bin/python3"
MOUNT = "/live"
DEBIAN_PACKAGES = (
    "gstreamer1.0-rtsp gir1.2-gst-rtsp-server-1.0 gstreamer1.0-plugins-base gstreamer1.0-plugins-good "
    "gstreamer1.0-plugins-ugly python3-gi"
)
_ELEMENTS = ("videotestsrc", "x264enc", "rtph264pay", "audiotestsrc", "alawenc", "rtppcmapay")
_CHECK = (
    "import gi; gi.require_version('Gst', '1.0'); gi.require_version('GstRtspServer', '1.0'); "
    "from gi.repository import Gst, GstRtspServer; Gst.init(None); "
    f"missing = [e for e in {_ELEMENTS!r} if Gst.ElementFactory.find(e) is None]; "
    "print(' '.join(missing))"
)


def rtsp_server_problem() -> str | None:
    """Why the server cannot run on this machine (``None`` when it can)."""
    if not Path(SYSTEM_PYTHON).exists():
        return f"no {SYSTEM_PYTHON}"
    try:
        done = subprocess.run([SYSTEM_PYTHON, "-c", _CHECK], capture_output=True, text=True, timeout=60, check=False)
    except subprocess.TimeoutExpired:
        return "the GStreamer check did not finish"
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["?"])[-1]
        return f"GStreamer's RTSP server is not importable ({last}); apt-get install {DEBIAN_PACKAGES}"
    if done.stdout.strip():
        return f"GStreamer elements missing: {done.stdout.strip()}; apt-get install {DEBIAN_PACKAGES}"
    return None


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class RtspTestServer:
    """The server script in a subprocess, on one port across restarts (use as a context manager).

    Args:
        port: TCP port on 127.0.0.1 (``None``: a free one).
        fps: video frame rate.
        size: ``(width, height)`` of the video.
        audio: serve the tone too.
    """

    def __init__(self, port: int | None = None, *, fps: int = 30, size: tuple[int, int] = (160, 120),
                 audio: bool = True) -> None:  # fmt: skip
        self.port = port if port is not None else free_port()
        self.fps = fps
        self.size = size
        self.audio = audio
        self.starts = 0
        self._process: subprocess.Popen[bytes] | None = None
        self._log: Path | None = None

    @property
    def url(self) -> str:
        """The stream's address."""
        return f"rtsp://127.0.0.1:{self.port}{MOUNT}"

    @property
    def running(self) -> bool:
        """Whether the server process is up."""
        return self._process is not None and self._process.poll() is None

    def start(self, *, wait_s: float = 30.0) -> None:
        """Start the server and wait until it listens."""
        if self.running:
            raise RuntimeError("the RTSP test server is already running")
        command = [SYSTEM_PYTHON, str(Path(__file__).resolve()), "--port", str(self.port), "--fps", str(self.fps),
                   "--size", f"{self.size[0]}x{self.size[1]}"]  # fmt: skip
        if not self.audio:
            command.append("--no-audio")
        # the system Python, without the virtual environment's variables
        env = {key: value for key, value in os.environ.items() if key not in ("PYTHONPATH", "PYTHONHOME")}
        # The server writes to a file, not a pipe: this process then holds no descriptor of it while it runs,
        # and the descriptor counts of the soak are the source's alone.
        with tempfile.NamedTemporaryFile("w", prefix="rtsp-server-", suffix=".log", delete=False) as log:
            self._log = Path(log.name)
            self._process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline:
            if "ready" in self._log.read_text():
                self.starts += 1
                return
            if self._process.poll() is not None:
                break
            time.sleep(0.05)
        output = self._log.read_text().strip().splitlines()
        self.stop()
        raise RuntimeError(f"the RTSP test server did not start: {' | '.join(output[-5:]) or 'no output'}")

    def stop(self) -> None:
        """Kill the server (clients see their connection close) and wait for it."""
        process, self._process = self._process, None
        if process is not None:
            if process.poll() is None:
                process.kill()
            process.wait(10)
        if self._log is not None:
            self._log.unlink(missing_ok=True)
            self._log = None

    def pause(self) -> None:
        """Freeze the server (SIGSTOP): connections stay open but nothing is sent."""
        if self._process is not None:
            self._process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        """Undo :meth:`pause`."""
        if self._process is not None:
            self._process.send_signal(signal.SIGCONT)

    def __enter__(self) -> RtspTestServer:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.resume()
        self.stop()


def _serve(port: int, fps: int, width: int, height: int, audio: bool) -> None:
    import gi

    gi.require_version("Gst", "1.0")
    gi.require_version("GstRtspServer", "1.0")
    from gi.repository import GLib, Gst, GstRtspServer

    Gst.init(None)
    video = (
        f"videotestsrc is-live=true pattern=ball ! video/x-raw,width={width},height={height},framerate={fps}/1 ! "
        f"x264enc tune=zerolatency speed-preset=ultrafast key-int-max={max(fps // 2, 1)} ! "
        "rtph264pay name=pay0 pt=96 config-interval=1"
    )
    sound = (
        " audiotestsrc is-live=true wave=sine freq=440 volume=0.5 ! audio/x-raw,rate=8000,channels=1 ! alawenc ! "
        "rtppcmapay name=pay1 pt=8"
        if audio
        else ""
    )
    factory = GstRtspServer.RTSPMediaFactory()
    factory.set_launch(f"( {video}{sound} )")
    factory.set_shared(True)
    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(str(port))
    server.get_mount_points().add_factory(MOUNT, factory)
    if not server.attach(None):
        print(f"error: cannot listen on 127.0.0.1:{port}", flush=True)
        sys.exit(1)
    print(f"ready {port}", flush=True)
    GLib.MainLoop().run()


def main() -> None:
    """Serve until killed (see the module docstring)."""
    parser = argparse.ArgumentParser(description="A synthetic RTSP stream on 127.0.0.1 for tests.")
    parser.add_argument("--port", type=int)
    parser.add_argument("--fps", type=int, default=30)
    parser.add_argument("--size", default="160x120", help="WIDTHxHEIGHT")
    parser.add_argument("--no-audio", action="store_true")
    parser.add_argument("--packages", action="store_true", help="print the Debian packages it needs, and exit")
    args = parser.parse_args()
    if args.packages:
        print(DEBIAN_PACKAGES)
        return
    if args.port is None:
        parser.error("--port is required")
    width, height = (int(part) for part in args.size.lower().split("x"))
    _serve(args.port, args.fps, width, height, not args.no_audio)


if __name__ == "__main__":
    main()
