"""OpenCV Haar cascade face detector: the landmark-free alternative to the DNN detector.

It runs on a downscaled grey frame (``detect_width``) for speed. The cascade file comes from
``opencv-python-headless<5`` (``cv2.data.haarcascades``); OpenCV 5 wheels ship none, so a path can be given.
"""

from __future__ import annotations

from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np

from edgeaff.runtime.errors import EdgeaffError, InvalidInputError, require
from edgeaff.runtime.faces.detection import FaceDetection

DEFAULT_CASCADE = "haarcascade_frontalface_default.xml"


def find_cascade(path: str | Path | None = None) -> Path:
    """The cascade file: ``path`` if given, else OpenCV's bundled frontal-face cascade.

    Raises:
        InvalidInputError: ``path`` does not exist.
        EdgeaffError: no path given and this OpenCV ships no cascades (OpenCV ≥ 5).
    """
    if path is not None:
        file = Path(path)
        if not file.is_file():
            raise InvalidInputError(f"Haar cascade file not found: {file}")
        return file
    cv2: Any = require("cv2", extra="ort", purpose="the Haar face detector")
    folder = getattr(getattr(cv2, "data", None), "haarcascades", None)
    bundled = Path(folder) / DEFAULT_CASCADE if folder else None
    if bundled is None or not bundled.is_file() or not hasattr(cv2, "CascadeClassifier"):
        raise EdgeaffError(
            f"OpenCV {cv2.__version__} ships no Haar cascade ({DEFAULT_CASCADE}): OpenCV 5 removed them. "
            "Install 'opencv-python-headless<5', pass the cascade file's path, or use the default DNN detector"
        )
    return bundled


class HaarFaceDetector:
    """Detect frontal faces with a Haar cascade; detections have a box and no keypoints (score 1).

    Args:
        cascade: the cascade XML (default: OpenCV's ``haarcascade_frontalface_default.xml``).
        detect_width: frames wider than this are downscaled to it before detection.
        scale_factor: image pyramid step of ``detectMultiScale``.
        min_neighbors: overlapping hits needed to keep a face.
        min_size: smallest face side, as a fraction of the (downscaled) frame's shorter side.
    """

    has_keypoints = False

    def __init__(
        self,
        cascade: str | Path | None = None,
        *,
        detect_width: int = 320,
        scale_factor: float = 1.1,
        min_neighbors: int = 5,
        min_size: float = 0.1,
    ) -> None:
        if detect_width < 32 or scale_factor <= 1.0 or min_neighbors < 0 or not 0.0 < min_size < 1.0:
            raise InvalidInputError(
                "Haar options: detect_width >= 32, scale_factor > 1, min_neighbors >= 0, 0 < min_size < 1; got "
                f"{detect_width}, {scale_factor}, {min_neighbors}, {min_size}"
            )
        self.cascade_path = find_cascade(cascade)
        self.detect_width = detect_width
        self.scale_factor = scale_factor
        self.min_neighbors = min_neighbors
        self.min_size = min_size
        self._classifier: Any = None

    def open(self) -> None:
        """Load the cascade."""
        cv2: Any = require("cv2", extra="ort", purpose="the Haar face detector")
        classifier = cv2.CascadeClassifier()
        try:
            loaded = classifier.load(str(self.cascade_path))
        except (cv2.error, SystemError) as exc:  # OpenCV raises on malformed XML
            raise InvalidInputError(f"{self.cascade_path}: not a readable OpenCV cascade ({exc})") from None
        if not loaded or classifier.empty():
            raise InvalidInputError(f"{self.cascade_path}: not a readable OpenCV cascade")
        self._classifier = classifier

    def close(self) -> None:
        """Drop the cascade."""
        self._classifier = None

    def __enter__(self) -> HaarFaceDetector:
        self.open()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def detect(
        self, frame_bgr: np.ndarray, *, roi: tuple[float, float, float, float] | None = None
    ) -> list[FaceDetection]:
        """Faces in a BGR uint8 frame, or in ``roi`` (x0, y0, x1, y1; clipped to the frame), largest first."""
        cv2: Any = require("cv2", extra="ort", purpose="the Haar face detector")
        if self._classifier is None:
            raise RuntimeError("HaarFaceDetector: call open() or use it in a 'with' block before detect()")
        if frame_bgr.ndim != 3 or frame_bgr.shape[2] != 3 or frame_bgr.dtype != np.uint8:
            raise InvalidInputError(
                f"a video frame must be (H, W, 3) uint8 BGR, got {frame_bgr.shape} {frame_bgr.dtype}"
            )
        height, width = frame_bgr.shape[:2]
        x0, y0, x1, y1 = 0, 0, width, height
        if roi is not None:
            x0, y0 = max(int(roi[0]), 0), max(int(roi[1]), 0)
            x1, y1 = min(int(np.ceil(roi[2])), width), min(int(np.ceil(roi[3])), height)
            if x1 - x0 < 16 or y1 - y0 < 16:
                return []
        region = frame_bgr[y0:y1, x0:x1]
        scale = min(1.0, self.detect_width / region.shape[1])
        if scale < 1.0:
            size = (round(region.shape[1] * scale), round(region.shape[0] * scale))
            region = cv2.resize(region, size, interpolation=cv2.INTER_AREA)
        gray = cv2.equalizeHist(cv2.cvtColor(region, cv2.COLOR_BGR2GRAY))
        side = max(int(self.min_size * min(gray.shape)), 16)
        found = self._classifier.detectMultiScale(
            gray, scaleFactor=self.scale_factor, minNeighbors=self.min_neighbors, minSize=(side, side)
        )
        faces = []
        for fx, fy, fw, fh in np.asarray(found, dtype=np.float64).reshape(-1, 4):
            box = np.array([fx, fy, fx + fw, fy + fh]) / scale + np.array([x0, y0, x0, y0])
            faces.append(FaceDetection(box.astype(np.float32), 1.0, None))
        return sorted(faces, key=lambda d: -d.area)
