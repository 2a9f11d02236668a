"""One followed face between detections: its optical-flow tracker, the box it had in the last frame, and how many
frames ago it was last detected.

The single-subject :class:`~edgeaff.runtime.faces.stage.FaceStage` follows one face with one :class:`Follower`; the
multi-face :class:`~edgeaff.runtime.faces.tracks.FaceTracks` gives every track its own. Both step a follower the
same way, so a track's crops are the crops a single-subject stage gives for the same person.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np

from edgeaff.runtime.faces.detection import FaceDetection


class FlowTracker(Protocol):
    """What a follower needs from an optical-flow tracker (:class:`~edgeaff.runtime.faces.tracking.KltTracker`)."""

    @property
    def active(self) -> bool: ...

    def reset(self) -> None: ...

    def start(self, frame_bgr: np.ndarray, face: FaceDetection) -> bool: ...

    def step(self, frame_bgr: np.ndarray) -> FaceDetection | None: ...


class Follower:
    """The state of one followed face.

    Per frame: :meth:`track` moves the face by optical flow when a detection is not due (``None``: detect), then
    :meth:`settle` records what the frame gave (a detection attempt restarts the tracker and the detection count).

    Attributes:
        tracker: the optical-flow tracker.
        last: the face in the last frame, or ``None`` (not seen there).
        since_detection: frames since the last detection attempt.
    """

    def __init__(self, tracker: FlowTracker) -> None:
        self.tracker = tracker
        self.last: FaceDetection | None = None
        self.since_detection = 0

    def reset(self) -> None:
        """Forget the face."""
        self.tracker.reset()
        self.last = None
        self.since_detection = 0

    def track(self, frame_bgr: np.ndarray, detect_every: int) -> FaceDetection | None:
        """The face moved to ``frame_bgr`` by optical flow, or ``None`` when it must be detected (not tracked, a
        detection is due, or the flow lost it)."""
        if self.tracker.active and self.since_detection < detect_every:
            return self.tracker.step(frame_bgr)
        return None

    def settle(self, frame_bgr: np.ndarray, face: FaceDetection | None, *, attempted: bool, detect_every: int) -> None:
        """Record the frame's outcome: ``face`` (``None``: not found) and whether a detection was attempted in it
        (then the tracker restarts on the detected face, when tracking is used at all)."""
        if attempted:
            self.since_detection = 0
            self.tracker.reset()
            if face is not None and detect_every > 1:
                self.tracker.start(frame_bgr, face)
        self.since_detection += 1
        self.last = face
