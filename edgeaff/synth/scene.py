"""Scenes of the synthetic dataset: backgrounds, head motion, placing faces into a frame, and the 112×112 aligned crop
that the ABAW organisers' ``cropped_aligned`` folders contain.

Affine matrices are 2×3 and act on pixel-centre coordinates (see :mod:`edgeaff.synth.faces`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image

ALIGNED_SIZE = 112
ARCFACE_TEMPLATE = np.array(
    [[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366], [41.5493, 92.3655], [70.7299, 92.2041]]
)
"""Landmark positions of the ArcFace-style 112×112 aligned face (left eye, right eye, nose, mouth corners)."""


@dataclass(frozen=True)
class HeadPath:
    """Where a head is in each frame: centre of the eyes (px), scale (frame px per photo px), roll (radians)."""

    centre_x: np.ndarray
    centre_y: np.ndarray
    scale: np.ndarray
    roll: np.ndarray


def _wander(rng: np.random.Generator, t: np.ndarray, *, low_hz: float, high_hz: float) -> np.ndarray:
    """A smooth random curve in [-1, 1] (three sinusoids), for slow head drift."""
    freqs = rng.uniform(low_hz, high_hz, 3)
    phases = rng.uniform(0.0, 2.0 * np.pi, 3)
    weights = rng.uniform(0.5, 1.0, 3)
    curve = (weights[:, None] * np.sin(2.0 * np.pi * freqs[:, None] * t[None, :] + phases[:, None])).sum(axis=0)
    return curve / weights.sum()


def head_path(
    rng: np.random.Generator,
    frames: int,
    fps: float,
    arousal: np.ndarray,
    *,
    anchor: tuple[float, float],
    scale: float,
    frame_size: tuple[int, int],
) -> HeadPath:
    """A head that drifts slowly around ``anchor``, rolls a few degrees, and nods a little more with arousal.

    Args:
        rng: random source.
        frames: frames of the video.
        fps: frame rate.
        arousal: (frames,) arousal of the person: the nod amplitude grows from 1 to 2.5 px with it (a weak cue).
        anchor: mean position of the eye centre, in frame pixels.
        scale: mean scale from photo to frame pixels.
        frame_size: (width, height), to size the drift.

    Returns:
        The per-frame path.
    """
    t = np.arange(frames) / fps
    width, height = frame_size
    nod_hz = rng.uniform(1.2, 2.0)
    nod = (1.0 + 0.75 * (np.clip(arousal, -1.0, 1.0) + 1.0)) * np.sin(2.0 * np.pi * nod_hz * t)
    return HeadPath(
        centre_x=anchor[0] + 0.05 * width * _wander(rng, t, low_hz=0.05, high_hz=0.3),
        centre_y=anchor[1] + 0.03 * height * _wander(rng, t, low_hz=0.05, high_hz=0.3) + nod,
        scale=scale * (1.0 + 0.05 * _wander(rng, t, low_hz=0.03, high_hz=0.2)),
        roll=np.deg2rad(5.0) * _wander(rng, t, low_hz=0.05, high_hz=0.25),
    )


def placement(path: HeadPath, frame: int, *, photo_eye_centre: np.ndarray, width_factor: float) -> np.ndarray:
    """The 2×3 affine from photo to frame coordinates at ``frame``: stretch the face's width, scale, roll, then move
    the photo's eye centre onto the path."""
    scale = float(path.scale[frame])
    cos, sin = np.cos(path.roll[frame]) * scale, np.sin(path.roll[frame]) * scale
    linear = np.array([[cos, -sin], [sin, cos]]) @ np.diag([width_factor, 1.0])
    target = np.array([path.centre_x[frame], path.centre_y[frame]])
    return np.hstack([linear, (target - linear @ photo_eye_centre)[:, None]])


def apply_affine(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Map (N, 2) points through a 2×3 affine."""
    return points @ matrix[:, :2].T + matrix[:, 2]


def invert_affine(matrix: np.ndarray) -> np.ndarray:
    """Inverse of a 2×3 affine."""
    linear = np.linalg.inv(matrix[:, :2])
    return np.hstack([linear, (-linear @ matrix[:, 2])[:, None]])


def _pillow_coefficients(output_to_input: np.ndarray) -> tuple[float, ...]:
    """Pillow's AFFINE data for a pixel-centre map from output to input pixels.

    Pillow maps the output point (x + 0.5, y + 0.5) of pixel (x, y) and samples the input at corner-origin
    coordinates, so the centre-convention map ``u -> A u + t`` becomes ``u' -> A u' + t + 0.5 - A·(0.5, 0.5)``.
    """
    linear = output_to_input[:, :2]
    offset = output_to_input[:, 2] + 0.5 - linear @ np.array([0.5, 0.5])
    return (
        float(linear[0, 0]),
        float(linear[0, 1]),
        float(offset[0]),
        float(linear[1, 0]),
        float(linear[1, 1]),
        float(offset[1]),
    )


def paste_face(frame: Image.Image, face: np.ndarray, photo_to_frame: np.ndarray) -> None:
    """Warp a face ((H, W, 4) RGBA, photo coordinates) into ``frame`` in place, blending with its alpha."""
    height, width = face.shape[:2]
    corners = np.array([[0, 0], [width - 1, 0], [0, height - 1], [width - 1, height - 1]], dtype=np.float64)
    mapped = apply_affine(photo_to_frame, corners)
    left = max(int(np.floor(mapped[:, 0].min())) - 1, 0)
    top = max(int(np.floor(mapped[:, 1].min())) - 1, 0)
    right = min(int(np.ceil(mapped[:, 0].max())) + 2, frame.width)
    bottom = min(int(np.ceil(mapped[:, 1].max())) + 2, frame.height)
    if right <= left or bottom <= top:
        return
    # output pixel (x, y) of the patch is frame pixel (x + left, y + top)
    shift = np.array([[1.0, 0.0, left], [0.0, 1.0, top]])
    frame_to_photo = invert_affine(photo_to_frame)
    patch_to_photo = np.hstack(
        [frame_to_photo[:, :2], (frame_to_photo[:, :2] @ shift[:, 2] + frame_to_photo[:, 2])[:, None]]
    )
    patch = Image.fromarray(face, mode="RGBA").transform(
        (right - left, bottom - top),
        Image.Transform.AFFINE,
        _pillow_coefficients(patch_to_photo),
        Image.Resampling.BILINEAR,
    )
    frame.paste(patch, (left, top), patch)


def similarity_to_template(points: np.ndarray, template: np.ndarray = ARCFACE_TEMPLATE) -> np.ndarray:
    """Least-squares similarity (scale, rotation, translation) taking ``points`` onto ``template``.

    In 2-D the fit has a closed form: with both point sets centred, the linear part is ``[[a, -b], [b, a]]`` with
    ``a = Σ(x·u + y·v) / Σ(x² + y²)`` and ``b = Σ(x·v - y·u) / Σ(x² + y²)``.

    Args:
        points: (N, 2) source landmarks.
        template: (N, 2) destination landmarks.

    Returns:
        2×3 affine from source to template coordinates.
    """
    source_mean = points.mean(axis=0)
    target_mean = template.mean(axis=0)
    x, y = (points - source_mean).T
    u, v = (template - target_mean).T
    norm = float((x * x + y * y).sum())
    a = float((x * u + y * v).sum()) / norm
    b = float((x * v - y * u).sum()) / norm
    linear = np.array([[a, -b], [b, a]])
    return np.hstack([linear, (target_mean - linear @ source_mean)[:, None]])


def aligned_crop(frame: Image.Image, landmarks: np.ndarray) -> Image.Image:
    """The 112×112 ArcFace-aligned crop of the face whose five landmarks (frame coordinates) are given."""
    frame_to_crop = similarity_to_template(landmarks)
    return frame.transform(
        (ALIGNED_SIZE, ALIGNED_SIZE),
        Image.Transform.AFFINE,
        _pillow_coefficients(invert_affine(frame_to_crop)),
        Image.Resampling.BILINEAR,
    )


def background(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    """A room-like background: a vertical colour gradient, a few muted panels and shelves, soft blotchy texture and a
    little grain. (H, W, 3) uint8."""
    top, bottom = rng.uniform(50, 210, 3), rng.uniform(30, 190, 3)
    ramp = np.linspace(0.0, 1.0, height)[:, None, None]
    image = np.broadcast_to(top * (1.0 - ramp) + bottom * ramp, (height, width, 3)).copy()
    for _ in range(int(rng.integers(3, 7))):
        panel_w = int(rng.integers(width // 8, width // 3))
        panel_h = int(rng.integers(height // 8, height // 2))
        x0 = int(rng.integers(0, width - panel_w))
        y0 = int(rng.integers(0, height - panel_h))
        colour = rng.uniform(30, 225, 3)
        colour = 0.6 * colour + 0.4 * colour.mean()  # muted
        region = image[y0 : y0 + panel_h, x0 : x0 + panel_w]
        region[:] = 0.3 * region + 0.7 * colour
        region[:2] *= 0.6  # a darker top edge, like a frame or a shelf
    coarse = rng.normal(0.0, 12.0, (height // 16 + 2, width // 16 + 2)).astype(np.float32)
    blotches = Image.fromarray(coarse, mode="F").resize((width + 32, height + 32), Image.Resampling.BICUBIC)
    texture = np.asarray(blotches)[16 : 16 + height, 16 : 16 + width, None]
    grain = rng.normal(0.0, 3.0, (height, width, 1))
    return np.clip(image + texture + grain, 0, 255).astype(np.uint8)
