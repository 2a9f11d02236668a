"""Session-wide exported bundles: exporting takes seconds per graph, so each bundle is built once."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from builders import save_models, tiny_models, write_prepared
from helpers import random_reference_state_dict

from edgeaff.cli import main
from edgeaff.train.reference import reference_layout, reference_model_config

TINY_ENTRIES = [(0, "valence"), (1, "valence"), (2, "arousal")]


def run_cli(args: list[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    assert exit_info.value.code == 0


@pytest.fixture(scope="session")
def prepared_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two training trials (calibration) and one validation trial (accuracy) of random frames and audio."""
    root = tmp_path_factory.mktemp("prepared")
    return write_prepared(
        root, {"t01": ("Train_Set", 96), "t02": ("Train_Set", 64), "v01": ("Validation_Set", 330)}, seed=3
    )


@pytest.fixture(scope="session")
def tiny_set(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[torch.nn.Module], list[Path]]:
    """Three unimodal ir-tiny fold models sharing one frozen trunk, saved as fold checkpoints."""
    models = tiny_models([("unimodal", None)] * 3, seed=10)
    paths = save_models(models, tmp_path_factory.mktemp("tiny-ckpt"), TINY_ENTRIES)
    return models, paths


@pytest.fixture(scope="session")
def tiny_bundle(tmp_path_factory: pytest.TempPathFactory, tiny_set, prepared_dir: Path) -> Path:
    """The tiny set exported with FP16 and INT8 variants, calibrated and evaluated on the prepared data."""
    _, paths = tiny_set
    output = tmp_path_factory.mktemp("tiny-bundle") / "bundle"
    run_cli(["export", *map(str, paths), "-o", str(output), "--fp16", "--int8", "--calib", str(prepared_dir)])
    return output


@pytest.fixture(scope="session")
def reference_export(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, torch.Tensor], Path]:
    """A random reference-format IR-50 multimodal (abaw2) state dict, converted, then exported (FP32)."""
    root = tmp_path_factory.mktemp("reference")
    state = random_reference_state_dict(reference_layout(reference_model_config("multimodal")), seed=31)
    source = root / "model_state_dict.pth"
    torch.save(state, source)
    checkpoint = root / "fold2_arousal.safetensors"
    stats = ["--mfcc-stats", "0.5", "2.0", "--vggish-stats", "-0.105", "0.4476"]
    convert = ["convert-reference", str(source), "--model", "multimodal", "--dim", "arousal"]
    run_cli([*convert, "-o", str(checkpoint), "--fold", "2", *stats])
    output = root / "bundle"
    run_cli(["export", str(checkpoint), "-o", str(output), "--vggish-weights", "random:0"])
    return state, output
