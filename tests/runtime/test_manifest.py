"""The typed manifest schema: one description for the exporter (write) and the runtime (read).

A manifest written by the previous exporter (schema version 1, ``tests/data/manifest_v1.json``) reads into the
typed objects and writes back byte-for-byte the same JSON; unknown, missing and mistyped keys are refused with the
key's path; cross-field rules (model indices, precisions, tensor shapes, the stream state) are enforced; what each
version changed (2: sizes and the detector spec required; 3: INT8 forms, the grouped state layout) is checked.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from edgeaff.runtime.artifacts.manifest import (
    LEGACY_STREAM_LAYOUT,
    MANIFEST_SCHEMA_VERSION,
    STREAM_LAYOUT,
    Dimension,
    Manifest,
    ModelKind,
    Precision,
)
from edgeaff.runtime.choices import Choice
from edgeaff.runtime.errors import InvalidInputError
from edgeaff.runtime.spec import AudioNormalization, ScalarStats

V1 = Path(__file__).resolve().parents[1] / "data" / "manifest_v1.json"


@pytest.fixture
def v1() -> dict[str, Any]:
    return json.loads(V1.read_text())


def _v2(document: dict[str, Any]) -> dict[str, Any]:
    return {**copy.deepcopy(document), "schema_version": 2}


def _v3(document: dict[str, Any]) -> dict[str, Any]:
    """The version-1 manifest as version 3 writes it: the grouped layout, and int8_avx2 beside every int8."""
    upgraded = {**copy.deepcopy(document), "schema_version": MANIFEST_SCHEMA_VERSION}
    upgraded["streaming"]["layout"] = STREAM_LAYOUT
    for graph in upgraded["graphs"].values():
        variants = graph["variants"]
        if "int8" in variants:
            variants["int8_avx2"] = {**variants["int8"], "file": variants["int8"]["file"].replace("int8", "int8-avx2")}
    return upgraded


def _refused(document: object) -> str:
    with pytest.raises(InvalidInputError) as info:
        Manifest.from_dict(document)
    return str(info.value)


def test_a_version_1_manifest_reads_into_typed_entries_and_writes_back_identically(v1: dict[str, Any]) -> None:
    manifest = Manifest.from_dict(v1)
    assert manifest.schema_version == 1
    assert [(m.fold, m.dimension, m.kind) for m in manifest.models] == [
        (0, Dimension.VALENCE, ModelKind.MULTIMODAL),
        (1, Dimension.VALENCE, ModelKind.MULTIMODAL),
        (0, Dimension.AROUSAL, ModelKind.UNIMODAL),
    ]
    assert [m.name for m in manifest.models] == [
        "fold0_valence_multimodal",
        "fold1_valence_multimodal",
        "fold0_arousal_unimodal",
    ]
    assert manifest.models[0].normalization == AudioNormalization(
        mfcc=ScalarStats(**v1["models"][0]["normalization"]["mfcc"]),
        vggish=ScalarStats(**v1["models"][0]["normalization"]["vggish"]),
    )
    assert manifest.models[2].normalization is None and manifest.models[2].fusion is None
    assert manifest.precisions == (Precision.FP32, Precision.FP16, Precision.INT8)
    assert manifest.visual.embedding_dim == v1["visual"]["embedding_dim"]
    assert manifest.streaming.state_size == v1["streaming"]["state_size"]
    assert sum(s.size for s in manifest.streaming.segments) == manifest.streaming.state_size
    assert [role for role, _ in manifest.graphs.items()] == list(v1["graphs"])
    detector = manifest.graphs.face_detector
    assert detector is not None and detector.detector_spec == v1["graphs"]["face_detector"]["detector_spec"]
    assert set(manifest.graphs.visual.variants) == {"fp32", "fp16", "int8", "int8_trt"}
    # Same keys, same order, same values: the schema describes what the exporter has been writing.
    assert json.dumps(manifest.to_dict()) == json.dumps(v1)


def test_version_2_keeps_the_keys_and_requires_sizes_and_the_detector_spec(v1: dict[str, Any]) -> None:
    document = _v2(v1)
    assert Manifest.from_dict(document).to_dict() == document
    del document["graphs"]["temporal"]["variants"]["fp16"]["bytes"]
    assert "graphs.temporal.variants.fp16: missing key 'bytes'" in _refused(document)
    legacy = copy.deepcopy(v1)
    del legacy["graphs"]["temporal"]["variants"]["fp16"]["bytes"]
    del legacy["graphs"]["face_detector"]["detector_spec"]
    assert Manifest.from_dict(legacy).graphs.face_detector.detector_spec is None  # version 1 allowed both
    document = _v2(v1)
    del document["graphs"]["face_detector"]["detector_spec"]
    assert "graphs.face_detector: missing key 'detector_spec'" in _refused(document)


def test_version_3_pairs_the_cpu_int8_forms_and_states_the_grouped_layout(v1: dict[str, Any]) -> None:
    document = _v3(v1)
    manifest = Manifest.from_dict(document)
    assert manifest.to_dict() == document
    assert set(manifest.graphs.visual.variants) == {"fp32", "fp16", "int8", "int8_avx2", "int8_trt"}
    assert manifest.precisions == (Precision.FP32, Precision.FP16, Precision.INT8)  # forms are not precisions
    assert manifest.streaming.layout == STREAM_LAYOUT != LEGACY_STREAM_LAYOUT
    full_only = copy.deepcopy(document)  # VGGish's case: no 7-bit form
    del full_only["graphs"]["visual"]["variants"]["int8_avx2"]
    assert set(Manifest.from_dict(full_only).graphs.visual.variants) == {"fp32", "fp16", "int8", "int8_trt"}
    lone = copy.deepcopy(document)
    del lone["graphs"]["visual"]["variants"]["int8"]
    lone["precisions"] = ["fp32", "fp16"]
    assert "graphs.visual: int8_avx2 (7-bit weights, for CPUs without VNNI) comes with int8" in _refused(lone)
    old_layout = copy.deepcopy(document)
    old_layout["streaming"]["layout"] = LEGACY_STREAM_LAYOUT
    assert "streaming.layout must be 'each segment is (steps, channels)" in _refused(old_layout)
    unknown_layout = copy.deepcopy(document)
    unknown_layout["streaming"]["layout"] = "columns first"
    assert "unknown state layout 'columns first'" in _refused(unknown_layout)
    # Versions 1 and 2 keep their own layout and have no int8_avx2: such a manifest is refused, not misread.
    early = _v2(v1)
    early["graphs"]["visual"]["variants"]["int8_avx2"] = document["graphs"]["visual"]["variants"]["int8_avx2"]
    assert "int8_avx2 exists from schema version 3" in _refused(early)
    early = _v2(v1)
    early["streaming"]["layout"] = STREAM_LAYOUT
    assert "streaming.layout must be 'each segment is (channels, steps)" in _refused(early)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d.update(colour="red"), "manifest: unknown keys ['colour']"),
        (lambda d: d["models"][1].update(kind="bimodal"), "manifest.models[1].kind: 'bimodal' is not one of"),
        (lambda d: d["models"][0].update(dimension="dominance"), "manifest.models[0].dimension: 'dominance'"),
        (lambda d: d["streaming"].pop("state_size"), "manifest.streaming: missing key 'state_size'"),
        (lambda d: d["streaming"].update(state_size="big"), "manifest.streaming.state_size: expected an integer"),
        (lambda d: d["streaming"].update(state_size=True), "manifest.streaming.state_size: expected an integer"),
        (lambda d: d["visual"].update(shared_trunk="yes"), "manifest.visual.shared_trunk: expected true or false"),
        (lambda d: d["graphs"].update(mystery={}), "manifest.graphs: unknown keys ['mystery']"),
        (lambda d: d["graphs"].pop("temporal_stream"), "manifest.graphs: missing key 'temporal_stream'"),
        (
            lambda d: d["graphs"]["visual"]["variants"]["fp32"].update(sha256="abc"),
            "manifest.graphs.visual.variants.fp32: 'visual.onnx' has no valid sha256",
        ),
        (
            lambda d: d["graphs"]["visual"]["variants"].update(fp8=d["graphs"]["visual"]["variants"]["fp32"]),
            "manifest.graphs.visual: unknown precision variants ['fp8']",
        ),
        (lambda d: d["graphs"]["visual"]["inputs"][0].update(dtype="uint9"), "unknown dtype 'uint9'"),
        (lambda d: d["models"][2].update(index=5), "models[2].index is 5"),
        (lambda d: d.update(precisions=["fp32", "fp16"]), "differ from the graphs' variants"),
        (lambda d: d.update(precisions=["fp16", "fp32", "int8"]), "precisions must start with fp32"),
        (lambda d: d["visual"].update(embedding_dim=65), "graphs.visual.embeddings has shape"),
        (lambda d: d["streaming"].update(state_size=12), "the segments cover"),
        (lambda d: d["streaming"]["segments"][3].update(offset=1), "segments[3] starts at 1"),
        (lambda d: d["models"][2].update(fusion="paper"), "a unimodal model has no fusion variant"),
        (lambda d: d["models"][0].update(normalization=None), "a multimodal model needs"),
        (lambda d: d.update(vggish=None), "present exactly when a model is multimodal"),
        (lambda d: d["models"][1].update(fold=0), "fold0_valence_multimodal appears twice"),
    ],
)
def test_the_reader_names_the_key_that_is_wrong(v1: dict[str, Any], change: Any, message: str) -> None:
    document = _v3(v1)
    change(document)
    refused = _refused(document)
    assert message in refused and "\n" not in refused


def test_anything_but_an_object_is_refused() -> None:
    assert _refused([1, 2]) == "manifest: expected a JSON object, got list [1, 2]"


def test_choices_parse_print_and_serialise_as_their_values() -> None:
    assert Precision.parse("FP16") is Precision.FP16 and Precision.FP16 == "fp16"
    assert f"{Precision.INT8}" == "int8" and str(ModelKind.UNIMODAL) == "unimodal"
    assert json.dumps({"p": Precision.FP32}) == '{"p": "fp32"}'
    assert {"fp32": 1}[Precision.FP32] == 1  # dictionaries keyed by the bare strings still find members
    with pytest.raises(InvalidInputError, match="unknown precision 'fp8'; choose one of fp32, fp16, int8"):
        Precision.parse("fp8")
    with pytest.raises(InvalidInputError, match="unknown dimension 'joy'; choose one of valence, arousal"):
        Dimension.parse("joy")
    assert issubclass(ModelKind, Choice) and ModelKind.values() == ("multimodal", "unimodal")
