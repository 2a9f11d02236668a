"""The TFLite → ONNX converter computes what the TFLite interpreter computes.

The independent execution is Google's own TFLite interpreter (``ai-edge-litert``, LiteRT), run on the same
``.tflite`` file; ONNX Runtime runs the converted graph. Both use float32 arithmetic on the same dequantised
weights, so the only differences are summation order (and LiteRT's XNNPACK kernels).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from face_scenes import scene
from tflite_builder import (
    VALID,
    TfliteModelBuilder,
    activation_options,
    concat_options,
    conv2d_options,
    depthwise_options,
    nearest_options,
    pool_options,
    reshape_options,
    resize_options,
)

from edgeaff.export.face_detector import DEFAULT_SOURCE, METADATA_KEY, convert_face_detector
from edgeaff.export.tflite_reader import read_tflite
from edgeaff.export.tflite_to_onnx import tflite_to_onnx
from edgeaff.runtime.errors import InvalidInputError
from edgeaff.runtime.faces.detector_spec import FaceDetectorSpec
from edgeaff.runtime.faces.dnn_detector import DnnFaceDetector
from edgeaff.runtime.files import sha256_file

litert = pytest.importorskip("ai_edge_litert.interpreter", reason="the parity check needs ai-edge-litert (dev extra)")


def _litert(path: Path, feed: np.ndarray) -> dict[str, np.ndarray]:
    interpreter = litert.Interpreter(model_path=str(path), num_threads=1)
    interpreter.allocate_tensors()
    interpreter.set_tensor(interpreter.get_input_details()[0]["index"], feed)
    interpreter.invoke()
    return {d["name"]: interpreter.get_tensor(d["index"]).copy() for d in interpreter.get_output_details()}


def _ort(path: Path, feed: np.ndarray) -> dict[str, np.ndarray]:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    return dict(zip(names, session.run(names, {session.get_inputs()[0].name: feed}), strict=True))


@pytest.fixture(scope="module")
def converted(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    return convert_face_detector(None, tmp_path_factory.mktemp("fd") / "face_detector.onnx")


def test_converted_blazeface_matches_the_tflite_interpreter_on_real_images(converted) -> None:  # type: ignore[no-untyped-def]
    """Max |ONNX - LiteRT| over 6 real inputs: tolerance 2e-3 (measured 1.2e-4 on raw box regressions of
    magnitude ~100, 4e-4 on score logits). The decoded faces agree to 1e-3 px and 1e-4 in score."""
    spec = converted.spec
    with DnnFaceDetector.from_files(converted.onnx_path) as detector:
        feeds = []
        for centre, scale, angle in [((320, 240), 1.0, 0), ((200, 300), 1.4, 20), ((480, 200), 0.8, 0)]:
            frame, _ = scene(centre, scale, angle)
            feeds.append(detector.preprocess(frame, (0, 0, 640, 480))[0])
            cx, cy = centre
            feeds.append(detector.preprocess(frame, (cx - 150, cy - 150, cx + 150, cy + 150))[0])
        worst = {spec.boxes_output: 0.0, spec.scores_output: 0.0}
        for feed in feeds:
            expected = _litert(DEFAULT_SOURCE, feed)
            got = _ort(converted.onnx_path, feed)
            for name, so_far in worst.items():
                assert got[name].shape == expected[name].shape
                worst[name] = max(so_far, float(np.abs(got[name] - expected[name]).max()))
            ours = detector.decode(got[spec.boxes_output], got[spec.scores_output])
            theirs = detector.decode(expected[spec.boxes_output], expected[spec.scores_output])
            assert len(ours) == len(theirs) >= 1
            for (box_a, kp_a, score_a), (box_b, kp_b, score_b) in zip(ours, theirs, strict=True):
                np.testing.assert_allclose(box_a * 128, box_b * 128, atol=1e-3)
                np.testing.assert_allclose(kp_a * 128, kp_b * 128, atol=1e-3)
                assert abs(score_a - score_b) < 1e-4
    assert worst[spec.boxes_output] < 2e-3 and worst[spec.scores_output] < 2e-3, worst


def test_spec_and_provenance_are_written(converted) -> None:  # type: ignore[no-untyped-def]
    spec = FaceDetectorSpec.load(converted.spec_path)
    assert spec == converted.spec
    assert (spec.input_name, spec.input_height, spec.input_width, spec.num_anchors) == ("input", 128, 128, 896)
    assert spec.source_sha256 == sha256_file(DEFAULT_SOURCE)
    assert spec.source_license is not None and "Apache-2.0" in spec.source_license
    assert "mediapipe 0.10.14" in converted.origin
    model = onnx.load(converted.onnx_path)
    metadata = {p.key: p.value for p in model.metadata_props}
    assert FaceDetectorSpec.from_dict(json.loads(metadata[METADATA_KEY])) == spec
    assert model.opset_import[0].version == 17 and model.ir_version == 8
    # no TFLite-only op or float16 weight survives: plain float32 ONNX
    assert {init.data_type for init in model.graph.initializer} <= {onnx.TensorProto.FLOAT, onnx.TensorProto.INT64}


def test_unusable_sources_are_refused(tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError, match="not found"):
        convert_face_detector(tmp_path / "missing.tflite", tmp_path / "o.onnx")
    junk = tmp_path / "junk.tflite"
    junk.write_bytes(b"\x00" * 64)
    with pytest.raises(InvalidInputError, match="TFL3"):
        convert_face_detector(junk, tmp_path / "o.onnx")
    tiny = _small_model(tmp_path / "tiny.tflite")
    with pytest.raises(InvalidInputError, match="not a supported BlazeFace model"):
        convert_face_detector(tiny, tmp_path / "o.onnx")
    assert not (tmp_path / "o.onnx").exists()


def _small_model(path: Path) -> Path:
    """A graph using every operator and option the converter supports beyond BlazeFace's own, odd sizes for
    asymmetric SAME padding, float16 and per-channel int8 weights."""
    rng = np.random.default_rng(0)
    m = TfliteModelBuilder()
    x = m.input("image", (1, 9, 11, 3))
    w16 = m.const("w16", (rng.normal(0, 0.3, (4, 3, 3, 3))).astype(np.float16))
    w = m.op("DEQUANTIZE", [w16], (4, 3, 3, 3))
    conv = m.op(
        "CONV_2D",
        [x, w, m.const("b", rng.normal(0, 0.1, 4).astype(np.float32))],
        (1, 5, 6, 4),
        conv2d_options(stride=2, activation="relu6"),
    )
    scales = rng.uniform(0.002, 0.01, 8).astype(np.float32)
    q = m.const("dw_q", rng.integers(-127, 128, (1, 3, 3, 8)).astype(np.int8), scale=scales, axis=3)
    dw_w = m.op("DEQUANTIZE", [q], (1, 3, 3, 8))
    dw = m.op(
        "DEPTHWISE_CONV_2D",
        [conv, dw_w, m.const("dw_b", np.zeros(8, np.float32))],
        (1, 5, 6, 8),
        depthwise_options(multiplier=2, dilation=2),
    )
    prelu = m.op("PRELU", [dw, m.const("alpha", rng.uniform(0.05, 0.3, (1, 1, 8)).astype(np.float32))], (1, 5, 6, 8))
    pad = m.op("PAD", [prelu, m.const("paddings", np.array([[0, 0], [1, 0], [0, 1], [0, 0]], np.int32))], (1, 6, 7, 8))
    maxp = m.op("MAX_POOL_2D", [pad], (1, 3, 4, 8), pool_options(2, 2))
    avgp = m.op("AVERAGE_POOL_2D", [pad], (1, 3, 4, 8), pool_options(3, 2))
    added = m.op("ADD", [maxp, avgp], (1, 3, 4, 8), activation_options("ADD", "relu"))
    scaled = m.op(
        "MUL",
        [added, m.const("gain", rng.uniform(0.5, 2, 8).astype(np.float32))],
        (1, 3, 4, 8),
        activation_options("MUL"),
    )
    shifted = m.op("SUB", [scaled, m.const("shift", np.float32([0.3]))], (1, 3, 4, 8), activation_options("SUB"))
    up = m.op(
        "RESIZE_BILINEAR",
        [shifted, m.const("size", np.int32([6, 8]))],
        (1, 6, 8, 8),
        resize_options(half_pixel_centers=True),
    )
    up2 = m.op(
        "RESIZE_BILINEAR",
        [shifted, m.const("size2", np.int32([6, 8]))],
        (1, 6, 8, 8),
        resize_options(align_corners=True),
    )
    gate = m.op("LOGISTIC", [up2], (1, 6, 8, 8))
    joined = m.op("CONCATENATION", [up, gate], (1, 6, 8, 16), concat_options(-1))
    valid = m.op(
        "CONV_2D",
        [
            joined,
            m.const("w2", rng.normal(0, 0.2, (5, 2, 2, 16)).astype(np.float32)),
            m.const("b2", np.zeros(5, np.float32)),
        ],
        (1, 5, 7, 5),
        conv2d_options(padding=VALID),
    )
    squashed = m.op("TANH", [valid], (1, 5, 7, 5))
    flat_a = m.op("RESHAPE", [squashed], (1, 35, 5), reshape_options((1, 35, 5)))
    flat_b = m.op("RESHAPE", [m.op("RELU", [conv], (1, 5, 6, 4))], (1, 30, 4), reshape_options((1, 30, 4)))
    m.output(m.op("CONCATENATION", [flat_a, flat_a], (1, 70, 5), concat_options(1), name="rows"))
    m.output(m.op("RELU6", [flat_b], (1, 30, 4), name="features"))
    nearest = [
        m.op("RESIZE_NEAREST_NEIGHBOR", [shifted, m.const(f"size_n{i}", np.int32([7, 9]))], (1, 7, 9, 8), options)
        for i, options in enumerate(
            [nearest_options(), nearest_options(half_pixel_centers=True), nearest_options(align_corners=True)]
        )
    ]
    stacked = m.op("CONCATENATION", nearest, (1, 7, 9, 24), concat_options(3))
    m.output(m.op("RELU_N1_TO_1", [stacked], (1, 7, 9, 24), name="nearest"))
    return m.save(path)


def test_every_supported_operator_matches_the_tflite_interpreter(tmp_path: Path) -> None:
    """Tolerance 1e-5 (outputs of magnitude ~1-2; measured 4e-7)."""
    source = _small_model(tmp_path / "small.tflite")
    model = tflite_to_onnx(read_tflite(source))
    onnx.save(model, tmp_path / "small.onnx")
    rng = np.random.default_rng(1)
    for _ in range(3):
        feed = rng.uniform(-1, 1, (1, 9, 11, 3)).astype(np.float32)
        expected, got = _litert(source, feed), _ort(tmp_path / "small.onnx", feed)
        assert set(got) == set(expected) == {"rows", "features", "nearest"}
        for name in got:
            np.testing.assert_allclose(got[name], expected[name], atol=1e-5, rtol=0)


def test_unsupported_operators_are_named(tmp_path: Path) -> None:
    m = TfliteModelBuilder()
    x = m.input("x", (1, 4, 4, 2))
    m.output(m.op("EXP", [x], (1, 4, 4, 2)))
    with pytest.raises(InvalidInputError, match="operator EXP is not supported"):
        tflite_to_onnx(read_tflite(m.save(tmp_path / "exp.tflite")))
