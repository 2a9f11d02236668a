"""VGGish: the port's forward semantics without its final ReLU, weight loading and errors, ONNX parity."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch.nn import functional as nnf

from edgeaff.runtime.errors import InvalidInputError
from edgeaff.train.checkpoint import tensor_digest
from edgeaff.train.vggish import (
    RELEASED_WEIGHTS_NAME,
    VGGish,
    check_vggish_state_dict,
    expected_state_shapes,
    load_vggish,
    random_vggish_state_dict,
    vggish_weights_help,
)

RANDOM3_BIAS0 = -0.008520630188286304


@pytest.fixture(scope="module")
def random_model() -> tuple[VGGish, object]:
    return load_vggish("random:3")


def port_forward(state: dict[str, torch.Tensor], examples: torch.Tensor) -> torch.Tensor:
    """torchvggish's VGG.forward written out with functional ops: (N,1,96,64) input, the port's two transposes
    and view, then fc-ReLU-fc-ReLU-fc (the port's final ReLU left out)."""
    x = examples[:, None, :, :]
    for i in (0, 3, 6, 8, 11, 13):
        x = nnf.relu(nnf.conv2d(x, state[f"features.{i}.weight"], state[f"features.{i}.bias"], padding=1))
        if i in (0, 3, 8, 13):
            x = nnf.max_pool2d(x, 2, 2)
    x = torch.transpose(x, 1, 3)
    x = torch.transpose(x, 1, 2)
    x = x.contiguous().view(x.size(0), -1)
    x = nnf.relu(nnf.linear(x, state["embeddings.0.weight"], state["embeddings.0.bias"]))
    x = nnf.relu(nnf.linear(x, state["embeddings.2.weight"], state["embeddings.2.bias"]))
    return nnf.linear(x, state["embeddings.4.weight"], state["embeddings.4.bias"])


def test_layout_is_the_ports() -> None:
    shapes = expected_state_shapes()
    assert shapes["features.0.weight"] == (64, 1, 3, 3)
    assert shapes["features.13.weight"] == (512, 512, 3, 3)
    assert shapes["embeddings.0.weight"] == (4096, 12288)
    assert shapes["embeddings.4.weight"] == (128, 4096)
    assert len(shapes) == 18


def test_forward_matches_port_semantics_without_final_relu(random_model: tuple[VGGish, object]) -> None:
    model, _ = random_model
    examples = torch.randn(3, 96, 64, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        ours = model(examples)
        theirs = port_forward(model.state_dict(), examples)
    assert ours.shape == (3, 128)
    # Tolerance: float32 accumulation-order differences only (outputs are O(1)).
    torch.testing.assert_close(ours, theirs, rtol=0, atol=1e-5)
    assert (ours < 0).any(), "raw embedding must keep negative values (no final ReLU)"


def test_flatten_order_matters(random_model: tuple[VGGish, object]) -> None:
    """Flattening NCHW instead of NHWC gives different numbers: the test above would catch a wrong order."""
    model, _ = random_model
    state = model.state_dict()
    examples = torch.randn(2, 96, 64, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        x = examples[:, None]
        for i in (0, 3, 6, 8, 11, 13):
            x = nnf.relu(nnf.conv2d(x, state[f"features.{i}.weight"], state[f"features.{i}.bias"], padding=1))
            if i in (0, 3, 8, 13):
                x = nnf.max_pool2d(x, 2, 2)
        nchw = x.flatten(1)
        nhwc = x.permute(0, 2, 3, 1).flatten(1)
    assert not torch.allclose(nchw, nhwc)


def test_random_weights_are_deterministic_and_recorded(random_model: tuple[VGGish, object]) -> None:
    model, info = random_model
    again = random_vggish_state_dict(3)
    assert all(torch.equal(value, again[key]) for key, value in model.state_dict().items())
    assert not torch.equal(again["features.0.weight"], random_vggish_state_dict(4)["features.0.weight"])
    assert not model.training
    assert info.source == "random:3" and info.is_random and not info.is_released_port
    assert info.sha256 == tensor_digest(again)
    # A fixed value pins the generator across runs and machines (numpy PCG64 + uniform float32 draws).
    assert float(again["embeddings.4.bias"][0]) == pytest.approx(RANDOM3_BIAS0, abs=0)


def test_loads_a_state_dict_saved_in_the_port_layout(tmp_path: Path) -> None:
    state = random_vggish_state_dict(11)
    # A whole-port state dict can also carry the PCA post-processor's parameters; they are ignored.
    saved = dict(state, **{"pproc.pca_matrix": torch.zeros(128, 128), "pproc.pca_means": torch.zeros(128, 1)})
    path = tmp_path / RELEASED_WEIGHTS_NAME
    torch.save(saved, path)
    model, info = load_vggish(str(path))
    assert info.source == RELEASED_WEIGHTS_NAME and not info.is_random
    import hashlib

    assert info.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert not info.is_released_port  # our random file does not have the released file's hash
    assert not model.training
    for key, value in state.items():
        assert torch.equal(model.state_dict()[key], value)


def test_missing_file_names_the_path_and_where_weights_come_from(tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError, match=r"not found: .*nope\.pth.*vggish-10086976\.pth"):
        load_vggish(str(tmp_path / "nope.pth"))
    assert "never downloads" in vggish_weights_help() and "AudioSet" in vggish_weights_help()


def layout_without_memory() -> dict[str, torch.Tensor]:
    return {k: torch.zeros(()).expand(shape) for k, shape in expected_state_shapes().items()}


def test_wrong_keys_are_named() -> None:
    state = layout_without_memory()
    state["classifier.weight"] = state.pop("embeddings.4.weight")
    with pytest.raises(InvalidInputError, match=r"missing keys \['embeddings.4.weight'\].*'classifier.weight'"):
        check_vggish_state_dict(state, where="x.pth")


def test_wrong_shapes_are_named() -> None:
    state = layout_without_memory()
    state["embeddings.4.weight"] = torch.zeros(64, 4096)
    with pytest.raises(InvalidInputError, match=r"embeddings\.4\.weight \(64, 4096\) != \(128, 4096\)"):
        check_vggish_state_dict(state, where="x.pth")


def test_a_file_of_another_network_is_refused_by_name(tmp_path: Path) -> None:
    path = tmp_path / "resnet.pth"
    torch.save({"conv1.weight": torch.zeros(8, 3, 3, 3), "fc.weight": torch.zeros(2, 8)}, path)
    with pytest.raises(InvalidInputError, match=r"resnet\.pth: not a VGGish state dict.*'conv1.weight'"):
        load_vggish(str(path))


@pytest.mark.parametrize("spec", ["random:", "random:x", "random:-1"])
def test_malformed_random_seed(spec: str) -> None:
    with pytest.raises(InvalidInputError, match="random:SEED"):
        load_vggish(spec)


def test_onnx_export_with_dynamic_batch_matches_torch(random_model: tuple[VGGish, object], tmp_path: Path) -> None:
    ort = pytest.importorskip("onnxruntime")
    model, _ = random_model
    path = tmp_path / "vggish.onnx"
    batch = torch.export.Dim("batch", min=1, max=1024)
    torch.onnx.export(
        model,
        (torch.randn(2, 96, 64),),
        str(path),
        input_names=["examples"],
        output_names=["embedding"],
        dynamic_shapes={"examples": {0: batch}},
        dynamo=True,
    )
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    for n in (1, 5):
        x = np.random.default_rng(n).standard_normal((n, 96, 64)).astype(np.float32)
        (got,) = session.run(None, {"examples": x})
        with torch.no_grad():
            want = model(torch.from_numpy(x)).numpy()
        assert got.shape == (n, 128)
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-4)


def test_static_layout_equals_the_modules_state_dict() -> None:
    assert expected_state_shapes() == {k: tuple(v.shape) for k, v in VGGish().state_dict().items()}
