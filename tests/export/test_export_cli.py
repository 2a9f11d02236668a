"""``edgeaff export`` argument handling: sources, compatibility checks and clear one-line errors."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
from builders import save_models, tiny_feature_spec, tiny_models, write_prepared

from edgeaff.cli import main
from edgeaff.export import bundle as bundle_writer
from edgeaff.export import calibration, exporter
from edgeaff.export.sources import collect_sources
from edgeaff.runtime.artifacts.prepared import load_prepared_dataset
from edgeaff.runtime.errors import InvalidInputError
from edgeaff.runtime.spec import VggishSpec


def _error(args: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    assert exit_info.value.code != 0
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and "Traceback" not in err
    return errors[0]


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    models = tiny_models([("unimodal", None), ("unimodal", None)], seed=40)
    return save_models(models, tmp_path_factory.mktemp("ckpt"), [(0, "valence"), (1, "valence")])


def test_run_directory_uses_finished_runs_from_runs_json(tmp_path: Path, checkpoints: list[Path]) -> None:
    run = tmp_path / "run"
    (run / "f0").mkdir(parents=True)
    (run / "f1").mkdir()
    for index, source in enumerate(checkpoints):
        (run / f"f{index}" / "best.safetensors").write_bytes(source.read_bytes())
    runs = [
        {
            "fold": 0,
            "dimension": "valence",
            "model": "unimodal",
            "checkpoint": "f0/best.safetensors",
            "status": "finished",
        },
        {
            "fold": 1,
            "dimension": "valence",
            "model": "unimodal",
            "checkpoint": "f1/best.safetensors",
            "status": "failed",
        },
    ]
    (run / "runs.json").write_text(json.dumps({"format": "edgeaff-run", "schema_version": 1, "runs": runs}))
    assert [s.path for s in collect_sources([run])] == [run / "f0" / "best.safetensors"]
    (run / "runs.json").unlink()
    (run / "notes.safetensors").write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{}      ")  # not an edgeaff checkpoint
    assert sorted(s.metadata["fold"] for s in collect_sources([run])) == [0, 1]


def test_duplicates_are_refused(tmp_path: Path, checkpoints: list[Path], capsys: pytest.CaptureFixture[str]) -> None:
    out = str(tmp_path / "b")
    assert "same checkpoint" in _error(["export", str(checkpoints[0]), str(checkpoints[0]), "-o", out], capsys)
    again = save_models(tiny_models([("unimodal", None)], seed=99), tmp_path / "other", [(0, "valence")])
    message = _error(["export", str(checkpoints[0]), str(again[0]), "-o", out], capsys)
    assert "both fold0/valence/unimodal" in message


def test_mixed_backbones_are_refused(
    tmp_path: Path, checkpoints: list[Path], capsys: pytest.CaptureFixture[str]
) -> None:
    from edgeaff.train import build_model, model_config, save_checkpoint

    other = tmp_path / "small.safetensors"
    save_checkpoint(build_model(model_config("unimodal", backbone="ir-small", fusion=None)), other, dimension="arousal")
    message = _error(["export", str(checkpoints[0]), str(other), "-o", str(tmp_path / "b")], capsys)
    assert "differ in their backbone configuration (ir-tiny vs ir-small)" in message


def test_option_errors(tmp_path: Path, checkpoints: list[Path], capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "b"
    assert "--int8 needs --calib" in _error(["export", str(checkpoints[0]), "-o", str(out), "--int8"], capsys)
    empty = tmp_path / "empty"
    empty.mkdir()
    assert "no edgeaff fold checkpoints" in _error(["export", str(empty), "-o", str(out)], capsys)
    assert "no such checkpoint" in _error(["export", str(tmp_path / "nope"), "-o", str(out)], capsys)
    out.mkdir()
    assert "pass --force" in _error(["export", str(checkpoints[0]), "-o", str(out)], capsys)
    assert "--opset must be between 17 and" in _error(
        ["export", str(checkpoints[0]), "-o", str(tmp_path / "c"), "--opset", "13"], capsys
    )


def test_vggish_weights_must_match_the_feature_spec(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = dataclasses.replace(
        tiny_feature_spec(), vggish=VggishSpec(weights_source="vggish-10086976.pth", weights_sha256="ab" * 32)
    )
    (path,) = save_models(tiny_models([("multimodal", "paper")], seed=5), tmp_path / "c", [(0, "arousal")], spec=spec)
    out = str(tmp_path / "b")
    assert "need --vggish-weights FILE" in _error(["export", str(path), "-o", out], capsys)
    message = _error(["export", str(path), "-o", out, "--vggish-weights", "random:1"], capsys)
    assert "but the models were trained on features" in message


def test_a_failed_export_leaves_nothing_behind(
    tmp_path: Path, checkpoints: list[Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args: object, **kwargs: object) -> None:
        raise InvalidInputError("simulated failure while exporting")

    monkeypatch.setattr(exporter.torch2onnx, "build_graphs", broken)
    with pytest.raises(InvalidInputError):
        exporter.export_bundle(checkpoints, tmp_path / "b", options=exporter.ExportOptions())
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_publish_replaces_only_with_force(tmp_path: Path) -> None:
    target = tmp_path / "bundle"
    target.mkdir()
    (target / "manifest.json").write_text('{"format": "edgeaff-bundle"}')
    with bundle_writer.staging_directory(target) as staging:
        (staging / "new").write_text("new")
        with pytest.raises(InvalidInputError):
            bundle_writer.publish(staging, target, force=False)
        bundle_writer.publish(staging, target, force=True)
    assert sorted(p.name for p in target.iterdir()) == ["new"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bundle"]


def test_calibration_reads_through_the_one_prepared_data_reader(prepared_dir: Path) -> None:
    dataset = load_prepared_dataset(prepared_dir)
    assert calibration.split_trials(dataset) == (["t01", "t02"], ["v01"])
    batches = calibration.calibration_batches(dataset, ["t01", "t02"], frames=50, batch=16)
    assert [len(b) for b in batches] == [16, 16, 16, 2] and batches[0].dtype == "uint8"
    frames = [np.asarray(dataset.arrays(t).frame) for t in ("t01", "t02")]
    # 50 frames evenly over the 96 + 64 frames of both trials: the first of t01 and the last of t02 included.
    assert (batches[0][0] == frames[0][0]).all() and (batches[-1][-1] == frames[1][-1]).all()
    calibration.check_features(dataset, dataset.feature_spec)
    wider = dataclasses.replace(dataset.feature_spec, vggish=VggishSpec(embedding_dim=256))
    with pytest.raises(InvalidInputError, match="VGGish embedding width"):
        calibration.check_features(dataset, wider)
    calibration.check_labelled(dataset, ["v01"])


def test_evaluation_trials_need_labels(tmp_path: Path) -> None:
    root = write_prepared(tmp_path / "p", {"t": ("Train_Set", 8), "v": ("Validation_Set", 8)})
    (root / "v" / "label.npy").unlink()
    dataset = load_prepared_dataset(root)
    calibration.check_labelled(dataset, ["t"])
    with pytest.raises(InvalidInputError, match="trial 'v' has no labels"):
        calibration.check_labelled(dataset, calibration.split_trials(dataset)[1])


def test_calib_must_be_a_prepared_dataset(
    tmp_path: Path, checkpoints: list[Path], prepared_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "b"
    message = _error(["export", str(checkpoints[0]), "-o", str(out), "--calib", str(tmp_path)], capsys)
    assert "not a prepared dataset" in message and not out.exists()
    broken = tmp_path / "broken"
    broken.mkdir()
    document = json.loads((prepared_dir / "dataset.json").read_text())
    (broken / "dataset.json").write_text(json.dumps({**document, "schema_version": 9}))
    message = _error(["export", str(checkpoints[0]), "-o", str(out), "--calib", str(broken)], capsys)
    assert "schema version 9 is not supported" in message


def test_export_without_torch_names_the_extra(tmp_path: Path) -> None:
    from test_dependency_rule import run_without_torch

    result = run_without_torch(
        f"from edgeaff.cli import main\nmain(['export', 'x.safetensors', '-o', r'{tmp_path}/b'])"
    )
    assert result.returncode == 3
    assert "edgeaff[export]" in result.stderr and "Traceback" not in result.stderr
