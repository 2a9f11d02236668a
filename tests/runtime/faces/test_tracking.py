"""Optical-flow tracking follows a moving real face, gives up on jumps, and the stage re-detects."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from face_scenes import FACE_POINTS, INTEROCULAR, background, paste, placement, scene, transform_points

from edgeaff.runtime.faces import FaceStage, FaceStageOptions
from edgeaff.runtime.faces.detection import FaceDetection
from edgeaff.runtime.faces.tracking import KltTracker

BACKGROUND = background()
FACE_BOX = np.array([[78.0, 70.0], [170.0, 175.0]])  # the face's box in the photo, marked by hand


def _moving(frame_index: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Frame ``i`` of a face drifting right and down by (6, 2) px/frame, growing 1 %/frame and turning 0.8°/frame."""
    matrix = placement((200 + 6 * frame_index, 200 + 2 * frame_index), 1.0 + 0.01 * frame_index, 0.8 * frame_index)
    return paste(BACKGROUND, matrix), transform_points(matrix, FACE_POINTS), matrix


def _true_detection(frame_index: int) -> FaceDetection:
    _, truth, matrix = _moving(frame_index)
    box = transform_points(matrix, FACE_BOX).reshape(-1).astype(np.float32)
    return FaceDetection(box, 0.9, truth.astype(np.float32))


def _camera(frame: np.ndarray, index: int, rng: np.random.Generator) -> np.ndarray:
    """Sensor noise (sigma 6) and light brightening by 1 % per frame."""
    noisy = frame.astype(np.float32) * (1 + 0.01 * index) + rng.normal(0, 6, frame.shape)
    return np.clip(noisy, 0, 255).astype(np.uint8)


@pytest.mark.parametrize("camera", [False, True])
def test_tracker_follows_translation_rotation_and_scale(camera: bool) -> None:
    """Started from the true points, the tracked points stay within 3 px of the truth for 30 frames (the face
    moves 190 px, grows 30 % and turns 24° meanwhile), with or without noise and changing light."""
    rng = np.random.default_rng(0)
    tracker = KltTracker()
    assert tracker.start(_moving(0)[0], _true_detection(0))
    for index in range(1, 31):
        frame, truth, _ = _moving(index)
        frame = _camera(frame, index, rng) if camera else frame
        moved = tracker.step(frame)
        assert moved is not None, f"lost at frame {index}"
        assert moved.keypoints is not None
        assert np.linalg.norm(moved.keypoints - truth, axis=1).max() < 3.0
    expected_width = (FACE_BOX[1, 0] - FACE_BOX[0, 0]) * 1.3
    assert abs(moved.width - expected_width) < 0.05 * expected_width


def test_tracker_loses_a_face_that_jumps_or_vanishes() -> None:
    start_frame, _ = scene((250, 220))
    detection = FaceDetection(
        transform_points(placement((250, 220)), FACE_BOX).reshape(-1).astype(np.float32),
        0.9,
        transform_points(placement((250, 220)), FACE_POINTS).astype(np.float32),
    )
    tracker = KltTracker()
    assert tracker.start(start_frame, detection)
    assert tracker.step(scene((500, 380))[0]) is None
    assert not tracker.active
    assert tracker.start(start_frame, detection)
    assert tracker.step(BACKGROUND) is None


def test_textureless_faces_cannot_be_tracked() -> None:
    flat = np.full((480, 640, 3), 128, np.uint8)
    detection = FaceDetection(np.array([200, 150, 300, 250], np.float32), 0.9, None)
    assert not KltTracker().start(flat, detection)


def test_stage_tracks_between_detections_and_redetects_after_a_jump(detector_onnx: Path) -> None:
    options = FaceStageOptions(detect_every=5)
    with FaceStage.dnn(detector_onnx, options=options) as stage:
        results = []
        for index in range(12):
            frame, truth, _ = _moving(index)
            result = stage.process(frame, index / 30)
            results.append(result)
            assert result.found and result.keypoints is not None
            scale = 1.0 + 0.01 * index
            assert np.linalg.norm(result.keypoints[:4] - truth, axis=1).max() < 0.2 * INTEROCULAR * scale
        assert [r.detected for r in results] == [True, False, False, False, False] * 2 + [True, False]
        assert [r.t_s for r in results] == [i / 30 for i in range(12)]
        # The face jumps across the frame: tracking fails, the stage detects it again in the same frame.
        jumped, truth = scene((520, 360), 1.1)
        result = stage.process(jumped)
        assert result.found and result.detected
        assert result.keypoints is not None
        assert np.linalg.norm(result.keypoints[:4] - truth, axis=1).max() < 0.2 * INTEROCULAR * 1.1
        assert stage.counts == {"detected": 4, "tracked": 9, "missing": 0}


def test_detect_every_frame_never_tracks(detector_onnx: Path) -> None:
    with FaceStage.dnn(detector_onnx, options=FaceStageOptions(detect_every=1)) as stage:
        flags = [stage.process(_moving(i)[0]).detected for i in range(4)]
        assert flags == [True] * 4
        assert not stage.tracker.active
