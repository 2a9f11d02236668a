"""Face crops as stored and fed to the model: RGB uint8, resized with Pillow's bicubic filter.

The reference resized the dataset's aligned face jpgs with ``PIL.Image.resize((48, 48))``, whose default filter is
BICUBIC in Pillow ≥ 7 (reference §4.2). edgeaff uses Pillow itself (``Image.Resampling.BICUBIC``: a = -0.5 cubic
convolution with a support widened by the downscale factor, i.e. antialiased), for the training data and on the
device alike, so both see identical pixels. OpenCV's ``INTER_CUBIC`` (a = -0.75, no antialiasing) would differ.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edgeaff.runtime.errors import InvalidInputError
from edgeaff.runtime.spec import DEFAULT_FEATURE_SPEC


def black_face(size: int = DEFAULT_FEATURE_SPEC.face.image_size) -> np.ndarray:
    """The crop used where no face is available: all zeros (reference §4.2)."""
    return np.zeros((size, size, 3), dtype=np.uint8)


def resize_face(rgb: np.ndarray, size: int = DEFAULT_FEATURE_SPEC.face.image_size) -> np.ndarray:
    """Resize an RGB uint8 face image (H, W, 3) to (size, size, 3) with Pillow's bicubic filter.

    Raises:
        InvalidInputError: not an (H, W, 3) uint8 array.
    """
    from PIL import Image

    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise InvalidInputError(f"a face image must be (H, W, 3) uint8 RGB, got {rgb.shape} {rgb.dtype}")
    if rgb.shape[:2] == (size, size):
        return rgb.copy()
    image = Image.fromarray(rgb, mode="RGB").resize((size, size), Image.Resampling.BICUBIC)
    return np.asarray(image, dtype=np.uint8).copy()


def load_face_image(path: str | Path, size: int = DEFAULT_FEATURE_SPEC.face.image_size) -> np.ndarray | None:
    """Read an aligned face image file as RGB and resize it; ``None`` if the file does not exist.

    Raises:
        InvalidInputError: the file exists but is not a readable image.
    """
    from PIL import Image, UnidentifiedImageError

    file = Path(path)
    if not file.is_file():
        return None
    try:
        with Image.open(file) as image:
            rgb = np.asarray(image.convert("RGB"), dtype=np.uint8)
    except (UnidentifiedImageError, OSError) as exc:
        raise InvalidInputError(f"{file}: not a readable image ({exc})") from None
    return resize_face(rgb, size)
