"""The Haar cascade alternative: finds the same photo, aligns from its box, and fails clearly without a cascade."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from face_scenes import background, scene

from edgeaff.runtime.errors import EdgeaffError, InvalidInputError
from edgeaff.runtime.faces import FaceStage, FaceStageOptions
from edgeaff.runtime.faces.alignment import ALIGNMENT_KEYPOINTS, TEMPLATE_POINTS, apply_transform
from edgeaff.runtime.faces.haar_detector import HaarFaceDetector, find_cascade

TEMPLATE = np.array([TEMPLATE_POINTS[name] for name in ALIGNMENT_KEYPOINTS])
TEMPLATE_EYES = float(np.linalg.norm(TEMPLATE[1] - TEMPLATE[0]))


@pytest.mark.parametrize(("centre", "scale"), [((320, 240), 1.0), ((200, 200), 1.5), ((450, 300), 1.2)])
def test_haar_finds_the_photo_and_the_crop_frames_the_face(centre: tuple[int, int], scale: float) -> None:
    frame, truth = scene(centre, scale)
    with HaarFaceDetector() as detector:
        faces = detector.detect(frame)
    assert len(faces) == 1 and faces[0].keypoints is None
    box = faces[0].box
    assert np.all((truth >= box[:2]) & (truth <= box[2:]))
    with FaceStage.haar(options=FaceStageOptions(detect_every=3)) as stage:
        results = [stage.process(frame) for _ in range(4)]
    assert [r.detected for r in results] == [True, False, False, True]
    for result in results:
        assert result.found and result.keypoints is None and result.transform is not None
        # A box carries no landmarks, so the fixed box template is looser than keypoint alignment: within 0.3 of
        # the template's eye distance (~11 px of 112).
        assert np.linalg.norm(apply_transform(result.transform, truth) - TEMPLATE, axis=1).max() < 0.3 * TEMPLATE_EYES


def test_haar_finds_nothing_on_faceless_frames() -> None:
    with HaarFaceDetector() as detector:
        assert detector.detect(background(seed=5)) == []
        assert detector.detect(np.full((480, 640, 3), 128, np.uint8)) == []


def test_a_missing_cascade_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(InvalidInputError, match="not found"):
        find_cascade(tmp_path / "nope.xml")
    import cv2

    # OpenCV 5 wheels: cv2.data exists but the folder is empty.
    monkeypatch.setattr(cv2, "data", SimpleNamespace(haarcascades=str(tmp_path)), raising=False)
    with pytest.raises(EdgeaffError, match="opencv-python-headless<5"):
        FaceStage.haar()
    (tmp_path / "broken.xml").write_text("<opencv_storage></opencv_storage>")
    with pytest.raises(InvalidInputError, match="not a readable OpenCV cascade"):
        HaarFaceDetector(tmp_path / "broken.xml").open()
