"""Alignment: the similarity fit is the least-squares one, and real detections land on the 112×112 template."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from face_scenes import scene

from edgeaff.runtime.faces import FaceStage
from edgeaff.runtime.faces.alignment import (
    ALIGNMENT_KEYPOINTS,
    ARCFACE_TEMPLATE_112,
    HAAR_BOX_POINTS,
    TEMPLATE_POINTS,
    alignment_matrix,
    apply_transform,
    box_points,
    similarity_transform,
    warp_aligned,
)
from edgeaff.runtime.faces.image import resize_face

TEMPLATE = np.array([TEMPLATE_POINTS[name] for name in ALIGNMENT_KEYPOINTS])


def _complex_least_squares(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Independent fit: a similarity is z -> a z + b over complex numbers; solve for (a, b) by least squares."""
    zs = src[:, 0] + 1j * src[:, 1]
    zd = dst[:, 0] + 1j * dst[:, 1]
    (a, b), *_ = np.linalg.lstsq(np.stack([zs, np.ones_like(zs)], axis=1), zd, rcond=None)
    return np.array([[a.real, -a.imag, b.real], [a.imag, a.real, b.imag]])


def test_exact_similarity_is_recovered() -> None:
    rng = np.random.default_rng(0)
    theta, scale, shift = 0.4, 1.7, np.array([12.0, -30.0])
    rotation = scale * np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]])
    src = rng.uniform(0, 200, (5, 2))
    dst = src @ rotation.T + shift
    np.testing.assert_allclose(similarity_transform(src, dst), np.hstack([rotation, shift[:, None]]), atol=1e-9)


def test_noisy_fit_equals_the_complex_least_squares_solution() -> None:
    rng = np.random.default_rng(1)
    for _ in range(20):
        src = rng.uniform(0, 300, (4, 2))
        dst = rng.uniform(0, 112, (4, 2))
        np.testing.assert_allclose(similarity_transform(src, dst), _complex_least_squares(src, dst), atol=1e-9)


def test_template_targets_come_from_the_five_point_template() -> None:
    np.testing.assert_allclose(TEMPLATE_POINTS["right_eye"], ARCFACE_TEMPLATE_112[0])
    np.testing.assert_allclose(TEMPLATE_POINTS["left_eye"], ARCFACE_TEMPLATE_112[1])
    np.testing.assert_allclose(TEMPLATE_POINTS["nose_tip"], ARCFACE_TEMPLATE_112[2])
    np.testing.assert_allclose(TEMPLATE_POINTS["mouth_center"], ARCFACE_TEMPLATE_112[3:].mean(axis=0))


@pytest.mark.parametrize(("centre", "scale", "angle"), [((320, 240), 1.0, 0.0), ((220, 300), 1.4, 25.0)])
def test_detected_keypoints_map_onto_the_template(
    detector_onnx: Path, centre: tuple[int, int], scale: float, angle: float
) -> None:
    frame, truth = scene(centre, scale, angle)
    with FaceStage.dnn(detector_onnx) as stage:
        result = stage.process(frame)
    assert result.found and result.transform is not None and result.keypoints is not None
    mapped = apply_transform(result.transform, result.keypoints[:4])
    # The four points fit the template to within 5 px of 112 (the residual of a 4-point similarity fit).
    assert np.linalg.norm(mapped - TEMPLATE, axis=1).max() < 5.0
    # The hand-marked points land there too (within 0.2 of the template's eye distance, ~7 px): the crop frames
    # the real face, not just the detector's opinion of it.
    true_mapped = apply_transform(result.transform, truth)
    template_eyes = float(np.linalg.norm(TEMPLATE[1] - TEMPLATE[0]))
    assert np.linalg.norm(true_mapped - TEMPLATE, axis=1).max() < 0.2 * template_eyes
    # The crop is the aligned 112×112 face resized with Pillow's bicubic filter.
    np.testing.assert_array_equal(result.crop, resize_face(warp_aligned(frame, result.transform), 48))
    assert result.crop.shape == (48, 48, 3) and result.crop.dtype == np.uint8


def test_aligned_face_has_the_eyes_where_the_template_puts_them() -> None:
    """Warp a frame whose only dark dots are at given 'eye' points; after alignment they sit at the template eyes."""
    frame = np.full((300, 400, 3), 255, np.uint8)
    points = np.array([[150.0, 120.0], [210.0, 130.0], [178.0, 165.0], [175.0, 200.0]])
    for x, y in points[:2]:
        frame[int(y) - 1 : int(y) + 2, int(x) - 1 : int(x) + 2] = 0
    matrix = alignment_matrix(points)
    aligned = warp_aligned(frame, matrix)
    dark = np.argwhere(aligned.mean(axis=2) < 128)
    left = dark[dark[:, 1] < 56].mean(axis=0)[::-1]
    right = dark[dark[:, 1] >= 56].mean(axis=0)[::-1]
    expected = apply_transform(matrix, points[:2])
    np.testing.assert_allclose(left, expected[0], atol=1.0)
    np.testing.assert_allclose(right, expected[1], atol=1.0)


def test_box_points_sit_at_the_fixed_fractions() -> None:
    points = box_points(np.array([100, 50, 200, 250]))
    for row, name in enumerate(ALIGNMENT_KEYPOINTS):
        u, v = HAAR_BOX_POINTS[name]
        np.testing.assert_allclose(points[row], [100 + 100 * u, 50 + 200 * v])
