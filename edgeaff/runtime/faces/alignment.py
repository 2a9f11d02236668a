"""Face alignment: a similarity transform from detected points to a fixed 112×112 template, the warp, and the
48×48 model crop.

Aff-Wild2's ``cropped_aligned`` faces (what the model was trained on) were aligned by the ABAW organisers with five
facial points onto a 112×112 ArcFace-style template: eyes at (38.29, 51.70) and (73.53, 51.50), nose tip
(56.03, 71.74), mouth corners (41.55, 92.37) and (70.73, 92.20). BlazeFace gives eye centres, the nose tip and the
mouth *centre* (not its corners), so the targets here are the template's two eyes, its nose and the midpoint of
its mouth corners, (56.14, 92.28). The ear points are not used (often occluded, least precise).

Boxes without landmarks (Haar cascade) are mapped through points placed at fixed fractions of the box
(:data:`HAAR_BOX_POINTS`), measured from BlazeFace keypoints and OpenCV's ``haarcascade_frontalface_default``
boxes on the same photo, so both detectors give comparable framing.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from edgeaff.runtime.errors import require
from edgeaff.runtime.faces.image import resize_face
from edgeaff.runtime.spec import DEFAULT_FEATURE_SPEC

ALIGNED_SIZE = 112

# The 5-point 112×112 template (image-left eye, image-right eye, nose tip, mouth corners).
ARCFACE_TEMPLATE_112 = np.array(
    [[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366], [41.5493, 92.3655], [70.7299, 92.2041]],
    dtype=np.float64,
)

# Targets for the detector points used, keyed by BlazeFace keypoint name. The person's right eye is the
# image-left one on an unmirrored camera frame.
TEMPLATE_POINTS: dict[str, tuple[float, float]] = {
    "right_eye": (float(ARCFACE_TEMPLATE_112[0, 0]), float(ARCFACE_TEMPLATE_112[0, 1])),
    "left_eye": (float(ARCFACE_TEMPLATE_112[1, 0]), float(ARCFACE_TEMPLATE_112[1, 1])),
    "nose_tip": (float(ARCFACE_TEMPLATE_112[2, 0]), float(ARCFACE_TEMPLATE_112[2, 1])),
    "mouth_center": (
        float(ARCFACE_TEMPLATE_112[3:, 0].mean()),
        float(ARCFACE_TEMPLATE_112[3:, 1].mean()),
    ),
}
ALIGNMENT_KEYPOINTS = tuple(TEMPLATE_POINTS)

# Where the same four points sit in a Haar (frontalface_default) box, as fractions (u, v) of its width and height.
# Measured: BlazeFace keypoints (detected on a region around the face) against the Haar box on the astronaut photo
# (tests/data) and the full 512×512 original, plain and mirrored, at 8 scales and two Haar detection widths
# (50 pairs; spread ±0.02 of the box); made left-right symmetric.
HAAR_BOX_POINTS: dict[str, tuple[float, float]] = {
    "right_eye": (0.280, 0.381),
    "left_eye": (0.720, 0.381),
    "nose_tip": (0.500, 0.653),
    "mouth_center": (0.500, 0.855),
}


def similarity_transform(source: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Least-squares similarity (rotation, uniform scale, translation) mapping ``source`` onto ``target``.

    Umeyama's closed form (reflection excluded).

    Args:
        source: (N, 2) points, N ≥ 2.
        target: (N, 2) points.

    Returns:
        (2, 3) float64 matrix ``M`` with ``target ≈ M[:, :2] @ p + M[:, 2]``.
    """
    src = np.asarray(source, dtype=np.float64)
    dst = np.asarray(target, dtype=np.float64)
    src_mean, dst_mean = src.mean(axis=0), dst.mean(axis=0)
    src_c, dst_c = src - src_mean, dst - dst_mean
    covariance = dst_c.T @ src_c / len(src)
    u, singular, vt = np.linalg.svd(covariance)
    sign = np.ones(2)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        sign[-1] = -1.0
    rotation = u @ np.diag(sign) @ vt
    variance = (src_c**2).sum() / len(src)
    scale = float((singular * sign).sum() / variance) if variance > 0 else 1.0
    matrix = np.empty((2, 3))
    matrix[:, :2] = scale * rotation
    matrix[:, 2] = dst_mean - matrix[:, :2] @ src_mean
    return matrix


def apply_transform(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Map (N, 2) points through a 2×3 affine matrix."""
    pts = np.asarray(points, dtype=np.float64)
    return pts @ matrix[:, :2].T + matrix[:, 2]


def box_points(box: np.ndarray) -> np.ndarray:
    """The alignment points implied by a landmark-free (Haar) box, in :data:`ALIGNMENT_KEYPOINTS` order."""
    x0, y0, x1, y1 = (float(v) for v in box)
    fractions = np.array([HAAR_BOX_POINTS[name] for name in ALIGNMENT_KEYPOINTS], dtype=np.float64)
    return np.stack([x0 + fractions[:, 0] * (x1 - x0), y0 + fractions[:, 1] * (y1 - y0)], axis=1)


def alignment_matrix(points: np.ndarray) -> np.ndarray:
    """The frame→112×112 similarity for points in :data:`ALIGNMENT_KEYPOINTS` order."""
    target = np.array([TEMPLATE_POINTS[name] for name in ALIGNMENT_KEYPOINTS], dtype=np.float64)
    return similarity_transform(points, target)


def warp_aligned(frame_bgr: np.ndarray, matrix: np.ndarray, size: int = ALIGNED_SIZE) -> np.ndarray:
    """Warp a BGR frame by ``matrix`` into a ``size``×``size`` RGB uint8 image (bilinear, black outside)."""
    cv2: Any = require("cv2", extra="ort", purpose="face alignment")
    aligned = cv2.warpAffine(
        frame_bgr,
        matrix,
        (size, size),
        flags=cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_CONSTANT,
        borderValue=(0, 0, 0),
    )
    return np.ascontiguousarray(aligned[:, :, ::-1])


def model_crop(aligned_rgb: np.ndarray, size: int = DEFAULT_FEATURE_SPEC.face.image_size) -> np.ndarray:
    """The 112×112 aligned face as the model's stored crop: Pillow bicubic to ``size``×``size`` (training's path)."""
    return resize_face(aligned_rgb, size)
