"""The torch-free bundle reader refuses damaged, escaping or foreign bundles with a one-line message."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from edgeaff.runtime.artifacts.bundle import BundleError, load_bundle, zero_stream_state
from edgeaff.runtime.files import sha256_file
from edgeaff.runtime.spec import FeatureSpec

GRAPHS = ("visual", "temporal", "temporal_stream")


def _write(root: Path, manifest: dict) -> None:
    (root / "manifest.json").write_text(json.dumps(manifest))


def make_bundle(root: Path) -> dict:
    """A structurally valid bundle whose 'graphs' are small files (the reader never parses them)."""
    root.mkdir()
    graphs = {}
    for name in GRAPHS:
        (root / f"{name}.onnx").write_bytes(name.encode() * 10)
        graphs[name] = {
            "inputs": [{"name": "x", "shape": ["batch", 3], "dtype": "float32"}],
            "outputs": [{"name": "y", "shape": ["batch"], "dtype": "float32"}],
            "variants": {"fp32": {"file": f"{name}.onnx", "sha256": sha256_file(root / f"{name}.onnx")}},
        }
    manifest = {
        "format": "edgeaff-bundle",
        "schema_version": 1,
        "models": [{"index": 0, "fold": 0, "dimension": "valence", "kind": "unimodal"}],
        "feature_spec": FeatureSpec().to_dict(),
        "precisions": ["fp32"],
        "streaming": {"state_size": 12},
        "graphs": graphs,
    }
    _write(root, manifest)
    return manifest


def test_a_valid_bundle_loads(tmp_path: Path) -> None:
    make_bundle(tmp_path / "b")
    bundle = load_bundle(tmp_path / "b")
    assert set(bundle.graphs) == set(GRAPHS)
    assert bundle.graphs["visual"].file("int8") == tmp_path / "b" / "visual.onnx"  # falls back to fp32
    assert zero_stream_state(bundle, batch=2).shape == (2, 12)
    assert not bundle.multimodal


def _refused(root: Path) -> str:
    with pytest.raises(BundleError) as info:
        load_bundle(root)
    message = str(info.value)
    assert "\n" not in message
    return message


def test_refuses_a_modified_file(tmp_path: Path) -> None:
    root = tmp_path / "b"
    make_bundle(root)
    (root / "temporal.onnx").write_bytes(b"tampered")
    assert "does not match its sha256" in _refused(root)


@pytest.mark.parametrize("bad", ["../outside.onnx", "/etc/passwd", "sub/../../outside.onnx", "C:/x.onnx"])
def test_refuses_paths_outside_the_bundle(tmp_path: Path, bad: str) -> None:
    root = tmp_path / "b"
    manifest = make_bundle(root)
    (tmp_path / "outside.onnx").write_bytes(b"x")
    manifest["graphs"]["visual"]["variants"]["fp32"]["file"] = bad
    _write(root, manifest)
    message = _refused(root)
    assert "outside the bundle" in message or "absolute path" in message


def test_refuses_a_symlink_that_escapes(tmp_path: Path) -> None:
    root = tmp_path / "b"
    manifest = make_bundle(root)
    outside = tmp_path / "elsewhere.onnx"
    outside.write_bytes(b"visual" * 10)
    os.symlink(outside, root / "link.onnx")
    manifest["graphs"]["visual"]["variants"]["fp32"]["file"] = "link.onnx"
    _write(root, manifest)
    assert "link that points outside" in _refused(root)


def test_refuses_an_unknown_schema_version(tmp_path: Path) -> None:
    root = tmp_path / "b"
    manifest = make_bundle(root)
    manifest["schema_version"] = 99
    _write(root, manifest)
    assert "schema version 99 is not supported" in _refused(root)


def test_refuses_a_missing_graph_file(tmp_path: Path) -> None:
    root = tmp_path / "b"
    make_bundle(root)
    (root / "temporal_stream.onnx").unlink()
    assert "'temporal_stream.onnx' is missing" in _refused(root)


def test_refuses_a_directory_without_manifest(tmp_path: Path) -> None:
    root = tmp_path / "b"
    make_bundle(root)
    (root / "manifest.json").unlink()
    assert "not a complete bundle" in _refused(root)


def test_refuses_a_foreign_manifest_and_unknown_roles(tmp_path: Path) -> None:
    root = tmp_path / "b"
    manifest = make_bundle(root)
    _write(root, {**manifest, "format": "something-else"})
    assert "not an edgeaff bundle manifest" in _refused(root)
    manifest["graphs"]["mystery"] = manifest["graphs"]["visual"]
    _write(root, manifest)
    assert "unknown graph roles" in _refused(root)
