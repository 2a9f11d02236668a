"""Fold checkpoints: bit-identical round trip, self-description, and clear errors for damaged files."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import pytest
import torch
from helpers import random_inputs

from edgeaff.runtime.artifacts.checkpoint_header import CheckpointError, read_checkpoint_metadata
from edgeaff.runtime.spec import AudioNormalization, ScalarStats
from edgeaff.train import load_checkpoint, model_config, save_checkpoint
from edgeaff.train.model import build_model

STATS = AudioNormalization(mfcc=ScalarStats(1.5, 20.0), vggish=ScalarStats(-0.1, 0.45))


@pytest.fixture
def saved(tmp_path: Path) -> tuple[torch.nn.Module, Path]:
    torch.manual_seed(0)
    model = build_model(model_config("multimodal", backbone="ir-tiny", fusion="paper"))
    # Make BatchNorm statistics non-trivial so that a lost buffer would show.
    model.train()
    frames, vggish, mfcc = random_inputs(2, 6, seed=0)
    with torch.no_grad():
        model(frames, vggish=vggish, mfcc=mfcc)
    model.eval()
    path = tmp_path / "fold0_valence.safetensors"
    save_checkpoint(model, path, dimension="valence", fold=0, normalization=STATS, metrics={"ccc": 0.42})
    return model, path


def test_round_trip_gives_bit_identical_outputs(saved: tuple[torch.nn.Module, Path]) -> None:
    model, path = saved
    loaded, metadata = load_checkpoint(path)
    assert not loaded.training
    frames, vggish, mfcc = random_inputs(2, 9, seed=1)
    with torch.no_grad():
        assert torch.equal(model(frames, vggish=vggish, mfcc=mfcc), loaded(frames, vggish=vggish, mfcc=mfcc))
    assert metadata.model == model.config
    assert metadata.normalization == STATS
    assert metadata.metrics == {"ccc": 0.42}
    assert metadata.dimension == "valence" and metadata.fold == 0
    assert metadata.versions["torch"] == torch.__version__


def test_metadata_is_readable_without_torch_and_complete(saved: tuple[torch.nn.Module, Path]) -> None:
    _, path = saved
    metadata = read_checkpoint_metadata(path)
    assert metadata["model"]["fusion"] == "paper"
    assert metadata["feature_spec"]["window"] == {"length": 300, "hop": 200}
    assert metadata["feature_spec"]["mfcc"]["cep_lifter"] == 22
    assert metadata["normalization"]["mfcc"] == {"mean": 1.5, "std": 20.0}
    assert len(metadata["weights_sha256"]) == 64
    assert {"edgeaff", "torch", "safetensors", "python"} <= set(metadata["versions"])


def test_truncated_checkpoint_is_refused(saved: tuple[torch.nn.Module, Path], tmp_path: Path) -> None:
    _, path = saved
    data = path.read_bytes()
    for cut in (5, 100, len(data) // 2, len(data) - 1):
        broken = tmp_path / f"cut{cut}.safetensors"
        broken.write_bytes(data[:cut])
        with pytest.raises(CheckpointError, match=r"truncated|too short|not a safetensors"):
            load_checkpoint(broken)


def test_modified_weights_are_detected(saved: tuple[torch.nn.Module, Path], tmp_path: Path) -> None:
    _, path = saved
    data = bytearray(path.read_bytes())
    data[-3] ^= 0xFF  # flip bits inside the last tensor
    tampered = tmp_path / "tampered.safetensors"
    tampered.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="hash mismatch"):
        load_checkpoint(tampered)


def _rewrite_metadata(path: Path, target: Path, edit) -> None:
    data = path.read_bytes()
    (length,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + length])
    document = json.loads(header["__metadata__"]["edgeaff"])
    edit(document)
    header["__metadata__"]["edgeaff"] = json.dumps(document)
    raw = json.dumps(header).encode()
    raw += b" " * (-len(raw) % 8)
    target.write_bytes(struct.pack("<Q", len(raw)) + raw + data[8 + length :])


def test_wrong_layout_is_refused(saved: tuple[torch.nn.Module, Path], tmp_path: Path) -> None:
    _, path = saved
    wrong = tmp_path / "wrong.safetensors"
    _rewrite_metadata(path, wrong, lambda doc: doc["model"].update(visual_channels=[64, 64, 64, 64]))
    with pytest.raises(CheckpointError, match="do not match the recorded model configuration"):
        load_checkpoint(wrong)
    unimodal = tmp_path / "unimodal.safetensors"
    _rewrite_metadata(path, unimodal, lambda doc: doc["model"].update(kind="unimodal", fusion=None))
    with pytest.raises(CheckpointError, match="unexpected"):
        load_checkpoint(unimodal)


def test_unknown_schema_and_foreign_files_are_refused(saved: tuple[torch.nn.Module, Path], tmp_path: Path) -> None:
    _, path = saved
    future = tmp_path / "future.safetensors"
    _rewrite_metadata(path, future, lambda doc: doc.update(schema_version=99))
    with pytest.raises(CheckpointError, match="schema version 99"):
        load_checkpoint(future)
    from safetensors.torch import save_file

    foreign = tmp_path / "foreign.safetensors"
    save_file({"x": torch.zeros(2)}, str(foreign))
    with pytest.raises(CheckpointError, match="convert-reference"):
        load_checkpoint(foreign)
    with pytest.raises(CheckpointError, match="not found"):
        load_checkpoint(tmp_path / "absent.safetensors")


def test_checkpoints_get_the_umask_mode(tmp_path: Path) -> None:
    import os
    import stat

    model = build_model(model_config("unimodal", backbone="ir-tiny", fusion=None))
    umask = os.umask(0o022)
    try:
        save_checkpoint(model, tmp_path / "run" / "fold.safetensors", dimension="valence")
    finally:
        os.umask(umask)
    # safetensors writes a new private file; the checkpoint must still be readable by another account (0644).
    assert stat.S_IMODE((tmp_path / "run" / "fold.safetensors").stat().st_mode) == 0o644
    assert stat.S_IMODE((tmp_path / "run").stat().st_mode) == 0o755


def test_save_is_atomic(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    model = build_model(model_config("unimodal", backbone="ir-tiny", fusion=None))
    path = tmp_path / "fold.safetensors"
    save_checkpoint(model, path, dimension="arousal")
    before = path.read_bytes()

    import safetensors.torch

    def failing_save(state, filename, metadata=None):
        Path(filename).write_bytes(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(safetensors.torch, "save_file", failing_save)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(model, path, dimension="arousal")
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fold.safetensors"]


def test_save_validates_its_arguments(tmp_path: Path) -> None:
    from edgeaff.runtime.errors import InvalidInputError

    multimodal = build_model(model_config("multimodal", backbone="ir-tiny"))
    with pytest.raises(InvalidInputError, match="normalisation"):
        save_checkpoint(multimodal, tmp_path / "a.safetensors", dimension="valence")
    with pytest.raises(InvalidInputError, match="valence, arousal"):
        save_checkpoint(multimodal, tmp_path / "a.safetensors", dimension="dominance", normalization=STATS)
    assert not list(tmp_path.iterdir())
