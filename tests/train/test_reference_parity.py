"""The converted `abaw2` model against an independent float64 implementation of reference.md §1."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import reference_numpy as rn
import torch
from helpers import SHARED, parse_shared_layouts, random_inputs, random_reference_state_dict, to_numpy64

from edgeaff.cli import main
from edgeaff.train import load_checkpoint
from edgeaff.train.reference import reference_layout, reference_model_config

TOLERANCE = 1e-5  # float32 model vs float64 reference, outputs of magnitude ~1


@pytest.mark.parametrize("kind", ["multimodal", "unimodal"])
def test_layout_matches_the_reference_key_list(kind: str) -> None:
    if not (SHARED / "ref_state_dict_keys.txt").is_file():
        pytest.skip("shared/ref_state_dict_keys.txt not beside the checkout")
    expected = parse_shared_layouts()[kind]
    ours = reference_layout(reference_model_config(kind))
    assert ours == expected
    assert len(ours) == (525 if kind == "multimodal" else 401)


def _convert(tmp_path: Path, kind: str, seed: int) -> tuple[dict[str, torch.Tensor], Path]:
    state = random_reference_state_dict(reference_layout(reference_model_config(kind)), seed)
    source = tmp_path / "model_state_dict.pth"
    torch.save(state, source)
    output = tmp_path / f"{kind}.safetensors"
    args = ["convert-reference", str(source), "--model", kind, "--dim", "arousal", "-o", str(output), "--fold", "2"]
    if kind == "multimodal":
        args += ["--mfcc-stats", "0.5", "2.0", "--vggish-stats", "-0.105", "0.4476"]
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    assert exit_info.value.code == 0
    return state, output


def test_converted_multimodal_matches_float64_reference(tmp_path: Path) -> None:
    state, output = _convert(tmp_path, "multimodal", seed=11)
    model, metadata = load_checkpoint(output)
    assert not model.training
    assert metadata.model.fusion == "abaw2"
    assert metadata.dimension == "arousal" and metadata.fold == 2
    assert metadata.normalization is not None and metadata.normalization.vggish.std == pytest.approx(0.4476)
    frames, vggish, mfcc = random_inputs(2, 6, seed=3)
    with torch.no_grad():
        ours = model(frames, vggish=vggish, mfcc=mfcc).numpy()
    expected = rn.multimodal(frames.double().numpy(), vggish.double().numpy(), mfcc.double().numpy(), to_numpy64(state))
    assert ours.shape == (2, 6)
    assert np.abs(ours - expected).max() < TOLERANCE
    assert np.abs(expected).max() > 0.1  # the comparison is not between two near-zero signals


def test_converted_unimodal_matches_float64_reference(tmp_path: Path) -> None:
    state, output = _convert(tmp_path, "unimodal", seed=12)
    model, metadata = load_checkpoint(output)
    assert metadata.model.kind == "unimodal" and metadata.normalization is None
    frames, _, _ = random_inputs(1, 7, seed=4)
    with torch.no_grad():
        ours = model(frames).numpy()
    expected = rn.unimodal(frames.double().numpy(), to_numpy64(state))
    assert np.abs(ours - expected).max() < TOLERANCE
    assert np.abs(expected).max() > 0.1


def test_multimodal_head_over_a_full_window_matches_reference(tmp_path: Path) -> None:
    """300 frames exercise every dilation and the full receptive field of the three TCNs and the fusion."""
    config = reference_model_config("multimodal")
    state = random_reference_state_dict(reference_layout(config), seed=21)
    from edgeaff.train.model import EmotionModel
    from edgeaff.train.reference import convert_reference_state_dict

    model = EmotionModel(config)
    model.load_state_dict(convert_reference_state_dict(state, config))
    model.eval()
    gen = torch.Generator().manual_seed(5)
    embeddings = torch.nn.functional.normalize(torch.randn(2, 300, 512, generator=gen), dim=-1)
    vggish = torch.randn(2, 300, 128, generator=gen)
    mfcc = torch.randn(2, 300, 39, generator=gen)
    with torch.no_grad():
        ours = model.temporal(embeddings, vggish, mfcc).numpy()
    expected = rn.multimodal_head(
        embeddings.double().numpy(), vggish.double().numpy(), mfcc.double().numpy(), to_numpy64(state)
    )
    assert np.abs(ours - expected).max() < TOLERANCE
