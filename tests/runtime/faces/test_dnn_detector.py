"""The BlazeFace detector finds the real face where it was placed, and nothing on faceless frames."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from face_scenes import FACE_POINTS, INTEROCULAR, background, placement, scene, transform_points

from edgeaff.runtime.backends.base import Runner, TensorSpec
from edgeaff.runtime.errors import InvalidInputError
from edgeaff.runtime.faces.detection import FaceDetection
from edgeaff.runtime.faces.detector_spec import FaceDetectorSpec, blazeface_short_range, generate_anchors
from edgeaff.runtime.faces.dnn_detector import DnnFaceDetector, letterbox_transform

PLACEMENTS = [
    ((320, 240), 1.0, 0.0),
    ((150, 130), 0.9, 0.0),
    ((500, 360), 1.2, 0.0),
    ((320, 240), 1.6, 15.0),
    ((200, 300), 1.0, -20.0),
    ((450, 200), 0.8, 0.0),
]


def _inside(points: np.ndarray, box: np.ndarray) -> bool:
    return bool(np.all((points >= box[:2]) & (points <= box[2:])))


@pytest.mark.parametrize(("centre", "scale", "angle"), PLACEMENTS)
def test_face_is_found_where_it_was_placed(
    detector: DnnFaceDetector, centre: tuple[int, int], scale: float, angle: float
) -> None:
    frame, truth = scene(centre, scale, angle)
    faces = detector.detect(frame)
    assert len(faces) == 1
    face = faces[0]
    assert face.score > 0.6
    # Whole-frame detection works on a 128×128 letterbox (the face is ~20 px there): coarse, but on the face.
    assert _inside(truth, face.box)
    assert np.linalg.norm(face.keypoints[:4] - truth, axis=1).max() < 0.6 * INTEROCULAR * scale
    # A second look at a region twice the face's size gives keypoints within 0.2 of the eye distance of the
    # hand-marked points.
    cx, cy = face.center
    half = max(face.width, face.height)
    closer = detector.detect(frame, roi=(cx - half, cy - half, cx + half, cy + half))
    assert len(closer) == 1
    assert np.linalg.norm(closer[0].keypoints[:4] - truth, axis=1).max() < 0.2 * INTEROCULAR * scale


def test_keypoint_zero_is_the_image_left_eye(detector: DnnFaceDetector) -> None:
    """BlazeFace's first keypoint is the person's right eye, i.e. the image-left eye on an unmirrored frame."""
    frame, truth = scene((320, 240), 1.5)
    face = detector.detect(frame)[0]
    assert face.keypoints.shape == (6, 2)
    assert face.keypoints[0, 0] < face.keypoints[1, 0]
    eye_distance = np.linalg.norm(truth[1] - truth[0])
    assert np.linalg.norm(face.keypoints[0] - truth[0]) < 0.3 * eye_distance
    assert np.linalg.norm(face.keypoints[1] - truth[1]) < 0.3 * eye_distance


def test_non_square_frames_and_regions_past_the_border_map_back_to_frame_pixels(detector: DnnFaceDetector) -> None:
    frame, truth = scene((1100, 600), 2.0, height=720, width=1280)
    face = detector.detect(frame)[0]
    assert _inside(truth, face.box)
    # A region reaching past the bottom-right corner: the outside is black, coordinates stay frame pixels.
    closer = detector.detect(frame, roi=(850, 350, 1350, 850))[0]
    assert np.linalg.norm(closer.keypoints[:4] - truth, axis=1).max() < 0.2 * INTEROCULAR * 2.0


@pytest.mark.parametrize("kind", ["black", "grey", "noise", "smooth"])
def test_faceless_frames_give_no_detection(detector: DnnFaceDetector, kind: str) -> None:
    rng = np.random.default_rng(3)
    frames = {
        "black": np.zeros((480, 640, 3), np.uint8),
        "grey": np.full((480, 640, 3), 128, np.uint8),
        "noise": rng.integers(0, 256, (480, 640, 3), dtype=np.uint8),
        "smooth": background(seed=5),
    }
    assert detector.detect(frames[kind]) == []


def test_bad_frames_are_refused(detector: DnnFaceDetector) -> None:
    with pytest.raises(InvalidInputError, match="uint8 BGR"):
        detector.detect(np.zeros((480, 640), np.uint8))
    with pytest.raises(InvalidInputError, match="empty"):
        detector.detect(np.zeros((480, 640, 3), np.uint8), roi=(10, 10, 10, 50))


def test_letterbox_keeps_aspect_ratio_and_centres() -> None:
    matrix = letterbox_transform((0, 0, 640, 480), 128, 128)
    corners = np.array([[0, 0, 1], [640, 480, 1]], dtype=float) @ matrix.T
    np.testing.assert_allclose(corners, [[0, 16], [128, 112]])


def test_anchor_layout_matches_the_ssd_grid() -> None:
    """896 anchors: 16×16 cells × 2, then 8×8 cells × 6 (three stride-16 layers of 2), cell centres."""
    anchors = generate_anchors(blazeface_short_range())
    assert anchors.shape == (896, 2)
    np.testing.assert_allclose(anchors[0], [0.5 / 16, 0.5 / 16])
    np.testing.assert_allclose(anchors[1], anchors[0])
    np.testing.assert_allclose(anchors[2], [1.5 / 16, 0.5 / 16])
    np.testing.assert_allclose(anchors[511], [15.5 / 16, 15.5 / 16])
    np.testing.assert_allclose(anchors[512:518], np.tile([0.5 / 8, 0.5 / 8], (6, 1)))
    np.testing.assert_allclose(anchors[-1], [7.5 / 8, 7.5 / 8])


class _ScriptedRunner(Runner):
    """A runner returning fixed raw outputs: checks decoding without a network."""

    name = "scripted"

    def __init__(self, boxes: np.ndarray, scores: np.ndarray) -> None:
        super().__init__()
        self.boxes, self.scores, self.feeds = boxes, scores, []

    def activate(self) -> None:
        pass

    def deactivate(self) -> None:
        pass

    @property
    def inputs(self) -> list[TensorSpec]:
        return [TensorSpec("input", (1, 128, 128, 3), np.dtype(np.float32))]

    @property
    def outputs(self) -> list[TensorSpec]:
        return [
            TensorSpec("regressors", (1, 896, 16), np.dtype(np.float32)),
            TensorSpec("classificators", (1, 896, 1), np.dtype(np.float32)),
        ]

    def infer(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:  # type: ignore[override]
        self.check_feed(feed)
        self.feeds.append(feed["input"])
        return {"regressors": self.boxes, "classificators": self.scores}


def test_decoding_and_weighted_nms_follow_the_published_formulas() -> None:
    """Two overlapping candidates merge into their score-weighted mean; a far one stays; low scores are dropped."""
    spec = blazeface_short_range()
    anchors = generate_anchors(spec)
    boxes = np.zeros((1, 896, 16), np.float32)
    scores = np.full((1, 896, 1), -10.0, np.float32)
    # anchor 100 and 101 share a cell: offsets (in 128-px units) relative to the anchor centre.
    boxes[0, 100, :4] = [2.0, -1.0, 40.0, 40.0]
    boxes[0, 101, :4] = [4.0, 1.0, 44.0, 44.0]
    boxes[0, 100, 4:6] = [-10.0, -5.0]
    boxes[0, 101, 4:6] = [-8.0, -3.0]
    scores[0, 100], scores[0, 101] = 2.0, 1.0
    boxes[0, 700, :4] = [0.0, 0.0, 30.0, 30.0]
    scores[0, 700] = 0.5
    scores[0, 300] = -0.5  # sigmoid 0.38 < 0.5: dropped
    runner = _ScriptedRunner(boxes, scores)
    with DnnFaceDetector(spec, runner) as detector:
        faces = detector.detect(np.zeros((128, 128, 3), np.uint8))
    assert len(faces) == 2
    s1, s2 = 1 / (1 + np.exp(-2.0)), 1 / (1 + np.exp(-1.0))
    w1, w2 = s1 / (s1 + s2), s2 / (s1 + s2)

    def decoded(row: int) -> np.ndarray:
        cx, cy = boxes[0, row, 0] + anchors[row, 0] * 128, boxes[0, row, 1] + anchors[row, 1] * 128
        w, h = boxes[0, row, 2], boxes[0, row, 3]
        return np.array([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2])

    np.testing.assert_allclose(faces[0].box, w1 * decoded(100) + w2 * decoded(101), atol=1e-4)
    np.testing.assert_allclose(faces[0].score, s1, rtol=1e-6)
    kp = w1 * (boxes[0, 100, 4:6] + anchors[100] * 128) + w2 * (boxes[0, 101, 4:6] + anchors[101] * 128)
    np.testing.assert_allclose(faces[0].keypoints[0], kp, atol=1e-4)
    np.testing.assert_allclose(faces[1].box, decoded(700), atol=1e-4)
    # the input the runner saw: black frame -> -1 everywhere
    assert runner.feeds[0].shape == (1, 128, 128, 3) and np.all(runner.feeds[0] == -1.0)


def test_a_graph_that_does_not_fit_the_spec_is_refused(detector_onnx: Path) -> None:
    from edgeaff.runtime.backends.ort import OrtRunner

    wrong = FaceDetectorSpec.from_dict({**blazeface_short_range().to_dict(), "input_height": 192})
    with pytest.raises(InvalidInputError, match="do not belong together"):
        DnnFaceDetector(wrong, OrtRunner(detector_onnx)).open()


def test_detection_box_properties() -> None:
    face = FaceDetection(np.array([10, 20, 50, 100], np.float32), 0.9)
    assert (face.width, face.height, face.center, face.area) == (40.0, 80.0, (30.0, 60.0), 3200.0)


def test_spec_round_trips_through_json(tmp_path: Path) -> None:
    spec = blazeface_short_range(source_sha256="ab" * 32)
    spec.save(tmp_path / "d.json")
    assert FaceDetectorSpec.load(tmp_path / "d.json") == spec
    (tmp_path / "bad.json").write_text('{"name": 1}')
    with pytest.raises(InvalidInputError):
        FaceDetectorSpec.load(tmp_path / "bad.json")
    with pytest.raises(InvalidInputError, match="not found"):
        FaceDetectorSpec.load(tmp_path / "missing.json")


def test_placement_helper_maps_the_marked_points() -> None:
    """Sanity of the test scene itself: identity placement keeps the photo's points."""
    np.testing.assert_allclose(transform_points(placement((128, 128)), FACE_POINTS), FACE_POINTS)
