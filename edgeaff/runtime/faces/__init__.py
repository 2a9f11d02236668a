"""The face stage of the runtime: detect (BlazeFace DNN or Haar), track, align, crop to 48×48 RGB.

Typical use::

    from edgeaff.runtime.faces import FaceStage, FaceStageOptions

    with FaceStage.dnn("bundle/face_detector.onnx", options=FaceStageOptions(detect_every=10)) as faces:
        for t_s, frame_bgr in frames:
            result = faces.process(frame_bgr, t_s)   # result.crop: (48, 48, 3) uint8 RGB; result.found

Every face with a stable track id (:class:`FaceTracks`, ``docs/faces.md``)::

    with FaceStage.dnn("bundle/face_detector.onnx") as stage:
        tracks = FaceTracks(stage, TrackOptions(max_faces=4))
        for t_s, frame_bgr in frames:
            for tracked in tracks.process(frame_bgr, t_s).faces:   # tracked.track, tracked.face (a FaceResult)
                ...

Nothing here imports OpenCV or ONNX Runtime at import time.
"""

from edgeaff.runtime.faces.detection import FaceDetection, FaceSelect
from edgeaff.runtime.faces.detector_spec import FaceDetectorSpec
from edgeaff.runtime.faces.stage import DetectorKind, FaceResult, FaceStage, FaceStageOptions
from edgeaff.runtime.faces.tracking import TrackerOptions
from edgeaff.runtime.faces.tracks import MAX_FACES, FaceTracks, TrackedFace, TrackOptions, TracksResult

__all__ = [
    "MAX_FACES",
    "DetectorKind",
    "FaceDetection",
    "FaceDetectorSpec",
    "FaceResult",
    "FaceSelect",
    "FaceStage",
    "FaceStageOptions",
    "FaceTracks",
    "TrackOptions",
    "TrackedFace",
    "TrackerOptions",
    "TracksResult",
]
