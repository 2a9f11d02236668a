"""The ``--overlay`` video: every frame with the face box and a valence-arousal widget (multi-face mode: every
track's box with its id and its own widget).

Drawn with OpenCV on the frames the pipeline hands over with each prediction (``images=True``: no second decode of
the source), encoded with PyAV (H.264 when the FFmpeg inside PyAV has ``libx264``, else MPEG-4 Part 2; the summary
names the codec) with each frame's own timestamp, so a variable frame rate is kept.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np

from edgeaff.runtime.errors import InvalidInputError
from edgeaff.runtime.io.camera import import_cv2
from edgeaff.runtime.io.media import import_av
from edgeaff.runtime.pipeline.prediction import Prediction
from edgeaff.runtime.sinks.base import RunContext

_TIME_BASE_DEN = 1000  # overlay timestamps in milliseconds


def draw_frame(
    image: np.ndarray, *, box: Sequence[float] | None, values: Mapping[str, float], face: bool, audio: bool
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


_TRACK_COLOURS = ((80, 220, 80), (60, 160, 255), (255, 120, 60), (200, 80, 220), (60, 220, 220), (220, 220, 60))


def draw_tracks(image: np.ndarray, predictions: Sequence[Prediction]) -> np.ndarray:
    """A copy of a BGR frame with every track of a multi-face frame: its box and id, and beside the box a small
    valence (x) / arousal (y) disc with the values. A track whose face is not seen in the frame gets its disc in a
    row along the top edge, marked ``no face``."""
    cv2 = import_cv2()
    out = np.ascontiguousarray(image.copy())
    height, width = out.shape[:2]
    thickness = max(1, width // 320)
    unseen = 0
    for prediction in predictions:
        if not prediction.subject or prediction.track is None:
            continue
        colour = _TRACK_COLOURS[prediction.track % len(_TRACK_COLOURS)]
        values = prediction.values
        if prediction.box is not None and prediction.face:
            x0, y0, x1, y1 = (round(float(v)) for v in prediction.box)
            cv2.rectangle(out, (x0, y0), (x1, y1), colour, thickness)
            radius = max(10, min(48, (y1 - y0) // 4))
            centre = (x1 + radius + 6, y0 + radius) if x1 + 2 * radius + 12 < width else (x0 - radius - 6, y0 + radius)
            label = (x0, max(y0 - 6, 12))
        else:
            radius = max(10, min(height, width) // 16)
            centre = (radius + 8 + unseen * (2 * radius + 70), height - radius - 24)
            label = (centre[0] - radius, centre[1] + radius + 14)
            unseen += 1
        _disc(cv2, out, centre=centre, radius=radius, values=values, colour=colour, face=prediction.face)
        text = f"T{prediction.track} " + " ".join(
            f"{d[0].upper()}{values[d]:+.2f}" for d in ("valence", "arousal") if d in values
        )
        text += "" if prediction.face else " no face"
        cv2.putText(out, text, label, cv2.FONT_HERSHEY_SIMPLEX, max(0.35, radius / 60), colour, 1, cv2.LINE_AA)
    return out


def _disc(
    cv2: Any,
    out: np.ndarray,
    *,
    centre: tuple[int, int],
    radius: int,
    values: Mapping[str, float],
    colour: tuple[int, int, int],
    face: bool,
) -> None:
    """A valence (x) / arousal (y) disc: the circle, its axes and the dot."""
    cv2.circle(out, centre, radius, (200, 200, 200), 1, cv2.LINE_AA)
    cv2.line(out, (centre[0] - radius, centre[1]), (centre[0] + radius, centre[1]), (120, 120, 120), 1)
    cv2.line(out, (centre[0], centre[1] - radius), (centre[0], centre[1] + radius), (120, 120, 120), 1)
    dot = (
        round(centre[0] + values.get("valence", 0.0) * radius),
        round(centre[1] - values.get("arousal", 0.0) * radius),
    )
    cv2.circle(out, dot, max(2, radius // 6), colour if face else (128, 128, 128), -1, cv2.LINE_AA)


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


class OverlaySink:
    """``<name>.overlay.mp4``: each prediction drawn on its frame (needs a pipeline made with ``images=True``)."""

    stage = "overlay"

    def __init__(self, path: Path, context: RunContext) -> None:
        width = context.info.width or context.crop_size
        height = context.info.height or context.crop_size
        self._writer = OverlayWriter(path, width=width, height=height, rate=context.info.fps)
        self._tracks = context.tracks
        self._frame: list[Prediction] = []

    def __enter__(self) -> OverlaySink:
        self._writer.__enter__()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._writer.__exit__(exc_type, exc, tb)

    def write(self, prediction: Prediction) -> None:
        if prediction.image is None:
            raise InvalidInputError("the overlay needs each frame: make the pipeline with images=True")
        if not self._tracks:
            drawn = draw_frame(prediction.image, box=prediction.box, values=prediction.values, face=prediction.face,
                               audio=prediction.audio)  # fmt: skip
            self._writer.write(drawn, prediction.time_s)
            return
        # Multi-face mode: the predictions of one frame come together (frame order, then track): draw them at once.
        if self._frame and self._frame[0].frame != prediction.frame:
            self._flush()
        self._frame.append(prediction)

    def _flush(self) -> None:
        if self._frame:
            first = self._frame[0]
            assert first.image is not None
            self._writer.write(draw_tracks(first.image, self._frame), first.time_s)
            self._frame = []

    def finish(self) -> dict[str, Any]:
        self._flush()
        return {"overlay_codec": self._writer.codec}
