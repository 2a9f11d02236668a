"""`edgeaff convert-reference` and `--backbone-weights` loading: inputs that must be refused, clearly."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import reference_numpy as rn
import torch
from helpers import random_inputs, random_reference_state_dict, to_numpy64

from edgeaff.cli import main
from edgeaff.runtime.errors import InvalidInputError
from edgeaff.train.config import model_config
from edgeaff.train.model import build_model
from edgeaff.train.reference import load_backbone_weights, reference_layout, reference_model_config


def run_cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    captured = capsys.readouterr()
    return int(exit_info.value.code or 0), captured.err + captured.out


@pytest.fixture(scope="module")
def unimodal_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("ref") / "unimodal.pth"
    torch.save(random_reference_state_dict(reference_layout(reference_model_config("unimodal")), 0), path)
    return path


def test_wrong_model_kind_is_named(unimodal_file: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "x.safetensors"
    code, text = run_cli(
        [
            "convert-reference",
            str(unimodal_file),
            "--model",
            "multimodal",
            "--dim",
            "valence",
            "-o",
            str(out),
            "--mfcc-stats",
            "0",
            "1",
            "--vggish-stats",
            "0",
            "1",
        ],
        capsys,
    )
    assert code == 2
    assert "use --model unimodal" in text and "missing" in text
    assert "Traceback" not in text and len(text.strip().splitlines()) == 1
    assert not out.exists()


def test_missing_and_misshapen_keys_are_listed(tmp_path: Path, capsys) -> None:
    state = random_reference_state_dict(reference_layout(reference_model_config("unimodal")), 1)
    del state["temporal.network.2.conv1.weight_v"], state["temporal.network.2.net.0.weight_v"]
    state["regressor.weight"] = torch.zeros(1, 64)
    state["extra.weight"] = torch.zeros(1)
    source = tmp_path / "broken.pth"
    torch.save(state, source)
    code, text = run_cli(
        ["convert-reference", str(source), "--model", "unimodal", "--dim", "valence", "-o", str(tmp_path / "o")],
        capsys,
    )
    assert code == 2
    assert "temporal.network.2.conv1.weight_v" in text
    assert "regressor.weight (1, 64) != (1, 128)" in text
    assert "extra.weight" in text


class _Payload:
    """Unpickling this runs Path.touch on a marker file."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def test_pickled_objects_are_never_executed(tmp_path: Path, capsys) -> None:
    marker = tmp_path / "code-was-executed"
    source = tmp_path / "evil.pth"
    torch.save({"weights": torch.zeros(1), "meta": _Payload(marker)}, source)
    code, text = run_cli(
        ["convert-reference", str(source), "--model", "unimodal", "--dim", "valence", "-o", str(tmp_path / "o")],
        capsys,
    )
    assert code == 2
    assert "refusing to load" in text
    assert not marker.exists()


def test_corrupt_and_missing_sources(unimodal_file: Path, tmp_path: Path, capsys) -> None:
    truncated = tmp_path / "truncated.pth"
    truncated.write_bytes(unimodal_file.read_bytes()[:5000])
    args = ["--model", "unimodal", "--dim", "valence", "-o", str(tmp_path / "o.safetensors")]
    code, text = run_cli(["convert-reference", str(truncated), *args], capsys)
    assert code == 2 and "truncated or corrupt" in text
    code, text = run_cli(["convert-reference", str(tmp_path / "absent.pth"), *args], capsys)
    assert code == 2 and "not found" in text
    assert not (tmp_path / "o.safetensors").exists()


def test_option_validation(unimodal_file: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "o.safetensors"
    base = ["convert-reference", str(unimodal_file), "-o", str(out)]
    code, text = run_cli([*base, "--model", "unimodal", "--dim", "valence", "--mfcc-stats", "0", "1"], capsys)
    assert code == 2 and "omit --mfcc-stats" in text
    code, text = run_cli([*base, "--model", "multimodal", "--dim", "valence"], capsys)
    assert code == 2 and "--mfcc-stats MEAN STD" in text
    code, text = run_cli(
        [*base, "--model", "multimodal", "--dim", "valence", "--mfcc-stats", "0", "0", "--vggish-stats", "0", "1"],
        capsys,
    )
    assert code == 2 and "positive std" in text
    code, text = run_cli([*base, "--model", "bimodal", "--dim", "valence"], capsys)
    assert code == 2 and "multimodal, unimodal" in text
    code, text = run_cli([*base, "--model", "unimodal", "--dim", "dominance"], capsys)
    assert code == 2 and "valence, arousal" in text
    code, text = run_cli([*base, "--model", "unimodal", "--dim", "valence"], capsys)
    assert code == 0 and out.exists()
    code, text = run_cli([*base, "--model", "unimodal", "--dim", "valence"], capsys)
    assert code == 2 and "--force" in text
    code, text = run_cli([*base, "--model", "unimodal", "--dim", "valence", "--force"], capsys)
    assert code == 0


def test_force_never_overwrites_the_source_or_a_foreign_file(unimodal_file: Path, tmp_path: Path, capsys) -> None:
    source_bytes = unimodal_file.read_bytes()
    options = ["--model", "unimodal", "--dim", "valence", "--force"]
    code, text = run_cli(["convert-reference", str(unimodal_file), "-o", str(unimodal_file), *options], capsys)
    assert code == 2 and "is the source checkpoint itself" in text and "Traceback" not in text
    assert unimodal_file.read_bytes() == source_bytes
    notes = tmp_path / "notes.safetensors"
    notes.write_text("my notes")
    code, text = run_cli(["convert-reference", str(unimodal_file), "-o", str(notes), *options], capsys)
    assert code == 2 and "is not an edgeaff fold checkpoint" in text and notes.read_text() == "my notes"
    code, text = run_cli(["convert-reference", str(unimodal_file), "-o", str(notes), *options, "--fold", "6"], capsys)
    assert code == 2 and "--fold must be between 0 and 5, got 6" in text


def test_inspect_prints_the_metadata(unimodal_file: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "o.safetensors"
    run_cli(
        ["convert-reference", str(unimodal_file), "--model", "unimodal", "--dim", "arousal", "-o", str(out)], capsys
    )
    code, text = run_cli(["inspect", str(out)], capsys)
    assert code == 0
    assert "unimodal, fusion None, backbone ir50" in text and "arousal" in text and "reference-conversion" in text


def _backbone_file(state: dict[str, torch.Tensor], path: Path) -> dict[str, torch.Tensor]:
    """A my_res50 state dict as in res50_ir_0.887.pth: backbone.* plus the FER+ classifier logits.*."""
    file_state = {k.replace("spatial.", "backbone.", 1): v for k, v in state.items() if k.startswith("spatial.")}
    file_state["logits.weight"] = torch.zeros(8, 512)
    file_state["logits.bias"] = torch.zeros(8)
    torch.save(file_state, path)
    return file_state


def test_backbone_weights_load_into_the_visual_backbone(tmp_path: Path) -> None:
    state = random_reference_state_dict(reference_layout(reference_model_config("unimodal")), 7)
    path = tmp_path / "res50_ir_0.887.pth"
    _backbone_file(state, path)
    model = build_model(model_config("multimodal")).eval()
    ignored = load_backbone_weights(model, path)
    assert ignored == ["logits.weight", "logits.bias"]
    frames, _, _ = random_inputs(1, 3, seed=8)
    with torch.no_grad():
        ours = model.embed(frames).numpy().reshape(3, -1)
    expected = rn.backbone(frames.double().numpy().reshape(3, 3, 40, 40), to_numpy64(state))
    assert np.abs(ours - expected).max() < 1e-5


def test_backbone_weights_with_a_7x7_head_or_other_backbone_are_refused(tmp_path: Path) -> None:
    state = random_reference_state_dict(reference_layout(reference_model_config("unimodal")), 7)
    state["spatial.output_layer.3.weight"] = torch.zeros(512, 512 * 7 * 7)
    path = tmp_path / "insightface_112.pth"
    _backbone_file(state, path)
    model = build_model(model_config("unimodal", fusion=None))
    with pytest.raises(InvalidInputError, match="5×5 layer for 40×40"):
        load_backbone_weights(model, path)
    tiny = build_model(model_config("unimodal", backbone="ir-tiny", fusion=None))
    state["spatial.output_layer.3.weight"] = torch.zeros(512, 512 * 5 * 5)
    _backbone_file(state, path)
    with pytest.raises(InvalidInputError, match="'ir-tiny' backbone"):
        load_backbone_weights(tiny, path)
