"""``edgeaff export`` argument handling: sources, compatibility checks and clear one-line errors."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
from builders import save_models, tiny_feature_spec, tiny_models

from edgeaff.cli import main
from edgeaff.export import bundle as bundle_writer
from edgeaff.export import exporter
from edgeaff.export.prepared_data import calibration_batches, load_prepared, window_starts
from edgeaff.export.sources import collect_sources
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


def test_prepared_data_windows_and_calibration(prepared_dir: Path) -> None:
    # The reference's windowing (reference.md §4.6): hop through, then one window flush with the end.
    assert window_starts(300, 300, 200) == [0]
    assert window_starts(301, 300, 200) == [0, 1]
    assert window_starts(750, 300, 200) == [0, 200, 400, 450]
    trials = load_prepared(prepared_dir)
    batches = calibration_batches(trials[:2], frames=50, batch=16)
    assert [len(b) for b in batches] == [16, 16, 16, 2] and batches[0].dtype == "uint8"
    assert (batches[0][0] == trials[0].frames[0]).all()


def test_ccc_matches_the_textbook_formula() -> None:
    from edgeaff.export.accuracy import ccc

    rng = np.random.default_rng(0)
    x = rng.normal(0.2, 1.0, 500)
    y = 0.5 * x + rng.normal(-0.1, 0.3, 500)
    # Lin (1989): 2·s_xy / (s_x² + s_y² + (mean_x - mean_y)²), population moments.
    s_xy = np.cov(x, y, bias=True)[0, 1]
    expected = 2 * s_xy / (x.var() + y.var() + (x.mean() - y.mean()) ** 2)
    assert ccc(x, y) == pytest.approx(expected, rel=1e-12)
    assert ccc(x, x) == pytest.approx(1.0) and ccc(x, -x) < -0.9


def test_export_without_torch_names_the_extra(tmp_path: Path) -> None:
    from test_dependency_rule import run_without_torch

    result = run_without_torch(
        f"from edgeaff.cli import main\nmain(['export', 'x.safetensors', '-o', r'{tmp_path}/b'])"
    )
    assert result.returncode == 3
    assert "edgeaff[export]" in result.stderr and "Traceback" not in result.stderr
