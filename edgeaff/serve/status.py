"""What the server knows about its source and its predictions: counters, recent rates, latency percentiles and
the source's state, shared between the pipeline thread (which writes) and the web side (which reads).

Source states (:class:`SourceState`): ``starting`` (opening the source), ``running``, ``stalled`` (running, but no
prediction for :data:`STALL_AFTER_S` seconds: a camera or stream that stopped delivering, possibly reconnecting),
``ended`` (a file reached its end and does not loop), ``timeout`` (a live source gave up: nothing came within the
time-out or reconnection gave up), ``failed`` (an error, in ``detail``) and ``stopped`` (the server is shutting
down). The server keeps serving in every state.
"""

from __future__ import annotations

import collections
import dataclasses
import enum
import threading
import time
from typing import Any

import numpy as np

from edgeaff.runtime import Prediction

LATENCY_WINDOW = 1000
"""Predictions the latency percentiles are computed over (the most recent ones)."""
RATE_WINDOW_S = 5.0
"""Seconds the frame rate is measured over."""
STALL_AFTER_S = 2.0
"""A running source with no prediction for this long is reported ``stalled``."""


class SourceState(str, enum.Enum):
    """Where the live source stands (see the module docstring)."""

    STARTING = "starting"
    RUNNING = "running"
    STALLED = "stalled"
    ENDED = "ended"
    TIMEOUT = "timeout"
    FAILED = "failed"
    STOPPED = "stopped"


@dataclasses.dataclass
class _Counts:
    frames: int = 0
    faces: int = 0
    with_audio: int = 0
    gaps: int = 0
    loops: int = 0
    runs: int = 0


class FeedStatus:
    """Thread-safe counters and state of the live feed (written by the pipeline thread)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts = _Counts()
        self._latency: collections.deque[float] = collections.deque(maxlen=LATENCY_WINDOW)
        self._times: collections.deque[float] = collections.deque()
        self._state = SourceState.STARTING
        self._detail = ""
        self._ended: str | None = None
        self._last_prediction: float | None = None
        self._source: dict[str, Any] = {}
        self._live_counts: dict[str, Any] = {"dropped_frames": 0, "outages": None}
        self.started = time.monotonic()

    # -- written by the pipeline thread ----------------------------------------------------------------------------

    def source_opened(self, info: dict[str, Any]) -> None:
        """A run started on the source (``info``: what is known about it)."""
        with self._lock:
            self._source = dict(info)
            self._counts.runs += 1
            self._state = SourceState.RUNNING
            self._detail = ""
            self._ended = None

    def record(self, prediction: Prediction) -> None:
        """Count one prediction."""
        now = time.monotonic()
        with self._lock:
            counts = self._counts
            counts.frames += 1
            counts.faces += int(prediction.face)
            counts.with_audio += int(prediction.audio)
            counts.gaps += int(prediction.gap)
            if prediction.latency_ms is not None:
                self._latency.append(float(prediction.latency_ms))
            self._times.append(now)
            while self._times and now - self._times[0] > RATE_WINDOW_S:
                self._times.popleft()
            self._last_prediction = now

    def live_counts(self, *, dropped_frames: int, outages: dict[str, Any] | None) -> None:
        """The source's own counts (frames it dropped, reconnections), cumulative over runs."""
        with self._lock:
            self._live_counts = {"dropped_frames": int(dropped_frames), "outages": outages}

    def looped(self) -> None:
        """A file reached its end and starts again."""
        with self._lock:
            self._counts.loops += 1

    def finished(self, state: SourceState, *, ended: str | None = None, detail: str = "") -> None:
        """The source is over for good: ``state`` says how, ``detail`` why."""
        with self._lock:
            self._state = state
            self._ended = ended
            self._detail = detail

    # -- read by the web side --------------------------------------------------------------------------------------

    @property
    def state(self) -> SourceState:
        """The source's state now (``stalled`` is derived from the time since the last prediction)."""
        with self._lock:
            return self._current_state(time.monotonic())

    def _current_state(self, now: float) -> SourceState:
        if self._state is SourceState.RUNNING:
            last = self._last_prediction
            if last is not None and now - last > STALL_AFTER_S:
                return SourceState.STALLED
        return self._state

    def snapshot(self) -> dict[str, Any]:
        """Everything ``/status`` reports about the source and the predictions (JSON-ready)."""
        now = time.monotonic()
        with self._lock:
            counts = dataclasses.replace(self._counts)
            latency = np.array(self._latency, dtype=np.float64)
            times = list(self._times)
            state = self._current_state(now)
            source = dict(self._source)
            live = dict(self._live_counts)
            detail, ended, last = self._detail, self._ended, self._last_prediction
        recent = [t for t in times if now - t <= RATE_WINDOW_S]
        fps = None
        if len(recent) >= 2 and recent[-1] > recent[0]:
            fps = (len(recent) - 1) / (recent[-1] - recent[0])
        if last is not None and now - last > STALL_AFTER_S:
            fps = 0.0  # nothing is coming
        percentiles = None
        if latency.size:
            p50, p90, p99 = np.percentile(latency, [50, 90, 99])
            percentiles = {"p50": float(p50), "p90": float(p90), "p99": float(p99), "window": int(latency.size)}
        return {
            "source": {
                **source,
                "state": state.value,
                "detail": detail,
                "ended": ended,
                "runs": counts.runs,
                "loops": counts.loops,
                "seconds_since_last_prediction": None if last is None else round(now - last, 3),
                "dropped_frames": live["dropped_frames"],
                "outages": live["outages"],
                "gaps": counts.gaps,
            },
            "frames": counts.frames,
            "frames_with_face": counts.faces,
            "frames_with_audio": counts.with_audio,
            "fps": fps,
            "latency_ms": percentiles,
            "dropped_frames": live["dropped_frames"],
            "uptime_s": round(now - self.started, 3),
        }
