"""The torch-free bundle reader: typed access to a valid bundle, and a one-line refusal of damaged, escaping,
foreign or outdated ones."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from onnx_bundle import TinyBundle, build_bundle

from edgeaff.runtime.artifacts.bundle import BundleError, load_bundle, zero_stream_state
from edgeaff.runtime.artifacts.manifest import LEGACY_STREAM_LAYOUT, Dimension, ModelKind, Precision
from edgeaff.runtime.errors import InvalidInputError


@pytest.fixture
def built(tmp_path: Path) -> TinyBundle:
    return build_bundle(tmp_path, models=[(0, "valence"), (1, "valence"), (0, "arousal", "unimodal")])


def _manifest(root: Path) -> dict[str, Any]:
    return json.loads((root / "manifest.json").read_text())


def _write(root: Path, manifest: dict[str, Any]) -> None:
    (root / "manifest.json").write_text(json.dumps(manifest))


def _refused(root: Path) -> str:
    with pytest.raises(BundleError) as info:
        load_bundle(root)
    message = str(info.value)
    assert "\n" not in message
    return message


def test_a_valid_bundle_loads_with_typed_entries(built: TinyBundle) -> None:
    bundle = load_bundle(built.path)
    assert bundle.manifest == built.manifest
    assert set(bundle.graphs) == {"visual", "vggish", "temporal", "temporal_stream"}
    assert [(m.fold, m.dimension, m.kind) for m in bundle.models] == [
        (0, Dimension.VALENCE, ModelKind.MULTIMODAL),
        (1, Dimension.VALENCE, ModelKind.MULTIMODAL),
        (0, Dimension.AROUSAL, ModelKind.UNIMODAL),
    ]
    assert bundle.dimensions == (Dimension.VALENCE, Dimension.AROUSAL)
    assert bundle.multimodal and bundle.embedding_dim == 8 and bundle.shared_trunk is False
    assert bundle.precisions == (Precision.FP32,)
    assert bundle.face_detector is None
    assert bundle.graphs["visual"].file("int8") == built.path / "visual.onnx"  # falls back to fp32
    assert zero_stream_state(bundle, batch=2).shape == (2, bundle.streaming.state_size)
    assert bundle.streaming.state_size == 3 * (8 + 128 + 39) * (built.kernel - 1)
    visual = bundle.graphs["visual"]
    assert [(t.name, t.shape, t.dtype) for t in visual.inputs] == [("frames", ("frames", 48, 48, 3), np.uint8)]
    with pytest.raises(InvalidInputError, match="unknown precision 'fp8'"):
        visual.file("fp8")


def test_refuses_a_modified_file(built: TinyBundle) -> None:
    (built.path / "temporal.onnx").write_bytes(b"tampered")
    assert "does not match its sha256" in _refused(built.path)


@pytest.mark.parametrize("bad", ["../outside.onnx", "/etc/passwd", "sub/../../outside.onnx", "C:/x.onnx"])
def test_refuses_paths_outside_the_bundle(built: TinyBundle, bad: str) -> None:
    manifest = _manifest(built.path)
    (built.path.parent / "outside.onnx").write_bytes(b"x")
    manifest["graphs"]["visual"]["variants"]["fp32"]["file"] = bad
    _write(built.path, manifest)
    message = _refused(built.path)
    assert "outside the bundle" in message or "absolute path" in message


def test_refuses_a_symlink_that_escapes(built: TinyBundle) -> None:
    manifest = _manifest(built.path)
    outside = built.path.parent / "elsewhere.onnx"
    outside.write_bytes((built.path / "visual.onnx").read_bytes())
    os.symlink(outside, built.path / "link.onnx")
    manifest["graphs"]["visual"]["variants"]["fp32"]["file"] = "link.onnx"
    _write(built.path, manifest)
    assert "link that points outside" in _refused(built.path)


def test_refuses_unknown_schema_versions_saying_what_to_do(built: TinyBundle) -> None:
    manifest = _manifest(built.path)
    _write(built.path, {**manifest, "schema_version": 99})
    message = _refused(built.path)
    assert "schema version 99 is not supported" in message and "upgrade edgeaff or re-export" in message
    _write(built.path, {**manifest, "schema_version": 0})
    assert "schema version 0 is not supported" in (message := _refused(built.path)) and "re-export" in message


def test_refuses_a_manifest_the_schema_refuses_naming_the_key(built: TinyBundle) -> None:
    manifest = _manifest(built.path)
    manifest["models"][1]["kind"] = "bimodal"
    _write(built.path, manifest)
    message = _refused(built.path)
    assert "manifest.models[1].kind: 'bimodal' is not one of multimodal, unimodal" in message
    assert message.endswith("re-export the bundle")


def test_reads_a_version_1_manifest(built: TinyBundle) -> None:
    """The first exporter's form: no ``bytes`` needed, the (channels, steps) state layout; the same keys otherwise."""
    manifest = _manifest(built.path)
    for graph in manifest["graphs"].values():
        for variant in graph["variants"].values():
            del variant["bytes"]
    streaming = {**manifest["streaming"], "layout": LEGACY_STREAM_LAYOUT}
    _write(built.path, {**manifest, "schema_version": 1, "streaming": streaming})
    bundle = load_bundle(built.path)
    assert bundle.manifest.schema_version == 1 and bundle.models == built.models
    _write(built.path, manifest)
    assert "missing key 'bytes'" in _refused(built.path)


def test_refuses_a_missing_graph_file(built: TinyBundle) -> None:
    (built.path / "temporal_stream.onnx").unlink()
    assert "'temporal_stream.onnx' is missing" in _refused(built.path)


def test_refuses_a_directory_without_manifest(built: TinyBundle) -> None:
    (built.path / "manifest.json").unlink()
    assert "not a complete bundle" in _refused(built.path)


def test_refuses_a_foreign_manifest_and_unknown_roles(built: TinyBundle) -> None:
    manifest = _manifest(built.path)
    _write(built.path, {**manifest, "format": "something-else"})
    assert "not an edgeaff bundle manifest" in _refused(built.path)
    manifest["graphs"]["mystery"] = manifest["graphs"]["visual"]
    _write(built.path, manifest)
    assert "manifest.graphs: unknown keys ['mystery']" in _refused(built.path)
