"""The ``--plot`` image: each dimension's trace over time in [-1, 1], frames without a face shaded (OpenCV);
multi-face mode: one trace per track and dimension, labelled with the track id."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from edgeaff.runtime.io.camera import import_cv2
from edgeaff.runtime.pipeline.prediction import Prediction
from edgeaff.runtime.pipeline.temporal import GrowingArray
from edgeaff.runtime.sinks.base import RunContext

COLORS = {"valence": (60, 180, 255), "arousal": (255, 140, 60)}  # BGR


class PlotSink:
    """``<name>.png``: collects time, face flag (track) and values per frame (a few floats each) and draws at the
    end."""

    stage = "plot"

    def __init__(self, path: Path, context: RunContext) -> None:
        self.path = path
        self.dimensions = context.dimensions
        self.title = f"{context.info.name} ({context.mode.value})"
        self.tracks = context.tracks
        self._rows = GrowingArray(3 + len(self.dimensions))

    def write(self, prediction: Prediction) -> None:
        if not prediction.subject:
            return
        row = self._rows.length
        self._rows.ensure(row + 1)
        values = prediction.values
        track = -1 if prediction.track is None else prediction.track
        self._rows.view()[row] = (prediction.time_s, prediction.face, track, *(values[d] for d in self.dimensions))

    def finish(self) -> dict[str, Any]:
        rows = self._rows.view()
        if not self.tracks:
            series = {d: rows[:, 3 + i] for i, d in enumerate(self.dimensions)}
            plot_traces(self.path, rows[:, 0], series, rows[:, 1].astype(bool), title=self.title)
            return {}
        traces: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        for track in np.unique(rows[:, 2]).astype(int):
            mine = rows[rows[:, 2] == track]
            for i, dimension in enumerate(self.dimensions):
                traces[f"T{track} {dimension}"] = (mine[:, 0], mine[:, 3 + i])
        times = rows[:, 0] if len(rows) else np.zeros(0)
        plot_traces(self.path, times, {}, np.ones(len(times), bool), title=self.title, traces=traces)
        return {}


def plot_traces(
    path: Path,
    times: np.ndarray,
    values: Mapping[str, np.ndarray],
    face: np.ndarray,
    *,
    title: str,
    size: tuple[int, int] = (1200, 420),
    traces: Mapping[str, tuple[np.ndarray, np.ndarray]] | None = None,
) -> None:
    """Write a PNG of each dimension over time in [-1, 1]; frames without a face are shaded. ``traces`` adds
    labelled series with their own times (``{"T0 valence": (times, values)}``, multi-face mode)."""
    cv2 = import_cv2()
    width, height = size
    left, right, top, bottom = 56, 16, 34, 34
    image = np.full((height, width, 3), 255, np.uint8)
    span_w, span_h = width - left - right, height - top - bottom
    t = np.asarray(times, dtype=np.float64)
    t0, t1 = (float(t.min()), float(t.max())) if t.size else (0.0, 1.0)
    t1 = t1 if t1 > t0 else t0 + 1.0

    def x_of(value: np.ndarray | float) -> np.ndarray:
        return left + (np.asarray(value) - t0) / (t1 - t0) * span_w

    def y_of(value: np.ndarray | float) -> np.ndarray:
        return top + (1.0 - (np.clip(np.asarray(value), -1, 1) + 1.0) / 2.0) * span_h

    for index in np.flatnonzero(~np.asarray(face, dtype=bool)):
        x = int(x_of(t[index]))
        cv2.line(image, (x, top), (x, top + span_h), (225, 225, 225), 1)
    for level in (-1.0, -0.5, 0.0, 0.5, 1.0):
        y = int(y_of(level))
        cv2.line(image, (left, y), (left + span_w, y), (200, 200, 200) if level else (140, 140, 140), 1)
        cv2.putText(image, f"{level:+.1f}", (6, y + 4), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (80, 80, 80), 1)
    for row, (dimension, series) in enumerate(values.items()):
        points = np.stack([x_of(t), y_of(series)], axis=1).round().astype(np.int32)
        color = COLORS.get(dimension, (0, 0, 0))
        cv2.polylines(image, [points.reshape(-1, 1, 2)], False, color, 1, cv2.LINE_AA)
        cv2.putText(image, dimension, (left + 8 + 110 * row, top - 10), cv2.FONT_HERSHEY_SIMPLEX, 0.5, color, 1)
    for row, (label, (when, series)) in enumerate((traces or {}).items()):
        if len(when) == 0:
            continue
        points = np.stack([x_of(np.asarray(when)), y_of(series)], axis=1).round().astype(np.int32)
        base = COLORS.get(label.split()[-1], (0, 0, 0))
        shade = 1.0 - 0.25 * ((row // max(len(COLORS), 1)) % 3)
        tint = tuple(int(c * shade) for c in base)
        cv2.polylines(image, [points.reshape(-1, 1, 2)], False, tint, 1, cv2.LINE_AA)
        cv2.putText(image, label, tuple(int(v) for v in points[0]), cv2.FONT_HERSHEY_SIMPLEX, 0.35, tint, 1)
    cv2.putText(image, title, (left + 240, top - 10), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (60, 60, 60), 1)
    cv2.putText(image, f"{t0:.1f} s", (left, height - 10), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (80, 80, 80), 1)
    cv2.putText(image, f"{t1:.1f} s", (width - right - 60, height - 10), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (80, 80, 80), 1)
    ok, encoded = cv2.imencode(".png", image)
    if not ok:
        raise RuntimeError("OpenCV could not encode the plot as PNG")
    path.write_bytes(encoded.tobytes())
