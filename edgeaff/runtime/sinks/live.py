"""``--live``: one line per prediction as it comes (stream mode)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from edgeaff.runtime.pipeline.prediction import Prediction
from edgeaff.runtime.sinks.base import RunContext


def live_line(prediction: Prediction, dimensions: tuple[str, ...]) -> str:
    """``  frame   time s  valence +0.123  arousal -0.045  face 1 audio 1   42 ms``; multi-face mode: ``track K``
    after the time, and ``nobody`` for a frame without anybody."""
    values = prediction.values
    latency = "" if prediction.latency_ms is None else f"  {prediction.latency_ms:6.0f} ms"
    start = f"{prediction.frame:>7} {prediction.time_s:9.3f} s"
    if not prediction.subject:
        return f"{start}  nobody{latency}"
    track = "" if prediction.track is None else f"  track {prediction.track}"
    shown = "  ".join(f"{d} {values[d]:+.3f}" for d in dimensions)
    return f"{start}{track}  {shown}  face {int(prediction.face)} audio {int(prediction.audio)}{latency}"


class LiveSink:
    """Passes each prediction's :func:`live_line` to ``show`` (e.g. ``print``)."""

    stage = "live"

    def __init__(self, show: Callable[[str], None], context: RunContext) -> None:
        self.show = show
        self.dimensions = context.dimensions

    def write(self, prediction: Prediction) -> None:
        self.show(live_line(prediction, self.dimensions))

    def finish(self) -> dict[str, Any]:
        return {}
