"""The face stage: one video frame in, the subject's 48×48 aligned RGB face crop out.

Per frame the stage either detects (first frame, every ``detect_every`` frames, and whenever tracking is lost) or
moves the last face with the optical-flow tracker. A periodic re-detection first searches a region around the
tracked face (the face is seen at a higher resolution there, and another person cannot take over the stream);
only if the subject is not found there does it search the whole frame. Frames without a face give the black crop
training used for missing faces, flagged ``found=False``.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from types import TracebackType
from typing import Protocol

import numpy as np

from edgeaff.runtime.backends.base import Runner
from edgeaff.runtime.choices import Choice
from edgeaff.runtime.errors import InvalidInputError
from edgeaff.runtime.faces.alignment import (
    ALIGNMENT_KEYPOINTS,
    alignment_matrix,
    box_points,
    model_crop,
    warp_aligned,
)
from edgeaff.runtime.faces.detection import FaceDetection, FaceSelect, match_subject, select_subject
from edgeaff.runtime.faces.follower import FlowTracker, Follower
from edgeaff.runtime.faces.image import black_face
from edgeaff.runtime.faces.tracking import KltTracker, TrackerOptions
from edgeaff.runtime.spec import DEFAULT_FEATURE_SPEC


class FaceDetector(Protocol):
    """What the stage needs from a detector (:class:`DnnFaceDetector`, :class:`HaarFaceDetector`)."""

    has_keypoints: bool

    def open(self) -> None: ...

    def close(self) -> None: ...

    def detect(
        self, frame_bgr: np.ndarray, *, roi: tuple[float, float, float, float] | None = None
    ) -> list[FaceDetection]: ...


class DetectorKind(Choice):
    """Face detectors (``--face-detector``): ``dnn`` (BlazeFace, default) or ``haar`` (OpenCV cascade)."""

    __label__ = "face detector"

    DNN = "dnn"
    HAAR = "haar"


@dataclasses.dataclass(frozen=True)
class FaceStageOptions:
    """How often to detect and whom to follow.

    Attributes:
        detect_every: detect at least every this many frames and track in between; 1 detects every frame.
        select: which face becomes the subject when none is being followed.
        refresh_in_region: re-detections of a followed face look in a region around it first.
        refine_in_region: a face found in the whole frame is detected again in a region around it, for keypoints
            at a higher resolution (one more detector run, only on whole-frame detections).
        region_scale: that region's side, in face-box sizes.
        region_min_score: score a detection in such a region needs. Zoomed in, a real face scores high (>= 0.89
            on the test photo at any pose tried) while face-like background texture can reach 0.68, so this is
            stricter than the detector's whole-frame threshold.
        same_subject_iou: a detection overlapping the followed face's box this much is the same subject.
        crop_size: side of the output crop (the model's stored crop size).
        tracker: optical-flow tracker settings.
    """

    detect_every: int = 10
    select: FaceSelect = FaceSelect.LARGEST
    refresh_in_region: bool = True
    refine_in_region: bool = True
    region_scale: float = 2.0
    region_min_score: float = 0.75
    same_subject_iou: float = 0.3
    crop_size: int = DEFAULT_FEATURE_SPEC.face.image_size
    tracker: TrackerOptions = dataclasses.field(default_factory=TrackerOptions)

    def __post_init__(self) -> None:
        if self.detect_every < 1:
            raise InvalidInputError(f"detect_every must be >= 1 (1 = detect every frame), got {self.detect_every}")
        if (
            self.region_scale < 1.0
            or not 0.0 < self.same_subject_iou < 1.0
            or not 0.0 <= self.region_min_score < 1.0
            or self.crop_size < 8
        ):
            raise InvalidInputError(
                "face stage: region_scale >= 1, 0 < same_subject_iou < 1, 0 <= region_min_score < 1, crop_size >= 8; "
                f"got {self.region_scale}, {self.same_subject_iou}, {self.region_min_score}, {self.crop_size}"
            )
        object.__setattr__(self, "select", FaceSelect.parse(self.select))


@dataclasses.dataclass(frozen=True)
class FaceResult:
    """The face stage's output for one frame.

    Attributes:
        crop: (crop_size, crop_size, 3) uint8 RGB aligned face; all zeros when ``found`` is false.
        found: a face was detected or tracked in this frame.
        detected: the face comes from a fresh detection (``False``: tracked, or not found).
        box: (4,) ``x0, y0, x1, y1`` frame pixels, or ``None``.
        keypoints: (K, 2) detector keypoints in frame pixels (``None`` for Haar or no face).
        score: detection confidence of the followed face (0 when not found).
        transform: (2, 3) frame → 112×112 aligned-face similarity, or ``None``.
        t_s: the frame's timestamp as given.
    """

    crop: np.ndarray
    found: bool
    detected: bool
    box: np.ndarray | None
    keypoints: np.ndarray | None
    score: float
    transform: np.ndarray | None
    t_s: float | None


class FaceStage:
    """Turn BGR frames into the subject's aligned face crops. Use as a context manager.

    Args:
        detector: a :class:`FaceDetector`; opened and closed with the stage.
        keypoint_names: the detector's keypoint order (``None`` for landmark-free detectors: boxes are aligned
            through a fixed box template).
        options: :class:`FaceStageOptions`.

    Example:
        >>> with FaceStage.dnn("bundle/face_detector.onnx") as faces:  # doctest: +SKIP
        ...     result = faces.process(frame_bgr, t_s=0.0)
    """

    def __init__(
        self,
        detector: FaceDetector,
        *,
        keypoint_names: tuple[str, ...] | None = None,
        options: FaceStageOptions | None = None,
    ) -> None:
        self.detector = detector
        self.options = options or FaceStageOptions()
        self._points: list[int] | None = None
        if keypoint_names is not None:
            missing = [name for name in ALIGNMENT_KEYPOINTS if name not in keypoint_names]
            if missing:
                raise InvalidInputError(f"the face detector lacks the alignment keypoints {missing}")
            self._points = [keypoint_names.index(name) for name in ALIGNMENT_KEYPOINTS]
        self._follower = Follower(KltTracker(self.options.tracker))
        self.counts = {"detected": 0, "tracked": 0, "missing": 0}
        self._open = False

    @property
    def tracker(self) -> FlowTracker:
        """The optical-flow tracker of the followed face (replaceable, e.g. by a timed wrapper)."""
        return self._follower.tracker

    @tracker.setter
    def tracker(self, tracker: FlowTracker) -> None:
        self._follower.tracker = tracker

    @classmethod
    def dnn(
        cls,
        onnx_path: str | Path,
        spec_path: str | Path | None = None,
        *,
        runner: Runner | None = None,
        backend: str = "ort-cpu",
        threads: int | None = 1,
        min_score: float | None = None,
        options: FaceStageOptions | None = None,
    ) -> FaceStage:
        """A stage over the converted BlazeFace graph (``face_detector.onnx`` + ``face_detector.json``).

        ``runner`` replaces the default ONNX Runtime runner (e.g. a TensorRT runner over the same graph).
        """
        from edgeaff.runtime.faces.detector_spec import FaceDetectorSpec
        from edgeaff.runtime.faces.dnn_detector import DnnFaceDetector

        if runner is None:
            detector = DnnFaceDetector.from_files(
                onnx_path, spec_path, backend=backend, threads=threads, min_score=min_score
            )
        else:
            spec = FaceDetectorSpec.load(spec_path if spec_path is not None else Path(onnx_path).with_suffix(".json"))
            detector = DnnFaceDetector(spec, runner, min_score=min_score)
        return cls(detector, keypoint_names=detector.spec.keypoints, options=options)

    @classmethod
    def haar(cls, cascade: str | Path | None = None, *, options: FaceStageOptions | None = None) -> FaceStage:
        """A stage over OpenCV's Haar cascade (no landmarks; needs ``opencv-python-headless<5`` or a cascade path)."""
        from edgeaff.runtime.faces.haar_detector import HaarFaceDetector

        return cls(HaarFaceDetector(cascade), options=options)

    def __enter__(self) -> FaceStage:
        self.detector.open()
        self._open = True
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        """Release the detector."""
        if self._open:
            self._open = False
            self.detector.close()

    def reset(self) -> None:
        """Forget the followed subject (e.g. at a cut or a new stream)."""
        self._follower.reset()

    @property
    def is_open(self) -> bool:
        """Whether the detector is open (inside the ``with`` block)."""
        return self._open

    def process(self, frame_bgr: np.ndarray, t_s: float | None = None) -> FaceResult:
        """The subject's face in one BGR uint8 frame.

        Raises:
            InvalidInputError: the frame is not (H, W, 3) uint8.
            RuntimeError: the stage is not open (use ``with``).
        """
        self.check_frame(frame_bgr)
        follower, every = self._follower, self.options.detect_every
        face = follower.track(frame_bgr, every)
        attempted = face is None
        if attempted:
            face = self._detect(frame_bgr)
        follower.settle(frame_bgr, face, attempted=attempted, detect_every=every)
        result = self.result(frame_bgr, face, detected=attempted and face is not None, t_s=t_s)
        self.counts["missing" if face is None else "detected" if result.detected else "tracked"] += 1
        return result

    def check_frame(self, frame_bgr: np.ndarray) -> None:
        """Refuse a frame the stage cannot take.

        Raises:
            InvalidInputError: the frame is not (H, W, 3) uint8.
            RuntimeError: the stage is not open (use ``with``).
        """
        if not self._open:
            raise RuntimeError("FaceStage: use it in a 'with' block (or call __enter__) before process()")
        if frame_bgr.ndim != 3 or frame_bgr.shape[2] != 3 or frame_bgr.dtype != np.uint8:
            raise InvalidInputError(
                f"a video frame must be (H, W, 3) uint8 BGR, got {frame_bgr.shape} {frame_bgr.dtype}"
            )

    def result(
        self, frame_bgr: np.ndarray, face: FaceDetection | None, *, detected: bool, t_s: float | None
    ) -> FaceResult:
        """The :class:`FaceResult` of ``face`` in ``frame_bgr`` (aligned crop), or the black crop for ``None``."""
        if face is None:
            return FaceResult(black_face(self.options.crop_size), False, False, None, None, 0.0, None, t_s)
        matrix = alignment_matrix(self._alignment_points(face))
        crop = model_crop(warp_aligned(frame_bgr, matrix), self.options.crop_size)
        return FaceResult(crop, True, detected, face.box.copy(), _copy(face.keypoints), face.score, matrix, t_s)

    def _alignment_points(self, face: FaceDetection) -> np.ndarray:
        if self._points is not None and face.keypoints is not None:
            return face.keypoints[self._points].astype(np.float64)
        return box_points(face.box)

    def _detect(self, frame_bgr: np.ndarray) -> FaceDetection | None:
        height, width = frame_bgr.shape[:2]
        last, opts = self._follower.last, self.options
        if last is not None and opts.refresh_in_region:
            same = self.search_near(frame_bgr, last)
            if same is not None:
                return same
        everywhere = self.detector.detect(frame_bgr)
        chosen = None
        if last is not None:
            chosen = match_subject(everywhere, last.box, min_iou=opts.same_subject_iou)
        if chosen is None:
            chosen = select_subject(everywhere, opts.select, (width, height))
        if chosen is None:
            return None
        return self.refine(frame_bgr, chosen) or chosen

    def search_near(self, frame_bgr: np.ndarray, face: FaceDetection) -> FaceDetection | None:
        """The detection in the region around ``face`` that overlaps its box most (the same face found again at a
        higher resolution), or ``None``."""
        return match_subject(self._detect_near(frame_bgr, face), face.box, min_iou=self.options.same_subject_iou)

    def refine(self, frame_bgr: np.ndarray, face: FaceDetection) -> FaceDetection | None:
        """A face found in the whole frame, detected again in the region around it (keypoints at a higher
        resolution); ``None`` when that closer look does not confirm it. Without ``refine_in_region``: ``face``."""
        if not self.options.refine_in_region:
            return face
        return self.search_near(frame_bgr, face)

    def _detect_near(self, frame_bgr: np.ndarray, face: FaceDetection) -> list[FaceDetection]:
        """Detections in the region around ``face``, at the stricter region score threshold."""
        cx, cy = face.center
        half = self.options.region_scale * max(face.width, face.height) / 2
        found = self.detector.detect(frame_bgr, roi=(cx - half, cy - half, cx + half, cy + half))
        return [d for d in found if d.score >= self.options.region_min_score]


def _copy(array: np.ndarray | None) -> np.ndarray | None:
    return None if array is None else array.copy()
