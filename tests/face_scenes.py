"""Synthetic video frames made from a real face photo, with known ground truth.

``tests/data/astronaut_face.jpg`` is a 256×256 crop (x 100-356, y 0-256) of scikit-image's ``astronaut`` sample
(Eileen Collins, NASA, public domain; see tests/data/README.md). The facial points below were marked by hand on
that crop (pupil centres, nose tip, mouth centre), independently of any detector.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

DATA = Path(__file__).resolve().parent / "data"
FACE_FILE = DATA / "astronaut_face.jpg"

# Hand-marked points in the 256×256 photo, in BlazeFace order: right eye (image-left), left eye, nose tip, mouth.
FACE_POINTS = np.array([[103.0, 101.0], [146.0, 104.0], [124.0, 127.0], [122.0, 146.0]])
INTEROCULAR = float(np.linalg.norm(FACE_POINTS[1] - FACE_POINTS[0]))


def face_bgr() -> np.ndarray:
    """The 256×256 photo as BGR uint8 (OpenCV's channel order, as video frames arrive)."""
    rgb = np.asarray(Image.open(FACE_FILE).convert("RGB"), dtype=np.uint8)
    return np.ascontiguousarray(rgb[:, :, ::-1])


def background(height: int = 480, width: int = 640, seed: int = 0) -> np.ndarray:
    """A smooth random grey-ish background with no face on it."""
    import cv2

    rng = np.random.default_rng(seed)
    noise = rng.integers(40, 200, (height // 8, width // 8, 3), dtype=np.uint8)
    return cv2.resize(noise, (width, height), interpolation=cv2.INTER_CUBIC)


def placement(centre: tuple[float, float], scale: float = 1.0, angle_deg: float = 0.0) -> np.ndarray:
    """The 2×3 similarity putting the photo's centre (128, 128) at ``centre``, scaled, rotated counter-clockwise."""
    theta = np.deg2rad(angle_deg)
    rotation = scale * np.array([[np.cos(theta), np.sin(theta)], [-np.sin(theta), np.cos(theta)]])
    shift = np.asarray(centre, dtype=np.float64) - rotation @ np.array([128.0, 128.0])
    return np.hstack([rotation, shift[:, None]])


def paste(frame: np.ndarray, matrix: np.ndarray, face: np.ndarray | None = None) -> np.ndarray:
    """``frame`` with the photo warped by ``matrix`` on top (the photo's own square, no black borders)."""
    import cv2

    face = face_bgr() if face is None else face
    size = (frame.shape[1], frame.shape[0])
    warped = cv2.warpAffine(face, matrix, size, flags=cv2.INTER_AREA if matrix[0, 0] < 1 else cv2.INTER_LINEAR)
    mask = cv2.warpAffine(np.full(face.shape[:2], 255, np.uint8), matrix, size, flags=cv2.INTER_NEAREST)
    out = frame.copy()
    out[mask > 0] = warped[mask > 0]
    return out


def scene(
    centre: tuple[float, float], scale: float = 1.0, angle_deg: float = 0.0, *, height: int = 480, width: int = 640
) -> tuple[np.ndarray, np.ndarray]:
    """A frame with the face placed, and the true (4, 2) facial points in that frame."""
    matrix = placement(centre, scale, angle_deg)
    return paste(background(height, width), matrix), transform_points(matrix, FACE_POINTS)


def transform_points(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Points mapped through a 2×3 matrix."""
    return points @ matrix[:, :2].T + matrix[:, 2]
