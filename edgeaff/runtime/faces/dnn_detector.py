"""The DNN face detector (BlazeFace converted to ONNX): letterbox, inference through a runner, anchor decoding,
score threshold and weighted NMS, boxes and keypoints back in frame pixels.

The runner is injected (any :class:`edgeaff.runtime.backends.base.Runner`), so the same code runs the graph on
ONNX Runtime today and on TensorRT later.
"""

from __future__ import annotations

from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np

from edgeaff.runtime.backends.base import Runner
from edgeaff.runtime.errors import InvalidInputError, require
from edgeaff.runtime.faces.detection import FaceDetection, weighted_nms
from edgeaff.runtime.faces.detector_spec import FaceDetectorSpec, generate_anchors

Rect = tuple[float, float, float, float]


def letterbox_transform(region: Rect, width: int, height: int) -> np.ndarray:
    """The 2×3 affine map from frame pixels to a ``width``×``height`` input showing ``region`` (x0, y0, x1, y1)
    scaled to fit and centred, aspect ratio kept (MediaPipe's ``keep_aspect_ratio``)."""
    x0, y0, x1, y1 = region
    scale = min(width / (x1 - x0), height / (y1 - y0))
    off_x = (width - (x1 - x0) * scale) / 2 - x0 * scale
    off_y = (height - (y1 - y0) * scale) / 2 - y0 * scale
    return np.array([[scale, 0.0, off_x], [0.0, scale, off_y]], dtype=np.float64)


class DnnFaceDetector:
    """Detect faces with a converted BlazeFace graph.

    Args:
        spec: the detector's :class:`FaceDetectorSpec` (``face_detector.json``).
        runner: a runner over the detector graph; entered by :meth:`open` unless it is already active (then the
            caller keeps ownership and closes it).
        min_score: override of the spec's score threshold.

    Example:
        >>> with DnnFaceDetector.from_files("face_detector.onnx") as detector:  # doctest: +SKIP
        ...     faces = detector.detect(frame_bgr)
    """

    has_keypoints = True

    def __init__(self, spec: FaceDetectorSpec, runner: Runner, *, min_score: float | None = None) -> None:
        if min_score is not None and not 0.0 < min_score < 1.0:
            raise InvalidInputError(f"face detector min_score must be in (0, 1), got {min_score}")
        self.spec = spec
        self.runner = runner
        self.min_score = spec.min_score if min_score is None else min_score
        self.anchors = generate_anchors(spec)
        self._owns_runner = False

    @classmethod
    def from_files(
        cls,
        onnx_path: str | Path,
        spec_path: str | Path | None = None,
        *,
        backend: str = "ort-cpu",
        threads: int | None = 1,
        min_score: float | None = None,
    ) -> DnnFaceDetector:
        """A detector over ``face_detector.onnx`` run by ONNX Runtime; the spec defaults to the ``.json`` beside it."""
        from edgeaff.runtime.backends.ort import OrtRunner

        onnx_file = Path(onnx_path)
        spec = FaceDetectorSpec.load(spec_path if spec_path is not None else onnx_file.with_suffix(".json"))
        return cls(spec, OrtRunner(onnx_file, backend=backend, threads=threads), min_score=min_score)

    def open(self) -> None:
        """Enter the runner (load the graph) and check its inputs and outputs against the spec."""
        if not self.runner.is_active:
            self.runner.__enter__()
            self._owns_runner = True
        try:
            self._check_graph()
        except BaseException:
            self.close()
            raise

    def _check_graph(self) -> None:
        spec = self.spec
        inputs = {t.name: t for t in self.runner.inputs}
        outputs = {t.name: t for t in self.runner.outputs}
        want_in = (1, spec.input_height, spec.input_width, 3)
        if spec.input_name not in inputs or inputs[spec.input_name].shape != want_in:
            raise InvalidInputError(
                f"face detector graph must take '{spec.input_name}' {want_in}; it takes "
                f"{[(t.name, t.shape) for t in inputs.values()]} (spec and graph do not belong together)"
            )
        width = 4 + 2 * len(spec.keypoints)
        expected = {spec.boxes_output: (1, len(self.anchors), width), spec.scores_output: (1, len(self.anchors), 1)}
        for name, shape in expected.items():
            if name not in outputs or outputs[name].shape != shape:
                raise InvalidInputError(
                    f"face detector graph must return '{name}' {shape}; it returns "
                    f"{[(t.name, t.shape) for t in outputs.values()]}"
                )

    def close(self) -> None:
        """Release the runner if :meth:`open` entered it."""
        if self._owns_runner:
            self._owns_runner = False
            self.runner.__exit__(None, None, None)

    def __enter__(self) -> DnnFaceDetector:
        self.open()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def preprocess(self, frame_bgr: np.ndarray, region: Rect) -> tuple[np.ndarray, np.ndarray]:
        """The graph input for ``region`` of the frame and the frame→input affine map used.

        Pixels outside the frame (a region reaching past its border) and the letterbox bars are black, as in
        MediaPipe's image-to-tensor conversion (bilinear warp, values scaled to [-1, 1]).
        """
        cv2: Any = require("cv2", extra="ort", purpose="face detection")
        matrix = letterbox_transform(region, self.spec.input_width, self.spec.input_height)
        image = cv2.warpAffine(
            frame_bgr,
            matrix,
            (self.spec.input_width, self.spec.input_height),
            flags=cv2.INTER_LINEAR,
            borderMode=cv2.BORDER_CONSTANT,
            borderValue=(0, 0, 0),
        )
        tensor = image[None, :, :, ::-1].astype(np.float32) * np.float32(1 / 127.5) - np.float32(1.0)
        return tensor, matrix

    def decode(self, raw_boxes: np.ndarray, raw_scores: np.ndarray) -> list[tuple[np.ndarray, np.ndarray, float]]:
        """Boxes (x0, y0, x1, y1) and keypoints in normalised input coordinates, after threshold and NMS."""
        spec = self.spec
        logits = np.clip(raw_scores.reshape(-1).astype(np.float64), -spec.score_clip, spec.score_clip)
        scores = 1.0 / (1.0 + np.exp(-logits))
        keep = np.flatnonzero(scores >= self.min_score)
        if keep.size == 0:
            return []
        raw = raw_boxes.reshape(len(self.anchors), -1)[keep].astype(np.float64) / spec.box_scale
        anchors = self.anchors[keep].astype(np.float64)
        centre = raw[:, 0:2] + anchors
        half = raw[:, 2:4] / 2
        boxes = np.concatenate([centre - half, centre + half], axis=1)
        points = raw[:, 4:].reshape(len(keep), -1, 2) + anchors[:, None, :]
        return weighted_nms(boxes, points, scores[keep], iou_threshold=spec.nms_iou)

    def detect(self, frame_bgr: np.ndarray, *, roi: Rect | None = None) -> list[FaceDetection]:
        """Faces in a BGR uint8 frame (or in ``roi`` of it, x0, y0, x1, y1 pixels, which may reach past the border).

        Returns:
            Detections in frame pixels, best score first.

        Raises:
            InvalidInputError: the frame is not (H, W, 3) uint8, or the region is empty.
        """
        if frame_bgr.ndim != 3 or frame_bgr.shape[2] != 3 or frame_bgr.dtype != np.uint8:
            raise InvalidInputError(
                f"a video frame must be (H, W, 3) uint8 BGR, got {frame_bgr.shape} {frame_bgr.dtype}"
            )
        height, width = frame_bgr.shape[:2]
        region: Rect = (0.0, 0.0, float(width), float(height))
        if roi is not None:
            region = (float(roi[0]), float(roi[1]), float(roi[2]), float(roi[3]))
        if region[2] <= region[0] or region[3] <= region[1]:
            raise InvalidInputError(f"face detection region {region} is empty")
        tensor, matrix = self.preprocess(frame_bgr, region)
        outputs = self.runner.infer({self.spec.input_name: tensor})
        clusters = self.decode(outputs[self.spec.boxes_output], outputs[self.spec.scores_output])
        size = np.array([self.spec.input_width, self.spec.input_height], dtype=np.float64)
        scale, offset = matrix[0, 0], matrix[:, 2]
        faces = []
        for box, points, score in clusters:
            corners = (box.reshape(2, 2) * size - offset) / scale
            keypoints = (points * size - offset) / scale
            faces.append(FaceDetection(corners.reshape(4).astype(np.float32), score, keypoints.astype(np.float32)))
        return faces
