"""Face crops are resized like the reference's PIL bicubic resize."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from edgeaff.runtime.errors import InvalidInputError
from edgeaff.runtime.faces.image import black_face, load_face_image, resize_face


def _antialiased_bicubic_reference(image: np.ndarray, size: int) -> np.ndarray:
    """Independent float64 separable resampling: Keys cubic (a = -0.5) with support scaled by the factor."""

    def kernel(x: np.ndarray) -> np.ndarray:
        a = -0.5
        x = np.abs(x)
        return np.where(
            x < 1, (a + 2) * x**3 - (a + 3) * x**2 + 1, np.where(x < 2, a * x**3 - 5 * a * x**2 + 8 * a * x - 4 * a, 0)
        )

    def matrix(n_in: int, n_out: int) -> np.ndarray:
        scale = n_in / n_out
        support = max(scale, 1.0)
        weights = np.zeros((n_out, n_in))
        for i in range(n_out):
            centre = (i + 0.5) * scale
            j = np.arange(n_in)
            w = kernel((j + 0.5 - centre) / support)
            weights[i] = w / w.sum()
        return weights

    h, w = image.shape[:2]
    rows, cols = matrix(h, size), matrix(w, size)
    return np.einsum("ih,hwc,jw->ijc", rows, image.astype(np.float64), cols)


def test_resize_matches_antialiased_bicubic_within_rounding() -> None:
    rng = np.random.default_rng(0)
    # Smooth content so that Pillow's two 8-bit passes stay close to the float computation.
    base = rng.integers(0, 256, (14, 14, 3)).astype(np.float64)
    image = np.asarray(Image.fromarray(base.astype(np.uint8)).resize((112, 112), Image.Resampling.BILINEAR))
    ours = resize_face(image).astype(np.float64)
    expected = np.clip(_antialiased_bicubic_reference(image, 48), 0, 255)
    assert ours.shape == (48, 48, 3)
    assert np.abs(ours - expected).max() <= 2.0
    assert np.abs(ours - expected).mean() < 0.6


def test_load_face_image_reads_rgb_and_reports_missing(tmp_path: Path) -> None:
    rgb = np.zeros((112, 112, 3), dtype=np.uint8)
    rgb[..., 0] = 200  # red
    Image.fromarray(rgb).save(tmp_path / "00001.png")
    face = load_face_image(tmp_path / "00001.png")
    assert face is not None and face.shape == (48, 48, 3)
    assert face[..., 0].min() == 200 and face[..., 1:].max() == 0
    assert load_face_image(tmp_path / "00002.jpg") is None
    (tmp_path / "bad.jpg").write_bytes(b"not an image")
    with pytest.raises(InvalidInputError, match="not a readable image"):
        load_face_image(tmp_path / "bad.jpg")
    assert black_face().shape == (48, 48, 3) and black_face().max() == 0
    with pytest.raises(InvalidInputError, match="uint8"):
        resize_face(np.zeros((10, 10, 3), dtype=np.float32))
