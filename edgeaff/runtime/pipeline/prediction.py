"""What the pipeline gives for each frame: a :class:`Prediction`."""

from __future__ import annotations

import dataclasses

import numpy as np

Box = tuple[float, float, float, float]


@dataclasses.dataclass(frozen=True, slots=True)
class Prediction:
    """One frame's valence and/or arousal (whichever the bundle has; the other is ``None``).

    Attributes:
        frame: 0-based index of the frame in the source (live sources skip the numbers of dropped frames).
        time_s: the frame's time in seconds: presentation time from the first frame (files, streams), arrival time
            (cameras) or the time the application pushed.
        valence: the merged valence in [-1, 1] (unless clipping is off), or ``None``.
        arousal: the merged arousal, or ``None``.
        face: a face was found (detected or tracked) in this frame; ``False`` means the model saw the black crop
            training used for missing faces.
        box: ``(x0, y0, x1, y1)`` of the face in frame pixels, or ``None``.
        audio: real audio features came with the frame (``False``: zero audio, or a unimodal model).
        latency_ms: stream mode: milliseconds from reading the frame to this prediction (``None`` offline).
        models: the raw predictions of every model before ensembling, in manifest order (only when the pipeline
            was asked for them with ``per_model=True``).
        image: the decoded frame, (H, W, 3) uint8 BGR (only when asked for with ``images=True``).
        gap: the first frame after a live source dropped and reconnected: frames before it are missing, and the
            temporal state started afresh here (see ``docs/runtime.md``).
        track: multi-face mode (``faces="all"``): the id of the person's track (0, 1, 2, ... in order of
            appearance; each track has its own temporal state). ``None`` in single-subject mode; in multi-face mode
            ``None`` marks a frame in which nobody is followed, whose ``valence`` and ``arousal`` are ``None`` too
            (:attr:`subject` is false): consumers see every frame, and skip such ones where they write values.

    Example:
        >>> p = Prediction(0, 0.0, 0.25, -0.1, True, (10.0, 12.0, 60.0, 70.0), True)
        >>> p.values
        {'valence': 0.25, 'arousal': -0.1}
    """

    frame: int
    time_s: float
    valence: float | None
    arousal: float | None
    face: bool
    box: Box | None
    audio: bool
    latency_ms: float | None = None
    models: np.ndarray | None = None
    image: np.ndarray | None = None
    gap: bool = False
    track: int | None = None

    @property
    def subject(self) -> bool:
        """Whether the prediction is someone's: false only for a frame without anybody in multi-face mode (no
        value at all)."""
        return self.valence is not None or self.arousal is not None

    @property
    def values(self) -> dict[str, float]:
        """``{dimension: value}`` for the dimensions the bundle has, valence first."""
        found = {}
        if self.valence is not None:
            found["valence"] = self.valence
        if self.arousal is not None:
            found["arousal"] = self.arousal
        return found
