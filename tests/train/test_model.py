"""Model structure, causality and input validation."""

from __future__ import annotations

import pytest
import torch
from helpers import random_inputs

from edgeaff.runtime.errors import InvalidInputError
from edgeaff.train.config import ModelConfig, model_config
from edgeaff.train.fusion import LeaderFollowerFusion
from edgeaff.train.model import build_model, count_parameters
from edgeaff.train.tcn import TemporalConvNet, WeightNormConv1d


def test_ir50_matches_the_reference_size_and_groups() -> None:
    model = build_model(model_config("multimodal"))
    assert count_parameters(model.backbone) == 37_283_520
    assert model.backbone.finetune_groups() == [
        ["embedding"],
        ["units.21", "units.22", "units.23"],
        ["units.18", "units.19", "units.20"],
    ]
    # Stage-1 stride 1 and a 5×5 output map for 40×40 input.
    assert model.backbone.embedding.fc.in_features == 512 * 5 * 5
    assert [u.stride for u in model.backbone.units][:4] == [1, 1, 1, 2]


def test_embeddings_are_unit_norm() -> None:
    model = build_model(model_config("unimodal", backbone="ir-tiny", fusion=None)).eval()
    frames, _, _ = random_inputs(2, 3, seed=0)
    with torch.no_grad():
        embeddings = model.embed(frames)
    assert embeddings.shape == (2, 3, 64)
    torch.testing.assert_close(embeddings.norm(dim=-1), torch.ones(2, 3))


def test_weight_norm_conv_uses_g_times_v_over_norm() -> None:
    conv = WeightNormConv1d(3, 4, 5, dilation=2)
    with torch.no_grad():
        conv.weight_g.uniform_(0.5, 2.0)
    v = conv.weight_v.detach().double()
    expected = conv.weight_g.detach().double() * v / v.pow(2).sum(dim=(1, 2), keepdim=True).sqrt()
    torch.testing.assert_close(conv.weight().double(), expected)
    # Freshly initialised, g = ‖v‖ so the effective weight is v itself.
    fresh = WeightNormConv1d(3, 4, 5, dilation=1)
    torch.testing.assert_close(fresh.weight(), fresh.weight_v.detach())


def test_tcn_receptive_field_is_121_frames() -> None:
    torch.manual_seed(0)
    tcn = TemporalConvNet(8, (16, 16, 16, 16), kernel_size=5, dropout=0.1).eval()
    assert tcn.receptive_field == 121
    x = torch.randn(1, 8, 300)
    changed = x.clone()
    changed[:, :, 100] += 1.0
    with torch.no_grad():
        diff = (tcn(changed) - tcn(x)).abs().amax(dim=1)[0]
    assert torch.all(diff[:100] == 0)
    assert torch.all(diff[100:221] > 0)
    assert torch.all(diff[221:] == 0)


@pytest.mark.parametrize("fusion", ["paper", "abaw2"])
def test_multimodal_model_is_causal(fusion: str) -> None:
    torch.manual_seed(1)
    model = build_model(model_config("multimodal", backbone="ir-tiny", fusion=fusion)).eval()
    frames, vggish, mfcc = random_inputs(2, 40, seed=1)
    t = 17
    with torch.no_grad():
        base = model(frames, vggish=vggish, mfcc=mfcc)
        for name in ("frames", "vggish", "mfcc"):
            inputs = {"frames": frames.clone(), "vggish": vggish.clone(), "mfcc": mfcc.clone()}
            inputs[name][:, t] = inputs[name][:, t] * -1.0 + 0.5
            out = model(inputs["frames"], vggish=inputs["vggish"], mfcc=inputs["mfcc"])
            assert torch.equal(out[:, :t], base[:, :t]), name
            assert (out[:, t] - base[:, t]).abs().min() > 0, name


@pytest.mark.parametrize("variant", ["paper", "abaw2"])
def test_fusion_matches_an_explicit_float64_computation(variant: str) -> None:
    """paper: Q, K, V from each branch's features, Q·Kᵀ; abaw2: aural Q, V from the aural keys, K·Qᵀ."""
    torch.manual_seed(4)
    fusion = LeaderFollowerFusion((6, 5, 4), attention_dim=3, variant=variant).double()
    with torch.no_grad():
        fusion.norm.weight.uniform_(0.5, 1.5)
        fusion.norm.bias.uniform_(-0.2, 0.2)
    features = [torch.randn(7, d, dtype=torch.float64) for d in (6, 5, 4)]

    def lin(layer: torch.nn.Linear, x: torch.Tensor) -> torch.Tensor:
        return x @ layer.weight.detach().T + layer.bias.detach()

    keys = [lin(fusion.key[m], features[m]) for m in range(3)]
    sources = [features[0], keys[1], keys[2]] if variant == "abaw2" else features
    queries = [lin(fusion.query[m], sources[m]) for m in range(3)]
    values = [lin(fusion.value[m], sources[m]) for m in range(3)]
    expected_rows = []
    for n in range(7):
        k = torch.stack([key[n] for key in keys])
        q = torch.stack([query[n] for query in queries])
        v = torch.stack([value[n] for value in values])
        scores = (k @ q.T if variant == "abaw2" else q @ k.T) / 3**0.5
        attended = torch.softmax(scores, dim=-1) @ v + v
        normed = (attended - attended.mean()) / torch.sqrt(attended.var(unbiased=False) + 1e-5)
        normed = normed * fusion.norm.weight.detach() + fusion.norm.bias.detach()
        expected_rows.append(torch.cat([features[0][n], normed.reshape(-1)]))
    with torch.no_grad():
        out = fusion(features)
    torch.testing.assert_close(out, torch.stack(expected_rows), rtol=0, atol=1e-12)
    # abaw2's aural query layers read 3-D keys, paper's read the 5-D / 4-D features.
    assert [layer.in_features for layer in fusion.query] == ([6, 3, 3] if variant == "abaw2" else [6, 5, 4])


def test_unimodal_forward_and_validation() -> None:
    model = build_model(model_config("unimodal", backbone="ir-tiny", fusion=None)).eval()
    frames, vggish, mfcc = random_inputs(2, 5, seed=0)
    with torch.no_grad():
        assert model(frames).shape == (2, 5)
    with pytest.raises(InvalidInputError, match="frames only"):
        model(frames, vggish=vggish, mfcc=mfcc)
    with pytest.raises(InvalidInputError, match=r"\(B, L, 3, 40, 40\)"):
        model(frames[:, :, :, :32, :32])


def test_multimodal_validation() -> None:
    model = build_model(model_config("multimodal", backbone="ir-tiny")).eval()
    frames, vggish, mfcc = random_inputs(2, 5, seed=0)
    with pytest.raises(InvalidInputError, match="needs vggish"):
        model(frames)
    with pytest.raises(InvalidInputError, match=r"mfcc must be \(B, L, 39\)"):
        model(frames, vggish=vggish, mfcc=mfcc[..., :13])
    with pytest.raises(InvalidInputError, match="covers"):
        model(frames, vggish=vggish[:, :4], mfcc=mfcc)


def test_config_round_trip_and_validation() -> None:
    config = model_config("multimodal", backbone="ir-small", fusion="abaw2")
    assert ModelConfig.from_dict(config.to_dict()) == config
    with pytest.raises(InvalidInputError, match="unknown keys"):
        ModelConfig.from_dict({**config.to_dict(), "extra": 1})
    with pytest.raises(InvalidInputError, match="choose one of ir50"):
        model_config("unimodal", backbone="resnet18", fusion=None)
    with pytest.raises(InvalidInputError, match="paper, abaw2"):
        model_config("multimodal", fusion="late")
    assert config.receptive_field == 121


def test_model_exports_to_onnx_with_dynamic_batch_and_length(tmp_path) -> None:
    """No data-dependent control flow in forward: the graph runs on other shapes than it was traced with."""
    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    torch.manual_seed(3)
    model = build_model(model_config("multimodal", backbone="ir-tiny", fusion="abaw2")).eval()
    frames, vggish, mfcc = random_inputs(2, 8, seed=3)
    path = tmp_path / "model.onnx"
    batch, length = torch.export.Dim("batch"), torch.export.Dim("length")
    dims = {0: batch, 1: length}
    torch.onnx.export(
        model,
        (frames,),
        str(path),
        kwargs={"vggish": vggish, "mfcc": mfcc},
        input_names=["frames", "vggish", "mfcc"],
        dynamic_shapes={"frames": dims, "vggish": dims, "mfcc": dims},
        dynamo=True,
        verbose=False,
    )
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    frames, vggish, mfcc = random_inputs(3, 13, seed=4)
    (onnx_out,) = session.run(None, {"frames": frames.numpy(), "vggish": vggish.numpy(), "mfcc": mfcc.numpy()})
    with torch.no_grad():
        torch_out = model(frames, vggish=vggish, mfcc=mfcc).numpy()
    assert onnx_out.shape == (3, 13)
    assert abs(onnx_out - torch_out).max() < 1e-4
