"""Faces of the synthetic dataset: identities built from two public-domain photographs, and the expression warp that
makes valence visible (mouth corners and inner brows) and arousal faintly visible (upper eyelids).

Coordinates are pixel-centre coordinates (pixel (row r, column c) is the point (c, r)); five landmarks per face in the
order left eye, right eye, nose tip, left mouth corner, right mouth corner, where "left" is the image's left.
"""

from __future__ import annotations

import dataclasses
import io
import json
from dataclasses import dataclass
from functools import cache
from importlib import resources

import numpy as np
from PIL import Image

MOUTH_LIFT = 0.17
"""Vertical travel of each mouth corner at |valence| = 1, as a fraction of the inter-ocular distance."""
BROW_DROP = 0.10
"""Vertical travel of each inner brow at |valence| = 1 (down for negative valence), likewise."""
LID_LIFT = 0.02
"""Upper-eyelid travel at |arousal| = 1, likewise (deliberately small: arousal is meant to be heard)."""


@dataclass(frozen=True)
class FacePhoto:
    """A bundled face photograph with its landmarks.

    Attributes:
        name: short name (``collins``, ``hopper``).
        image: (H, W, 3) uint8 RGB.
        landmarks: (5, 2) float64 landmark coordinates.
        voice_f0_hz: mean pitch of the voice that goes with this face.
    """

    name: str
    image: np.ndarray
    landmarks: np.ndarray
    voice_f0_hz: float


@dataclass(frozen=True)
class Identity:
    """One synthetic person: a varied copy of a photograph, its head mask, geometry and voice.

    Attributes:
        subject: the subject name used in trial names.
        photo: the photograph it was made from.
        mirrored: whether the photograph was mirrored.
        image: (H, W, 4) uint8 RGBA: the tinted (and mirrored) photograph; alpha is the head mask (255 inside the
            head, feathered at the edge).
        landmarks: (5, 2) landmarks of ``image``.
        width_factor: horizontal stretch applied when the face is placed in a frame (face shape varies per person).
        size_factor: relative head size in the frame.
        voice_f0_hz: mean pitch of the person's voice.
        formant_factor: scale of the voice's formant frequencies (vocal-tract length).
    """

    subject: str
    photo: str
    mirrored: bool
    image: np.ndarray
    landmarks: np.ndarray
    width_factor: float
    size_factor: float
    voice_f0_hz: float
    formant_factor: float

    @property
    def eye_distance(self) -> float:
        """Inter-ocular distance of the unwarped face, in photo pixels."""
        return float(np.hypot(*(self.landmarks[1] - self.landmarks[0])))


@cache
def load_face_photos() -> tuple[FacePhoto, ...]:
    """The bundled photographs (``edgeaff/synth/assets``), in a fixed order."""
    assets = resources.files("edgeaff.synth") / "assets"
    table = json.loads((assets / "faces.json").read_text(encoding="utf-8"))["faces"]
    photos = []
    for name in sorted(table):
        entry = table[name]
        with Image.open(io.BytesIO((assets / entry["file"]).read_bytes())) as image:
            rgb = np.asarray(image.convert("RGB"))
        rgb.setflags(write=False)
        photos.append(
            FacePhoto(
                name=name,
                image=rgb,
                landmarks=np.asarray(entry["landmarks"], dtype=np.float64),
                voice_f0_hz=float(entry["voice_f0_hz"]),
            )
        )
    return tuple(photos)


def make_identity(subject: str, photo: FacePhoto, rng: np.random.Generator, *, mirrored: bool) -> Identity:
    """Vary a photograph into a person: mirroring, colour tint and gamma, face width, head size, voice.

    Args:
        subject: subject name.
        photo: the photograph.
        rng: random source for the variations.
        mirrored: mirror the photograph (landmarks follow; left/right labels are swapped back into image order).

    Returns:
        The identity.
    """
    image = photo.image.astype(np.float32) / 255.0
    landmarks = photo.landmarks.copy()
    if mirrored:
        image = image[:, ::-1]
        landmarks[:, 0] = (image.shape[1] - 1) - landmarks[:, 0]
        landmarks = landmarks[[1, 0, 2, 4, 3]]
    gains = rng.uniform(0.86, 1.14, 3).astype(np.float32)
    gamma = float(rng.uniform(0.85, 1.18))
    tinted = np.clip(np.power(image, gamma) * gains, 0.0, 1.0)
    pixels = np.round(tinted * 255.0).astype(np.uint8)
    alpha = _head_mask(pixels.shape[0], pixels.shape[1], landmarks)
    rgba = np.ascontiguousarray(np.dstack([pixels, alpha]))
    rgba.setflags(write=False)
    return Identity(
        subject=subject,
        photo=photo.name,
        mirrored=mirrored,
        image=rgba,
        landmarks=landmarks,
        width_factor=float(rng.uniform(0.93, 1.07)),
        size_factor=float(rng.uniform(0.92, 1.06)),
        voice_f0_hz=photo.voice_f0_hz * float(rng.uniform(0.88, 1.12)),
        formant_factor=float(rng.uniform(0.94, 1.08)),
    )


def resize_identity(identity: Identity, factor: float) -> Identity:
    """The same person with the photograph resampled by ``factor`` (Lanczos), landmarks following.

    Rendering at about the size the face will have in the frame keeps the per-frame warps cheap and avoids aliasing
    from a large bilinear downscale.
    """
    height, width = identity.image.shape[:2]
    size = (max(round(width * factor), 8), max(round(height * factor), 8))
    resized = Image.fromarray(identity.image, mode="RGBA").resize(size, Image.Resampling.LANCZOS)
    scale = np.array([size[0] / width, size[1] / height])
    image = np.ascontiguousarray(np.asarray(resized))
    image.setflags(write=False)
    return dataclasses.replace(identity, image=image, landmarks=(identity.landmarks + 0.5) * scale - 0.5)


def _head_mask(height: int, width: int, landmarks: np.ndarray) -> np.ndarray:
    """An elliptical head mask around the face, feathered at its edge and faded towards the bottom border."""
    eye_mid = landmarks[:2].mean(axis=0)
    eye_distance = float(np.hypot(*(landmarks[1] - landmarks[0])))
    centre_x, centre_y = eye_mid[0], eye_mid[1] + 0.4 * eye_distance
    semi_x, semi_y = 1.5 * eye_distance, 1.95 * eye_distance
    rows, cols = np.mgrid[0:height, 0:width].astype(np.float32)
    radius = np.sqrt(((cols - centre_x) / semi_x) ** 2 + ((rows - centre_y) / semi_y) ** 2)
    alpha = np.clip((1.0 - radius) / 0.08, 0.0, 1.0)
    fade = np.clip((height - 1 - rows) / 20.0, 0.0, 1.0)
    edges = np.clip(np.minimum(cols, width - 1 - cols) / 4.0, 0.0, 1.0)
    return np.round(alpha * fade * edges * 255.0).astype(np.uint8)


def _expression_controls(
    landmarks: np.ndarray, valence: float, arousal: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Control points, their displacements and Gaussian widths for one expression."""
    left_eye, right_eye, _nose, left_mouth, right_mouth = landmarks
    eye_distance = float(np.hypot(*(right_eye - left_eye)))
    unit = eye_distance
    points: list[np.ndarray] = []
    moves: list[tuple[float, float]] = []
    sigmas: list[float] = []
    # mouth corners: up and outwards for positive valence, down and inwards for negative
    for corner, outward in ((left_mouth, -1.0), (right_mouth, 1.0)):
        points.append(corner)
        moves.append((outward * 0.07 * unit * valence, -MOUTH_LIFT * unit * valence))
        sigmas.append(0.2 * unit)
    # middle of the lower lip: a little down in a smile, up in a frown
    points.append((left_mouth + right_mouth) / 2.0 + np.array([0.0, 0.12 * unit]))
    moves.append((0.0, 0.06 * unit * valence))
    sigmas.append(0.18 * unit)
    # inner brows: lowered and drawn together for negative valence, raised for positive
    for eye, inward in ((left_eye, 1.0), (right_eye, -1.0)):
        points.append(eye + np.array([inward * 0.22 * unit, -0.42 * unit]))
        moves.append((-inward * 0.05 * unit * valence, -BROW_DROP * unit * valence))
        sigmas.append(0.18 * unit)
    # upper eyelids: a little wider open with arousal
    for eye in (left_eye, right_eye):
        points.append(eye + np.array([0.0, -0.1 * unit]))
        moves.append((0.0, -LID_LIFT * unit * arousal))
        sigmas.append(0.09 * unit)
    return np.asarray(points, dtype=np.float64), np.asarray(moves, dtype=np.float64), np.asarray(sigmas)


def _displacement(points: np.ndarray, moves: np.ndarray, sigmas: np.ndarray, at: np.ndarray) -> np.ndarray:
    """Forward displacement at the (N, 2) points ``at``: each control moves its neighbourhood with a Gaussian weight
    centred on the control's destination, so the inverse map in :func:`express` is exact at the controls."""
    offsets = at[:, None, :] - (points + moves)[None, :, :]
    weights = np.exp(-(offsets**2).sum(axis=2) / (2.0 * sigmas[None, :] ** 2))
    return weights @ moves


def _displacement_grid(
    points: np.ndarray, moves: np.ndarray, sigmas: np.ndarray, box: tuple[int, int, int, int]
) -> tuple[np.ndarray, np.ndarray]:
    """The same field on the pixel grid of ``box`` = (x0, y0, x1, y1); each Gaussian is evaluated only within
    3.5 sigma of its centre (separably: the weight is a product of a row and a column factor)."""
    x0, y0, x1, y1 = box
    dx = np.zeros((y1 - y0, x1 - x0), dtype=np.float32)
    dy = np.zeros_like(dx)
    for (px, py), (mx, my), sigma in zip(points, moves, sigmas, strict=True):
        cx, cy, reach = px + mx, py + my, 3.5 * sigma
        gx0, gx1 = max(int(np.floor(cx - reach)), x0), min(int(np.ceil(cx + reach)) + 1, x1)
        gy0, gy1 = max(int(np.floor(cy - reach)), y0), min(int(np.ceil(cy + reach)) + 1, y1)
        if gx1 <= gx0 or gy1 <= gy0:
            continue
        wx = np.exp(-((np.arange(gx0, gx1) - cx) ** 2) / (2.0 * sigma * sigma)).astype(np.float32)
        wy = np.exp(-((np.arange(gy0, gy1) - cy) ** 2) / (2.0 * sigma * sigma)).astype(np.float32)
        weight = wy[:, None] * wx[None, :]
        dx[gy0 - y0 : gy1 - y0, gx0 - x0 : gx1 - x0] += np.float32(mx) * weight
        dy[gy0 - y0 : gy1 - y0, gx0 - x0 : gx1 - x0] += np.float32(my) * weight
    return dx, dy


def express(identity: Identity, valence: float, arousal: float) -> tuple[np.ndarray, np.ndarray]:
    """Render an identity with an expression.

    The warp is a sum of Gaussian displacements around the mouth corners, the lower lip, the inner brows and the
    upper eyelids; only the rectangle they reach is resampled (bilinear).

    Args:
        identity: the person.
        valence: in [-1, 1]; moves the mouth corners (smile/frown) and the inner brows.
        arousal: in [-1, 1]; opens the eyes slightly.

    Returns:
        (image, landmarks): the (H, W, 4) uint8 RGBA face and its (5, 2) landmarks after the warp.
    """
    points, moves, sigmas = _expression_controls(identity.landmarks, valence, arousal)
    height, width = identity.image.shape[:2]
    reach = 3.5 * sigmas[:, None] + np.abs(moves)
    low = np.floor(np.min(points - reach, axis=0)).astype(int)
    high = np.ceil(np.max(points + reach, axis=0)).astype(int)
    box = (max(int(low[0]), 0), max(int(low[1]), 0), min(int(high[0]) + 1, width), min(int(high[1]) + 1, height))
    dx, dy = _displacement_grid(points, moves, sigmas, box)
    x0, y0, x1, y1 = box
    # pixels that move by less than 0.05 px keep their value (the difference is below a grey level)
    rows, cols = np.nonzero(np.abs(dx) + np.abs(dy) > 0.05)
    out = identity.image.copy()
    region = out[y0:y1, x0:x1]
    region[rows, cols] = bilinear_sample(identity.image, cols + x0 - dx[rows, cols], rows + y0 - dy[rows, cols])
    moved = identity.landmarks.copy()
    for _ in range(8):  # solve p' - D(p') = p for the landmarks by fixed-point iteration
        moved = identity.landmarks + _displacement(points, moves, sigmas, moved)
    return out, moved


def bilinear_sample(image: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Sample an (H, W, C) uint8 image at real coordinates (clamped to the image), rounding to uint8.

    Args:
        image: the source image.
        x: column coordinates, any shape.
        y: row coordinates, same shape.

    Returns:
        ``x.shape + (C,)`` uint8 samples.
    """
    height, width, channels = image.shape
    xf = np.clip(np.ravel(x).astype(np.float32), 0.0, width - 1.0)
    yf = np.clip(np.ravel(y).astype(np.float32), 0.0, height - 1.0)
    x_low = np.minimum(xf.astype(np.intp), width - 2)
    y_low = np.minimum(yf.astype(np.intp), height - 2)
    fx = (xf - x_low)[:, None]
    fy = (yf - y_low)[:, None]
    flat = image.reshape(-1, channels)
    index = y_low * width + x_low
    top_left = np.take(flat, index, axis=0).astype(np.float32)
    top_right = np.take(flat, index + 1, axis=0).astype(np.float32)
    bottom_left = np.take(flat, index + width, axis=0).astype(np.float32)
    bottom_right = np.take(flat, index + width + 1, axis=0).astype(np.float32)
    top = top_left + (top_right - top_left) * fx
    bottom = bottom_left + (bottom_right - bottom_left) * fx
    values = top + (bottom - top) * fy + 0.5
    return np.clip(values, 0.0, 255.0).astype(np.uint8).reshape(*np.shape(x), channels)
