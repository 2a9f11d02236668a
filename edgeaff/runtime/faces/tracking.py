"""Track one face between detections with sparse optical flow (pyramidal Lucas-Kanade).

Corner features inside the face box are followed from frame to frame on a small grey patch around the face
(the face is scaled to ``face_size`` pixels wide, so the cost does not grow with the video's resolution). Each
step fits a similarity transform (rotation, scale, shift) to the points that survive a forward-backward check and
RANSAC, and moves the box and keypoints by it. The track is declared lost - and the caller re-detects - when too
few points survive, the fit has too few inliers, the face grows or shrinks implausibly fast, or it leaves the frame.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np

from edgeaff.runtime.errors import InvalidInputError, require
from edgeaff.runtime.faces.alignment import apply_transform
from edgeaff.runtime.faces.detection import FaceDetection


@dataclasses.dataclass(frozen=True)
class TrackerOptions:
    """Optical-flow tracker settings.

    Attributes:
        face_size: face box width in patch pixels.
        margin: the patch extends this many box sizes beyond the box on each side (the largest motion per frame
            that can be followed).
        max_points: corner features kept.
        window: Lucas-Kanade window side, patch pixels.
        min_points: fewer surviving points (or RANSAC inliers) than this loses the track.
        min_inlier_ratio: a smaller share of RANSAC inliers loses the track.
        forward_backward: largest forward-backward flow error kept, in patch pixels.
        max_scale_step: largest per-frame size change (1.25: 25 %) before the track counts as lost.
        max_rotation_step: largest per-frame in-plane rotation, degrees.
        min_similarity: smallest normalised cross-correlation between the face in the previous frame and the
            current frame mapped back by the fitted motion; below it the points have slid off the face.
    """

    face_size: int = 64
    margin: float = 0.5
    max_points: int = 32
    window: int = 11
    min_points: int = 8
    min_inlier_ratio: float = 0.5
    forward_backward: float = 1.0
    max_scale_step: float = 1.25
    max_rotation_step: float = 20.0
    min_similarity: float = 0.6

    def __post_init__(self) -> None:
        if (
            self.face_size < 16
            or self.margin <= 0
            or self.min_points < 3
            or self.max_points < self.min_points
            or self.window < 5
        ):
            raise InvalidInputError(
                f"tracker: face_size >= 16, margin > 0, 3 <= min_points <= max_points, window >= 5; got "
                f"{self.face_size}, {self.margin}, {self.min_points}, {self.max_points}, {self.window}"
            )


@dataclasses.dataclass
class _Patch:
    gray: np.ndarray
    origin: np.ndarray  # frame coordinates of the patch's (0, 0)
    scale: np.ndarray  # patch pixels per frame pixel, (sx, sy)

    def to_frame(self, points: np.ndarray) -> np.ndarray:
        return points / self.scale + self.origin

    def to_patch(self, points: np.ndarray) -> np.ndarray:
        return (points - self.origin) * self.scale


class KltTracker:
    """Follow one face from a detection; see the module docstring.

    Example:
        >>> tracker = KltTracker()  # doctest: +SKIP
        >>> tracker.start(frame0, detection)  # doctest: +SKIP
        >>> moved = tracker.step(frame1)  # None when the track is lost
    """

    def __init__(self, options: TrackerOptions | None = None) -> None:
        self.options = options or TrackerOptions()
        self._face: FaceDetection | None = None
        self._patch: _Patch | None = None
        self._points = np.zeros((0, 2), dtype=np.float32)

    @property
    def active(self) -> bool:
        """Whether a face is being tracked."""
        return self._face is not None

    def reset(self) -> None:
        """Forget the tracked face."""
        self._face, self._patch = None, None
        self._points = np.zeros((0, 2), dtype=np.float32)

    def start(self, frame_bgr: np.ndarray, face: FaceDetection) -> bool:
        """Begin tracking ``face`` (detected in ``frame_bgr``).

        Returns:
            ``False`` if the face has too little texture to track (the caller then detects again next frame).
        """
        self.reset()
        patch = self._make_patch(frame_bgr, face)
        if patch is None:
            return False
        points = self._seed(patch, face)
        if len(points) < self.options.min_points:
            return False
        self._face, self._patch, self._points = face, patch, points
        return True

    def step(self, frame_bgr: np.ndarray) -> FaceDetection | None:
        """Move the tracked face to ``frame_bgr``; ``None`` (and the tracker resets) when the track is lost."""
        cv2: Any = require("cv2", extra="ort", purpose="face tracking")
        face, patch, opts = self._face, self._patch, self.options
        if face is None or patch is None:
            raise RuntimeError("KltTracker.step() needs a face: call start() first")
        current = self._patch_at(frame_bgr, patch.origin, patch.scale, patch.gray.shape)
        moved = self._flow(cv2, patch.gray, current, self._points)
        if moved is None:
            self.reset()
            return None
        old, new = moved
        matrix, inliers = cv2.estimateAffinePartial2D(
            old, new, method=cv2.RANSAC, ransacReprojThreshold=1.0, maxIters=200, confidence=0.99
        )
        kept = int(inliers.sum()) if inliers is not None else 0
        if matrix is None or kept < opts.min_points or kept < opts.min_inlier_ratio * len(old):
            self.reset()
            return None
        step_scale = math.sqrt(abs(float(np.linalg.det(matrix[:, :2]))))
        step_angle = math.degrees(math.atan2(float(matrix[1, 0]), float(matrix[0, 0])))
        if (
            not 1 / opts.max_scale_step <= step_scale <= opts.max_scale_step
            or abs(step_angle) > opts.max_rotation_step
            or self._similarity(cv2, patch, current, matrix, face) < opts.min_similarity
        ):
            self.reset()
            return None
        # The fitted map is in patch pixels; conjugate it into frame pixels.
        to_patch = np.array(
            [
                [patch.scale[0], 0, -patch.origin[0] * patch.scale[0]],
                [0, patch.scale[1], -patch.origin[1] * patch.scale[1]],
            ]
        )
        frame_map = _compose(_invert(to_patch), _compose(matrix, to_patch))
        moved_face = _move(face, frame_map, step_scale)
        height, width = frame_bgr.shape[:2]
        cx, cy = moved_face.center
        if not (0 <= cx < width and 0 <= cy < height):
            self.reset()
            return None
        survivors = patch.to_frame(new[inliers.ravel().astype(bool)])
        next_patch = self._make_patch(frame_bgr, moved_face)
        if next_patch is None:
            self.reset()
            return None
        points = next_patch.to_patch(survivors).astype(np.float32)
        if len(points) < opts.max_points // 2:
            points = self._seed(next_patch, moved_face, keep=points)
        self._face, self._patch, self._points = moved_face, next_patch, points
        return moved_face

    # -- internals ------------------------------------------------------------------------------------------------
    @staticmethod
    def _similarity(cv2: Any, patch: _Patch, current: np.ndarray, matrix: np.ndarray, face: FaceDetection) -> float:
        """Normalised cross-correlation of the face box in the previous patch with the current patch mapped back
        by the fitted motion: about 1 for the same face, near 0 when the points slid onto something else."""
        back = cv2.warpAffine(
            current,
            matrix,
            current.shape[::-1],
            flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
            borderMode=cv2.BORDER_REPLICATE,
        )
        (x0, y0), (x1, y1) = (
            patch.to_patch(face.box[:2].astype(np.float64)),
            patch.to_patch(face.box[2:].astype(np.float64)),
        )
        rows = slice(max(int(y0), 0), max(int(y1), 1))
        cols = slice(max(int(x0), 0), max(int(x1), 1))
        a = patch.gray[rows, cols].astype(np.float32).ravel()
        b = back[rows, cols].astype(np.float32).ravel()
        a, b = a - a.mean(), b - b.mean()
        denominator = float(np.sqrt((a * a).sum() * (b * b).sum()))
        return float((a * b).sum() / denominator) if denominator > 0 else 0.0

    def _flow(
        self, cv2: Any, previous: np.ndarray, current: np.ndarray, points: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray] | None:
        params = {
            "winSize": (self.options.window, self.options.window),
            "maxLevel": 2,
            "criteria": (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 20, 0.03),
        }
        start = points.reshape(-1, 1, 2)
        forward, status, _ = cv2.calcOpticalFlowPyrLK(previous, current, start, None, **params)
        backward, status_back, _ = cv2.calcOpticalFlowPyrLK(current, previous, forward, None, **params)
        error = np.linalg.norm((start - backward).reshape(-1, 2), axis=1)
        good = (status.ravel() == 1) & (status_back.ravel() == 1) & (error < self.options.forward_backward)
        if int(good.sum()) < self.options.min_points:
            return None
        return start.reshape(-1, 2)[good], forward.reshape(-1, 2)[good]

    def _make_patch(self, frame_bgr: np.ndarray, face: FaceDetection) -> _Patch | None:
        side = max(face.width, face.height)
        if side < 4:
            return None
        cx, cy = face.center
        half = side * (0.5 + self.options.margin)
        scale = self.options.face_size / side
        size = max(round(2 * half * scale), 16)
        origin = np.array([cx - half, cy - half])
        actual = np.array([size / (2 * half), size / (2 * half)])
        return _Patch(self._patch_at(frame_bgr, origin, actual, (size, size)), origin, actual)

    @staticmethod
    def _patch_at(frame_bgr: np.ndarray, origin: np.ndarray, scale: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
        """Grey patch of ``shape`` whose (0, 0) is frame point ``origin``, at ``scale`` patch px per frame px."""
        cv2: Any = require("cv2", extra="ort", purpose="face tracking")
        height, width = frame_bgr.shape[:2]
        x0, y0 = origin
        x1, y1 = x0 + shape[1] / scale[0], y0 + shape[0] / scale[1]
        cx0, cy0 = max(math.floor(x0), 0), max(math.floor(y0), 0)
        cx1, cy1 = min(math.ceil(x1), width), min(math.ceil(y1), height)
        if cx1 - cx0 < 2 or cy1 - cy0 < 2:
            return np.zeros(shape[:2], dtype=np.uint8)
        gray = cv2.cvtColor(frame_bgr[cy0:cy1, cx0:cx1], cv2.COLOR_BGR2GRAY)
        # Area-average first when shrinking a lot (no aliasing), then place exactly with a sub-pixel affine warp.
        # Resized pixel u covers crop pixel (u + 0.5) / pre - 0.5 (pixel centres at integers, as OpenCV).
        pre = 1.0
        if scale[0] < 0.5:
            pre = 2 * float(scale[0])
            gray = cv2.resize(gray, None, fx=pre, fy=pre, interpolation=cv2.INTER_AREA)
        rel = scale / pre
        shift = 0.5 / pre - 0.5
        matrix = np.array([[rel[0], 0, (shift + cx0 - x0) * scale[0]], [0, rel[1], (shift + cy0 - y0) * scale[1]]])
        return cv2.warpAffine(
            gray, matrix, (shape[1], shape[0]), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
        )

    def _seed(self, patch: _Patch, face: FaceDetection, keep: np.ndarray | None = None) -> np.ndarray:
        cv2: Any = require("cv2", extra="ort", purpose="face tracking")
        mask = np.zeros(patch.gray.shape, dtype=np.uint8)
        x0, y0 = patch.to_patch(face.box[:2].astype(np.float64))
        x1, y1 = patch.to_patch(face.box[2:].astype(np.float64))
        mask[max(int(y0), 0) : max(int(y1), 0), max(int(x0), 0) : max(int(x1), 0)] = 255
        existing = np.zeros((0, 2), dtype=np.float32) if keep is None else keep
        for x, y in existing.astype(int):
            cv2.circle(mask, (int(x), int(y)), 3, 0, -1)
        wanted = self.options.max_points - len(existing)
        corners = cv2.goodFeaturesToTrack(
            patch.gray, maxCorners=max(wanted, 1), qualityLevel=0.01, minDistance=3, mask=mask, blockSize=5
        )
        found = np.zeros((0, 2), dtype=np.float32) if corners is None else corners.reshape(-1, 2)
        return np.concatenate([existing, found]).astype(np.float32)


def _compose(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """2×3 affine ``a ∘ b`` (apply ``b`` first)."""
    return np.hstack([a[:, :2] @ b[:, :2], (a[:, :2] @ b[:, 2] + a[:, 2])[:, None]])


def _invert(m: np.ndarray) -> np.ndarray:
    inverse = np.linalg.inv(m[:, :2])
    return np.hstack([inverse, (-inverse @ m[:, 2])[:, None]])


def _move(face: FaceDetection, frame_map: np.ndarray, step_scale: float) -> FaceDetection:
    """The face moved by a similarity: the box keeps its axes (centre moved, sides scaled), keypoints mapped."""
    centre = apply_transform(frame_map, np.array([face.center]))[0]
    half = np.array([face.width, face.height]) * step_scale / 2
    box = np.concatenate([centre - half, centre + half]).astype(np.float32)
    keypoints = None if face.keypoints is None else apply_transform(frame_map, face.keypoints).astype(np.float32)
    return FaceDetection(box, face.score, keypoints)
