"""Face detections in frame pixels, weighted non-maximum suppression and the choice of one subject per stream."""

from __future__ import annotations

import dataclasses

import numpy as np

from edgeaff.runtime.choices import Choice


@dataclasses.dataclass(frozen=True)
class FaceDetection:
    """One face in frame pixel coordinates.

    Attributes:
        box: (4,) float32 ``x0, y0, x1, y1``.
        score: detector confidence in [0, 1].
        keypoints: (K, 2) float32 ``x, y`` in the detector's keypoint order, or ``None`` (Haar cascade).
    """

    box: np.ndarray
    score: float
    keypoints: np.ndarray | None = None

    @property
    def width(self) -> float:
        """Box width in pixels."""
        return float(self.box[2] - self.box[0])

    @property
    def height(self) -> float:
        """Box height in pixels."""
        return float(self.box[3] - self.box[1])

    @property
    def center(self) -> tuple[float, float]:
        """Box centre ``(x, y)``."""
        return float(self.box[0] + self.box[2]) / 2, float(self.box[1] + self.box[3]) / 2

    @property
    def area(self) -> float:
        """Box area in square pixels."""
        return max(self.width, 0.0) * max(self.height, 0.0)


def box_iou(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """Intersection over union of one ``x0, y0, x1, y1`` box with each row of ``boxes`` (M, 4)."""
    x0 = np.maximum(box[0], boxes[:, 0])
    y0 = np.maximum(box[1], boxes[:, 1])
    x1 = np.minimum(box[2], boxes[:, 2])
    y1 = np.minimum(box[3], boxes[:, 3])
    inter = np.clip(x1 - x0, 0, None) * np.clip(y1 - y0, 0, None)
    area = (box[2] - box[0]) * (box[3] - box[1])
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    union = area + areas - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)


def weighted_nms(
    boxes: np.ndarray, keypoints: np.ndarray, scores: np.ndarray, *, iou_threshold: float
) -> list[tuple[np.ndarray, np.ndarray, float]]:
    """MediaPipe's weighted non-maximum suppression ("tie resolution" of the BlazeFace paper).

    The highest-scoring candidate and every remaining one overlapping it by more than ``iou_threshold`` form a
    cluster; the cluster's box and keypoints are the score-weighted mean of its members and its score is the best
    member's. Repeat on the rest.

    Args:
        boxes: (M, 4) ``x0, y0, x1, y1``.
        keypoints: (M, K, 2).
        scores: (M,).
        iou_threshold: clustering overlap.

    Returns:
        ``(box, keypoints, score)`` per cluster, best first.
    """
    order = np.argsort(-scores, kind="stable")
    boxes, keypoints, scores = boxes[order], keypoints[order], scores[order]
    remaining = np.ones(len(scores), dtype=bool)
    clusters: list[tuple[np.ndarray, np.ndarray, float]] = []
    for i in range(len(scores)):
        if not remaining[i]:
            continue
        members = remaining & (box_iou(boxes[i], boxes) > iou_threshold)
        members[i] = True
        weights = scores[members] / scores[members].sum()
        box = (boxes[members] * weights[:, None]).sum(axis=0)
        points = (keypoints[members] * weights[:, None, None]).sum(axis=0)
        clusters.append((box.astype(np.float32), points.astype(np.float32), float(scores[i])))
        remaining &= ~members
    return clusters


class FaceSelect(Choice):
    """Which face is the subject when a frame has several (``--face-select``).

    ``largest``: the biggest box (default). ``center``: the box whose centre is nearest the frame centre.
    ``left`` / ``right``: the box whose centre has the smallest / largest x.
    """

    __label__ = "face selection"

    LARGEST = "largest"
    CENTER = "center"
    LEFT = "left"
    RIGHT = "right"


def select_subject(
    detections: list[FaceDetection], policy: FaceSelect, frame_size: tuple[int, int]
) -> FaceDetection | None:
    """Pick the subject among ``detections`` by ``policy``; ``frame_size`` is ``(width, height)``."""
    if not detections:
        return None
    if policy is FaceSelect.LARGEST:
        return max(detections, key=lambda d: d.area)
    if policy is FaceSelect.LEFT:
        return min(detections, key=lambda d: d.center[0])
    if policy is FaceSelect.RIGHT:
        return max(detections, key=lambda d: d.center[0])
    cx, cy = frame_size[0] / 2, frame_size[1] / 2
    return min(detections, key=lambda d: (d.center[0] - cx) ** 2 + (d.center[1] - cy) ** 2)


def match_subject(detections: list[FaceDetection], box: np.ndarray, *, min_iou: float) -> FaceDetection | None:
    """The detection overlapping ``box`` most, if its IoU is at least ``min_iou`` (keeps the same subject)."""
    if not detections:
        return None
    overlaps = box_iou(box, np.stack([d.box for d in detections]))
    best = int(np.argmax(overlaps))
    return detections[best] if overlaps[best] >= min_iou else None
