"""Drawing the results: the ``--overlay`` video (face box and a valence-arousal widget on every frame) and the
``--plot`` image of the traces. Both are drawn with OpenCV; the video is encoded with PyAV (H.264 when the FFmpeg
inside PyAV has ``libx264``, else MPEG-4 Part 2; the summary names the codec) with each frame's own timestamp, so a
variable frame rate is kept.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np

from edgeaff.runtime.io.camera import import_cv2
from edgeaff.runtime.io.media import import_av

COLORS = {"valence": (60, 180, 255), "arousal": (255, 140, 60)}  # BGR
_TIME_BASE_DEN = 1000  # overlay timestamps in milliseconds


def draw_frame(
    image: np.ndarray, *, box: np.ndarray | None, values: Mapping[str, float], face: bool, audio: bool
) -> np.ndarray:
    """A copy of a BGR frame with the face box and a valence (x) / arousal (y) disc in the top-left corner."""
    cv2 = import_cv2()
    out = np.ascontiguousarray(image.copy())
    height, width = out.shape[:2]
    if box is not None:
        x0, y0, x1, y1 = (round(float(v)) for v in box)
        cv2.rectangle(out, (x0, y0), (x1, y1), (80, 220, 80), max(1, width // 320))
    radius = max(12, min(height, width) // 8)
    centre = (radius + 8, radius + 8)
    panel = out[: 2 * radius + 16 + 18, : 2 * radius + 16]
    panel[:] = (0.45 * panel).astype(np.uint8)
    cv2.circle(out, centre, radius, (200, 200, 200), 1, cv2.LINE_AA)
    cv2.line(out, (centre[0] - radius, centre[1]), (centre[0] + radius, centre[1]), (120, 120, 120), 1)
    cv2.line(out, (centre[0], centre[1] - radius), (centre[0], centre[1] + radius), (120, 120, 120), 1)
    valence, arousal = values.get("valence", 0.0), values.get("arousal", 0.0)
    dot = (round(centre[0] + valence * radius), round(centre[1] - arousal * radius))
    cv2.circle(out, dot, max(2, radius // 8), (60, 60, 255) if face else (128, 128, 128), -1, cv2.LINE_AA)
    text = " ".join(f"{d[0].upper()}{values[d]:+.2f}" for d in ("valence", "arousal") if d in values)
    flags = ("" if face else " no face") + ("" if audio else " no audio")
    scale = max(0.3, radius / 80)
    cv2.putText(out, text + flags, (4, 2 * radius + 16 + 12), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), 1)
    return out


class OverlayWriter:
    """Encode annotated frames to an mp4 with PyAV. Use as a context manager.

    Args:
        path: the file to write (any name: the container format is given explicitly).
        width: frame width.
        height: frame height.
        rate: nominal frame rate, for the encoder's rate control.
    """

    def __init__(self, path: Path, *, width: int, height: int, rate: float | None) -> None:
        self.path = path
        self.width, self.height = width + width % 2, height + height % 2  # yuv420p needs even sizes
        self.rate = rate or 30.0
        self.codec = ""
        self._container: Any = None
        self._stream: Any = None
        self._last_pts = -1

    def __enter__(self) -> OverlayWriter:
        av = import_av()
        from fractions import Fraction

        self._container = av.open(str(self.path), mode="w", format="mp4")
        try:
            self.codec = "libx264" if "libx264" in av.codecs_available else "mpeg4"
            self._stream = self._container.add_stream(self.codec, rate=Fraction(round(self.rate * 1000), 1000))
            self._stream.width, self._stream.height, self._stream.pix_fmt = self.width, self.height, "yuv420p"
            self._stream.codec_context.time_base = self._stream.time_base = Fraction(1, _TIME_BASE_DEN)
        except BaseException:
            self._container.close()
            raise
        return self

    def write(self, image: np.ndarray, t_s: float) -> None:
        """Add one BGR frame shown at ``t_s`` seconds (timestamps are kept strictly increasing)."""
        av = import_av()
        if image.shape[:2] != (self.height, self.width):
            padded = np.zeros((self.height, self.width, 3), np.uint8)
            padded[: image.shape[0], : image.shape[1]] = image[: self.height, : self.width]
            image = padded
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="bgr24")
        pts = max(round(t_s * _TIME_BASE_DEN), self._last_pts + 1)
        frame.pts = self._last_pts = pts
        frame.time_base = self._stream.codec_context.time_base
        for packet in self._stream.encode(frame):
            self._container.mux(packet)

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        try:
            if exc_type is None:
                for packet in self._stream.encode():
                    self._container.mux(packet)
        finally:
            self._container.close()


def plot_traces(
    path: Path,
    times: np.ndarray,
    values: Mapping[str, np.ndarray],
    face: np.ndarray,
    *,
    title: str,
    size: tuple[int, int] = (1200, 420),
) -> None:
    """Write a PNG of each dimension over time in [-1, 1]; frames without a face are shaded."""
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
    cv2.putText(image, title, (left + 240, top - 10), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (60, 60, 60), 1)
    cv2.putText(image, f"{t0:.1f} s", (left, height - 10), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (80, 80, 80), 1)
    cv2.putText(image, f"{t1:.1f} s", (width - right - 60, height - 10), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (80, 80, 80), 1)
    ok, encoded = cv2.imencode(".png", image)
    if not ok:
        raise RuntimeError("OpenCV could not encode the plot as PNG")
    path.write_bytes(encoded.tobytes())
