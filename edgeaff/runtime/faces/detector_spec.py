"""What the runtime needs to know about a converted SSD-style face detector (MediaPipe BlazeFace): input size and
layout, output names, anchor layout and the decoding constants.

The exporter writes this as ``face_detector.json`` beside ``face_detector.onnx`` (and inside the ONNX file's
metadata); the runtime reads it back with :meth:`FaceDetectorSpec.load`. The constants are MediaPipe's
``face_detection_short_range`` / ``face_detection_full_range`` graph options (SsdAnchorsCalculator,
TensorsToDetectionsCalculator, NonMaxSuppressionCalculator).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from edgeaff.runtime.errors import InvalidInputError
from edgeaff.runtime.spec import dataclass_from_dict

DETECTOR_SPEC_VERSION = 1

# BlazeFace keypoints, in the order the network emits them. "Right"/"left" are the person's own sides, so on an
# unmirrored camera image the right eye is the one at the smaller x (checked on a real photo in the tests).
BLAZEFACE_KEYPOINTS = (
    "right_eye",
    "left_eye",
    "nose_tip",
    "mouth_center",
    "right_ear_tragion",
    "left_ear_tragion",
)


@dataclasses.dataclass(frozen=True)
class AnchorSpec:
    """Fixed-size SSD anchors: one grid per stride, ``per_layer`` anchors per cell and per layer.

    Consecutive layers with the same stride share one grid (MediaPipe's SsdAnchorsCalculator), so BlazeFace
    short-range (strides 8, 16, 16, 16; 2 per layer) has 16×16×2 + 8×8×6 = 896 anchors.
    """

    strides: tuple[int, ...]
    per_layer: int
    offset: float = 0.5

    def __post_init__(self) -> None:
        if not self.strides or any(s <= 0 for s in self.strides) or self.per_layer <= 0:
            raise ValueError(f"anchor strides and per_layer must be positive, got {self.strides}, {self.per_layer}")


@dataclasses.dataclass(frozen=True)
class FaceDetectorSpec:
    """A converted face detector: graph input/outputs, anchors and decoding constants.

    ``input_name`` takes (1, height, width, 3) float32 RGB scaled to [-1, 1]. ``boxes_output`` gives
    (1, N, 4 + 2K) raw regressions (x, y, w, h, then K keypoints), ``scores_output`` (1, N, 1) logits.
    """

    name: str
    input_name: str
    input_height: int
    input_width: int
    boxes_output: str
    scores_output: str
    anchors: AnchorSpec
    box_scale: float
    keypoints: tuple[str, ...]
    min_score: float = 0.5
    nms_iou: float = 0.3
    score_clip: float = 100.0
    source_sha256: str | None = None
    source_license: str | None = None
    version: int = DETECTOR_SPEC_VERSION

    def __post_init__(self) -> None:
        if self.version != DETECTOR_SPEC_VERSION:
            raise ValueError(
                f"face detector spec version {self.version} is not supported (this edgeaff reads "
                f"{DETECTOR_SPEC_VERSION}); re-export the bundle with this edgeaff"
            )
        if self.input_height <= 0 or self.input_width <= 0 or self.box_scale <= 0:
            raise ValueError("input size and box scale must be positive")
        if not 0.0 < self.min_score < 1.0 or not 0.0 < self.nms_iou < 1.0:
            raise ValueError(f"min_score and nms_iou must be in (0, 1), got {self.min_score}, {self.nms_iou}")

    @property
    def num_anchors(self) -> int:
        """Number of anchors, i.e. rows of both outputs."""
        return len(generate_anchors(self))

    def keypoint_index(self, name: str) -> int:
        """Row of keypoint ``name`` in a detection's keypoints.

        Raises:
            InvalidInputError: the detector has no such keypoint.
        """
        if name not in self.keypoints:
            raise InvalidInputError(f"face detector '{self.name}' has no keypoint '{name}' ({self.keypoints})")
        return self.keypoints.index(name)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dictionary."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FaceDetectorSpec:
        """Inverse of :meth:`to_dict`; refuses unknown keys and versions."""
        return dataclass_from_dict(cls, data, where="face_detector")

    def save(self, path: str | Path) -> None:
        """Write the spec as JSON (atomically)."""
        from edgeaff.runtime.files import atomic_output

        with atomic_output(path) as tmp:
            tmp.write_text(json.dumps(self.to_dict(), indent=2) + "\n")

    @classmethod
    def load(cls, path: str | Path) -> FaceDetectorSpec:
        """Read a spec written by :meth:`save`.

        Raises:
            InvalidInputError: the file is missing or not a valid spec.
        """
        file = Path(path)
        if not file.is_file():
            raise InvalidInputError(f"face detector spec not found: {file}")
        try:
            data = json.loads(file.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise InvalidInputError(f"{file}: not a readable face detector spec ({exc})") from None
        return cls.from_dict(data)


def generate_anchors(spec: FaceDetectorSpec) -> np.ndarray:
    """Anchor centres as an (N, 2) float32 array of (x, y) in [0, 1] input coordinates, in output row order.

    Anchors are fixed-size (width = height = 1 in normalised units), as in both BlazeFace models.
    """
    rows: list[np.ndarray] = []
    strides = spec.anchors.strides
    layer = 0
    while layer < len(strides):
        stride = strides[layer]
        same = 1
        while layer + same < len(strides) and strides[layer + same] == stride:
            same += 1
        grid_h = -(-spec.input_height // stride)
        grid_w = -(-spec.input_width // stride)
        ys, xs = np.meshgrid(np.arange(grid_h), np.arange(grid_w), indexing="ij")
        centres = np.stack([(xs + spec.anchors.offset) / grid_w, (ys + spec.anchors.offset) / grid_h], axis=-1).reshape(
            -1, 1, 2
        )
        rows.append(np.repeat(centres, same * spec.anchors.per_layer, axis=1).reshape(-1, 2))
        layer += same
    return np.concatenate(rows).astype(np.float32)


def blazeface_short_range(**overrides: Any) -> FaceDetectorSpec:
    """The spec of MediaPipe's ``face_detection_short_range.tflite`` (128×128 input, faces within ~2 m)."""
    values: dict[str, Any] = {
        "name": "blazeface-short-range",
        "input_name": "input",
        "input_height": 128,
        "input_width": 128,
        "boxes_output": "regressors",
        "scores_output": "classificators",
        "anchors": AnchorSpec(strides=(8, 16, 16, 16), per_layer=2),
        "box_scale": 128.0,
        "keypoints": BLAZEFACE_KEYPOINTS,
        "min_score": 0.5,
        "nms_iou": 0.3,
    }
    values.update(overrides)
    return FaceDetectorSpec(**values)


def blazeface_full_range(**overrides: Any) -> FaceDetectorSpec:
    """The spec of MediaPipe's dense ``face_detection_full_range.tflite`` (192×192 input, faces within ~5 m)."""
    values: dict[str, Any] = {
        "name": "blazeface-full-range",
        "input_name": "input",
        "input_height": 192,
        "input_width": 192,
        "boxes_output": "reshaped_regressor_face_4",
        "scores_output": "reshaped_classifier_face_4",
        "anchors": AnchorSpec(strides=(4,), per_layer=1),
        "box_scale": 192.0,
        "keypoints": BLAZEFACE_KEYPOINTS,
        "min_score": 0.5,
        "nms_iou": 0.3,
    }
    values.update(overrides)
    return FaceDetectorSpec(**values)
