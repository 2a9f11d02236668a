"""Phone videos stored sideways with a display matrix are decoded upright (issue 16, defect 7)."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest
from face_scenes import INTEROCULAR, scene

from edgeaff.runtime.faces.dnn_detector import DnnFaceDetector
from edgeaff.runtime.io.open import open_source
from edgeaff.runtime.io.sources import SourceInfo, VideoFrame

LOSSLESS = "libx264" in av.codecs_available


def write_video(path: Path, stored: np.ndarray, *, rotation: int, hflip: bool = False, frames: int = 3) -> Path:
    """A video whose stored frames are ``stored`` (BGR) and whose display matrix asks for a counter-clockwise turn
    of ``rotation`` degrees, then a mirror if ``hflip`` (PyAV's ``set_display_rotation``)."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264" if LOSSLESS else "mpeg4", rate=25)
        stream.width, stream.height = stored.shape[1], stored.shape[0]
        stream.pix_fmt = "yuv444p" if LOSSLESS else "yuv420p"
        stream.options = {"crf": "0"} if LOSSLESS else {"qscale": "1"}
        stream.set_display_rotation(rotation, hflip=hflip)
        for _ in range(frames):
            for packet in stream.encode(av.VideoFrame.from_ndarray(stored, format="bgr24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def sideways(upright: np.ndarray, rotation: int, hflip: bool) -> np.ndarray:
    """What a camera stores for ``upright`` when it asks the player to turn by ``rotation`` (then mirror).

    Independent of the decoder: the displayed picture is mirror(rot90(stored, rotation / 90)), so the stored one is
    the inverse, built with numpy's rot90 (counter-clockwise on an image whose first row is the top).
    """
    picture = upright[:, ::-1] if hflip else upright
    return np.ascontiguousarray(np.rot90(picture, k=-(rotation // 90)))


def corners() -> np.ndarray:
    picture = np.full((96, 160, 3), 128, np.uint8)
    picture[:24, :24] = (255, 0, 0)
    picture[:24, -24:] = (0, 255, 0)
    picture[-24:, :24] = (0, 0, 255)
    return picture


def first_frame(path: Path) -> tuple[VideoFrame, SourceInfo]:
    with open_source(path) as source:
        frame = next(item for item in source if isinstance(item, VideoFrame))
        return frame, source.info


@pytest.mark.parametrize(
    ("rotation", "hflip", "expected"),
    [(90, False, 90), (-90, False, 270), (180, False, 180), (0, True, 0), (90, True, 90), (270, True, 270)],
)
def test_frames_come_out_upright(tmp_path: Path, rotation: int, hflip: bool, expected: int) -> None:
    upright = corners()
    path = write_video(tmp_path / "phone.mp4", sideways(upright, rotation, hflip), rotation=rotation, hflip=hflip)
    frame, info = first_frame(path)
    assert frame.image.shape == upright.shape  # width and height follow the turn
    assert np.abs(frame.image.astype(int) - upright).mean() < (1 if LOSSLESS else 6)
    assert (info.rotation, info.mirrored) == (expected, hflip)
    assert (info.width, info.height) == (160, 96)


def test_a_video_without_a_display_matrix_is_left_alone(tmp_path: Path) -> None:
    upright = corners()
    path = write_video(tmp_path / "plain.mp4", upright, rotation=0)
    frame, info = first_frame(path)
    assert np.abs(frame.image.astype(int) - upright).mean() < (1 if LOSSLESS else 6)
    assert (info.rotation, info.mirrored) == (0, False)


def test_the_face_of_a_sideways_phone_video_is_found_upright(tmp_path: Path, detector: DnnFaceDetector) -> None:
    # A portrait picture (a face upright in it) stored as a landscape video turned a quarter clockwise, as phones do.
    upright, truth = scene((240, 300), 1.0, 0.0, height=640, width=480)
    path = write_video(tmp_path / "portrait.mp4", sideways(upright, -90, False), rotation=-90)
    frame, info = first_frame(path)
    assert frame.image.shape[:2] == (640, 480) and info.rotation == 270
    faces = detector.detect(frame.image)
    assert len(faces) == 1
    # Found on the upright picture: the keypoints are where they were placed (eyes above the mouth).
    assert np.linalg.norm(faces[0].keypoints[:4] - truth, axis=1).max() < 0.6 * INTEROCULAR
