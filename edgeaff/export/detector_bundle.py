"""Put the face detector into a bundle: ``face_detector.onnx`` + ``face_detector.json`` and a ``graphs`` entry.

The runtime's face stage (``edgeaff.runtime.faces``) needs the converted BlazeFace graph on the device, where no
converter (and no ``tflite`` package) is installed, so the exporter converts it once and ships it with the models.
The manifest entry has role ``face_detector``, a hashed FP32 file like every graph, and the detector's
:class:`~edgeaff.runtime.faces.detector_spec.FaceDetectorSpec` under ``detector_spec`` (the same content as the
JSON file beside the graph), so the runtime needs no second file. No torch.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from edgeaff.export.bundle import graph_entry
from edgeaff.export.face_detector import convert_face_detector
from edgeaff.runtime.artifacts.manifest import DetectorSource, FileEntry, GraphEntry, TensorEntry
from edgeaff.runtime.files import sha256_file

FACE_DETECTOR_FILE = "face_detector.onnx"
FACE_DETECTOR_SPEC_FILE = "face_detector.json"


def add_face_detector(directory: Path, *, source: str | Path | None = None) -> GraphEntry:
    """Convert a BlazeFace ``.tflite`` into ``directory`` and return the manifest's ``graphs.face_detector`` entry.

    Args:
        directory: the bundle's staging directory.
        source: a BlazeFace ``.tflite`` file; ``None`` for the short-range model shipped with edgeaff.

    Raises:
        MissingDependencyError: ``onnx`` or ``tflite`` is missing (``pip install 'edgeaff[export]'``).
        InvalidInputError: the source is not a supported BlazeFace model.
    """
    import onnx

    converted = convert_face_detector(
        source, directory / FACE_DETECTOR_FILE, spec_output=directory / FACE_DETECTOR_SPEC_FILE
    )
    spec = converted.spec
    anchors = spec.num_anchors
    opset = max(
        (entry.version for entry in onnx.load(str(converted.onnx_path)).opset_import if not entry.domain), default=0
    )
    entry = graph_entry(
        directory,
        description="BGR frame letterboxed to the detector input, RGB float32 in [-1, 1] -> raw box/keypoint "
        "regressions and score logits per anchor (decoded by edgeaff.runtime.faces)",
        inputs=[TensorEntry(spec.input_name, (1, spec.input_height, spec.input_width, 3), "float32")],
        outputs=[
            TensorEntry(spec.boxes_output, (1, anchors, 4 + 2 * len(spec.keypoints)), "float32"),
            TensorEntry(spec.scores_output, (1, anchors, 1), "float32"),
        ],
        files={"fp32": FACE_DETECTOR_FILE},
        opset=opset,
    )
    return dataclasses.replace(
        entry,
        detector_spec=spec.to_dict(),
        spec_file=FileEntry(file=FACE_DETECTOR_SPEC_FILE, sha256=sha256_file(converted.spec_path)),
        source=DetectorSource(origin=converted.origin, sha256=converted.source_sha256),
    )
