"""Shared fixtures: the shipped BlazeFace model converted once per session."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from edgeaff.export.face_detector import FaceDetectorExport, convert_face_detector
from edgeaff.runtime.faces.dnn_detector import DnnFaceDetector


@pytest.fixture(scope="session")
def converted_detector(tmp_path_factory: pytest.TempPathFactory) -> FaceDetectorExport:
    """``face_detector.onnx`` + ``.json`` converted from the short-range model that ships with edgeaff."""
    return convert_face_detector(None, tmp_path_factory.mktemp("detector") / "face_detector.onnx")


@pytest.fixture(scope="session")
def detector_onnx(converted_detector: FaceDetectorExport) -> Path:
    return converted_detector.onnx_path


@pytest.fixture
def detector(detector_onnx: Path) -> Iterator[DnnFaceDetector]:
    with DnnFaceDetector.from_files(detector_onnx) as opened:
        yield opened
