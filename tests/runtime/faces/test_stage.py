"""The face stage's contract: crops and flags, missing faces, subject choice, injected runners, bad input."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pytest
from face_scenes import FACE_POINTS, background, face_bgr, paste, placement, scene, transform_points

from edgeaff.runtime.backends.base import Runner, TensorSpec
from edgeaff.runtime.backends.ort import OrtRunner
from edgeaff.runtime.errors import InvalidInputError
from edgeaff.runtime.faces import FaceSelect, FaceStage, FaceStageOptions


def test_no_face_gives_the_black_crop_and_flags(detector_onnx: Path) -> None:
    with FaceStage.dnn(detector_onnx) as stage:
        result = stage.process(background(seed=9), t_s=1.5)
        found = stage.process(scene((320, 240))[0])
        gone = stage.process(background(seed=9))
    assert not result.found and not result.detected
    assert result.crop.shape == (48, 48, 3) and result.crop.dtype == np.uint8 and not result.crop.any()
    assert (result.box, result.keypoints, result.transform, result.score, result.t_s) == (None, None, None, 0.0, 1.5)
    assert found.found and found.crop.any()
    assert not gone.found and not gone.crop.any()
    assert stage.counts == {"detected": 1, "tracked": 0, "missing": 2}


def _two_faces() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A big face on the left and a smaller, mirrored one on the right; their true eye midpoints."""
    big, small = placement((170, 250), 1.2), placement((480, 220), 0.9)
    frame = paste(paste(background(), big), small, face=np.ascontiguousarray(face_bgr()[:, ::-1]))
    mirrored_points = FACE_POINTS.copy()
    mirrored_points[:, 0] = 255 - mirrored_points[:, 0]
    return frame, transform_points(big, FACE_POINTS)[:2].mean(0), transform_points(small, mirrored_points)[:2].mean(0)


@pytest.mark.parametrize(
    ("select", "which"), [("largest", "big"), ("left", "big"), ("right", "small"), (FaceSelect.CENTER, "small")]
)
def test_subject_selection_with_two_faces(detector_onnx: Path, select: str, which: str) -> None:
    frame, big_eyes, small_eyes = _two_faces()
    # centre policy: the right face (at x 480) is nearer the centre of a 900-px-wide frame than the left one.
    wide = np.concatenate([frame, background(480, 260, seed=4)], axis=1) if select == FaceSelect.CENTER else frame
    with FaceStage.dnn(detector_onnx, options=FaceStageOptions(select=select)) as stage:
        result = stage.process(wide)
    assert result.found and result.keypoints is not None
    eyes = result.keypoints[:2].mean(axis=0)
    target = big_eyes if which == "big" else small_eyes
    assert np.linalg.norm(eyes - target) < 10


def test_the_followed_subject_keeps_the_stream_when_a_bigger_face_appears(detector_onnx: Path) -> None:
    small_alone = paste(background(), placement((480, 220), 0.9))
    both = paste(small_alone, placement((170, 250), 1.4))
    with FaceStage.dnn(detector_onnx, options=FaceStageOptions(detect_every=2)) as stage:
        first = stage.process(small_alone)
        later = [stage.process(both) for _ in range(5)]
    assert first.found
    for result in later:
        assert result.found and result.keypoints is not None
        assert abs(result.keypoints[:2].mean(axis=0)[0] - 480) < 30
    # a fresh stream picks the largest
    with FaceStage.dnn(detector_onnx) as stage:
        assert abs(stage.process(both).keypoints[:2].mean(axis=0)[0] - 170) < 30  # type: ignore[index]


class _CountingRunner(Runner):
    """Wraps another runner and counts inferences: stands in for a TensorRT runner."""

    name = "counting"

    def __init__(self, inner: Runner) -> None:
        super().__init__()
        self.inner, self.calls = inner, 0

    def activate(self) -> None:
        self.inner.__enter__()

    def deactivate(self) -> None:
        self.inner.__exit__(None, None, None)

    @property
    def inputs(self) -> list[TensorSpec]:
        return self.inner.inputs

    @property
    def outputs(self) -> list[TensorSpec]:
        return self.inner.outputs

    def infer(self, feed: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        self.calls += 1
        return self.inner.infer(feed)


def test_an_injected_runner_runs_the_detector(detector_onnx: Path) -> None:
    runner = _CountingRunner(OrtRunner(detector_onnx, threads=1))
    frame = scene((320, 240))[0]
    with FaceStage.dnn(detector_onnx, runner=runner, options=FaceStageOptions(detect_every=4)) as stage:
        results = [stage.process(frame) for _ in range(8)]
        assert runner.is_active
    assert not runner.is_active
    assert all(r.found for r in results)
    # frames 0 and 4 detect: whole frame + a closer look on frame 0, the region around the face on frame 4
    assert runner.calls == 3


def test_options_and_inputs_are_validated(detector_onnx: Path) -> None:
    with pytest.raises(InvalidInputError, match="detect_every"):
        FaceStageOptions(detect_every=0)
    with pytest.raises(InvalidInputError, match="largest, center, left, right"):
        FaceStageOptions(select="biggest")  # type: ignore[arg-type]
    assert FaceStageOptions(select="RIGHT").select is FaceSelect.RIGHT  # type: ignore[arg-type]
    stage = FaceStage.dnn(detector_onnx)
    with pytest.raises(RuntimeError, match="with"):
        stage.process(np.zeros((10, 10, 3), np.uint8))
    with stage, pytest.raises(InvalidInputError, match="uint8 BGR"):
        stage.process(np.zeros((10, 10, 3), np.float32))
