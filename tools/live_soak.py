"""A soak of a reconnecting live source: read the RTSP test server for a while, kill and restart it regularly, and
sample this process's memory, open file descriptors and threads as it goes.

Used by the soak test (``tests/runtime/io/test_live_soak.py``, about a minute) and by ``benchmarks/soak.py`` (as
long as you like). The source is read at the source level, as fast as it delivers, keeping nothing: what grows is
what the source itself keeps.
"""

from __future__ import annotations

import dataclasses
import os
import threading
import time
from pathlib import Path

from rtsp_server import RtspTestServer

from edgeaff.runtime.io.open import open_source
from edgeaff.runtime.io.sources import (
    AudioChunk,
    LiveSource,
    Outages,
    ReconnectPolicy,
    SourceGap,
    SourceTimeoutError,
    VideoFrame,
)

RATE = 16000


def rss_mib() -> float:
    """Resident memory of this process in MiB (``VmRSS`` of ``/proc/self/status``)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024.0
    raise RuntimeError("no VmRSS in /proc/self/status")


def open_fds() -> int:
    """File descriptors open in this process."""
    return len(os.listdir("/proc/self/fd"))


@dataclasses.dataclass(frozen=True)
class SoakSample:
    """The process and the stream at one moment of the soak."""

    t_s: float
    frames: int
    gaps: int
    restarts: int
    video_s: float
    audio_s: float
    rss_mib: float
    fds: int
    threads: int


@dataclasses.dataclass(frozen=True)
class SoakSettings:
    """What the soak does.

    Attributes:
        duration_s: how long to read.
        restart_every_s: seconds of streaming between two kills of the server.
        down_s: how long the server stays down each time.
        fps: the server's frame rate (above a camera's 30 to put more frames through per second).
        width: video width.
        height: video height.
        audio: serve sound too.
        sample_every_s: seconds between two samples.
        timeout_s: the source's read time-out.
        policy: the source's reconnect policy.
    """

    duration_s: float = 60.0
    restart_every_s: float = 8.0
    down_s: float = 1.0
    fps: int = 120
    width: int = 128
    height: int = 96
    audio: bool = True
    sample_every_s: float = 2.0
    timeout_s: float = 2.0
    policy: ReconnectPolicy = dataclasses.field(
        default_factory=lambda: ReconnectPolicy(interval_s=0.2, backoff=2.0, max_interval_s=1.0, give_up_s=10.0)
    )


@dataclasses.dataclass(frozen=True)
class SoakResult:
    """Samples over time, then the totals.

    Attributes:
        before: the process before the source was opened (server running).
        samples: taken every ``sample_every_s`` while reading.
        after: the process after the source was closed and the server stopped.
        frames: frames read.
        gaps: gaps read.
        restarts: server kills followed by a restart.
        dropped_frames: frames the source dropped because the reader was late.
        outages: the source's own count.
        ended: ``"duration"`` or the error that ended the read early.
    """

    settings: SoakSettings
    before: SoakSample
    samples: list[SoakSample]
    after: SoakSample
    frames: int
    gaps: int
    restarts: int
    dropped_frames: int
    outages: Outages
    ended: str


class _Restarter:
    """Kills the server every ``every_s`` and starts it again ``down_s`` later, in a thread, until stopped."""

    def __init__(self, server: RtspTestServer, every_s: float, down_s: float) -> None:
        self.server, self.every_s, self.down_s = server, every_s, down_s
        self.restarts = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="soak-restarter", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(self.every_s):
            self.server.stop()
            self._stop.wait(self.down_s)  # down even when stopping, so the server is never left half-started
            self.server.start()
            self.restarts += 1


def run_soak(settings: SoakSettings, *, report: bool = False) -> SoakResult:
    """Run one soak (see the module docstring); ``report`` prints each sample as it is taken."""
    frames = gaps = 0
    audio_samples = 0
    video_s = 0.0
    ended = "duration"
    samples: list[SoakSample] = []
    restarter: _Restarter | None = None

    def sample(started: float) -> SoakSample:
        done = restarter.restarts if restarter is not None else 0
        elapsed = round(time.perf_counter() - started, 2)
        taken = SoakSample(elapsed, frames, gaps, done, round(video_s, 3), round(audio_samples / RATE, 3),
                           round(rss_mib(), 1), open_fds(), threading.active_count())  # fmt: skip
        if report:
            print(f"{taken.t_s:8.1f} s  frames {taken.frames:8d}  gaps {taken.gaps:4d}  video {taken.video_s:8.2f} s  "
                  f"audio {taken.audio_s:8.2f} s  rss {taken.rss_mib:7.1f} MiB  "
                  f"fds {taken.fds:4d}  threads {taken.threads:3d}", flush=True)  # fmt: skip
        return taken

    fds_free, threads_free, rss_free = open_fds(), threading.active_count(), rss_mib()
    server = RtspTestServer(fps=settings.fps, size=(settings.width, settings.height), audio=settings.audio)
    with server:
        started = time.perf_counter()
        before = SoakSample(0.0, 0, 0, 0, 0.0, 0.0, round(rss_free, 1), fds_free, threads_free)
        source = open_source(server.url, timeout_s=settings.timeout_s, reconnect=settings.policy, sample_rate=RATE)
        with source:
            restarter = _Restarter(server, settings.restart_every_s, settings.down_s)
            restarter.start()
            next_sample = started + settings.sample_every_s
            try:
                for item in source:
                    if isinstance(item, VideoFrame):
                        frames += 1
                        video_s = item.t_s
                    elif isinstance(item, AudioChunk):
                        audio_samples += len(item.samples)
                    elif isinstance(item, SourceGap):
                        gaps += 1
                    now = time.perf_counter()
                    if now >= next_sample:
                        samples.append(sample(started))
                        next_sample += settings.sample_every_s
                    if now - started >= settings.duration_s:
                        break
            except SourceTimeoutError as exc:
                ended = str(exc)
            finally:
                restarter.stop()
            dropped = source.dropped_frames
            outages = source.outages if isinstance(source, LiveSource) else Outages()
    after = sample(started)
    return SoakResult(settings, before, samples, after, frames, gaps, restarter.restarts, dropped, outages, ended)
