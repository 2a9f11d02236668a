"""Test helpers: random weights in the reference layout, small inputs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

SHARED = Path(__file__).resolve().parents[2] / "shared"


def random_reference_state_dict(layout: dict[str, tuple[int, ...]], seed: int) -> dict[str, torch.Tensor]:
    """Random float32 weights for a reference-format layout, with trained-looking statistics.

    BatchNorm running variances are positive, PReLU slopes small, weight-norm gains positive; the duplicated TCN
    keys (``net.0``/``net.4``) share the tensor of ``conv1``/``conv2`` exactly as in a real file.
    """
    rng = np.random.default_rng(seed)
    state: dict[str, torch.Tensor] = {}
    for key, shape in layout.items():
        if ".net.0." in key or ".net.4." in key:
            continue
        name = key.rsplit(".", 1)[-1]
        if name == "num_batches_tracked":
            value = np.array(1000, dtype=np.int64)
        elif name == "running_mean":
            value = rng.normal(0.0, 0.2, shape)
        elif name == "running_var":
            value = rng.uniform(0.5, 2.0, shape)
        elif name == "weight_g":
            value = rng.uniform(0.5, 1.5, shape)
        elif name == "weight_v":
            value = rng.normal(0.0, 1.0, shape)
        elif name == "weight" and len(shape) == 1:
            # BatchNorm / PReLU / GroupNorm scale
            value = rng.uniform(0.05, 0.4, shape) if _is_prelu(key) else rng.uniform(0.6, 1.4, shape)
        elif name == "weight" and key.startswith("ln."):
            value = rng.uniform(0.6, 1.4, shape)
        elif name == "weight":
            fan_in = int(np.prod(shape[1:]))
            value = rng.normal(0.0, 1.0 / np.sqrt(fan_in), shape)
        elif name == "bias":
            value = rng.normal(0.0, 0.1, shape)
        else:  # pragma: no cover - layout has no other parameter names
            raise AssertionError(key)
        dtype = torch.int64 if name == "num_batches_tracked" else torch.float32
        state[key] = torch.tensor(value, dtype=dtype)
    for key in layout:
        if ".net.0." in key:
            state[key] = state[key.replace(".net.0.", ".conv1.")]
        elif ".net.4." in key:
            state[key] = state[key.replace(".net.4.", ".conv2.")]
    return {key: state[key] for key in layout}


def _is_prelu(key: str) -> bool:
    return key.endswith("input_layer.2.weight") or ".res_layer.2." in key


def parse_shared_layouts() -> dict[str, dict[str, tuple[int, ...]]]:
    """Parse ``shared/ref_state_dict_keys.txt`` into {"multimodal": {key: shape}, "unimodal": {...}}."""
    text = (SHARED / "ref_state_dict_keys.txt").read_text()
    layouts: dict[str, dict[str, tuple[int, ...]]] = {}
    current: dict[str, tuple[int, ...]] | None = None
    for line in text.splitlines():
        if line.startswith("## MULTIMODAL"):
            current = layouts.setdefault("multimodal", {})
        elif line.startswith("## UNIMODAL"):
            current = layouts.setdefault("unimodal", {})
        elif line.startswith("## "):
            current = None
        elif current is not None and line and not line.startswith("#"):
            key, shape = line.split()
            current[key] = () if shape == "scalar" else tuple(int(x) for x in shape.split("x"))
    return layouts


def to_numpy64(state: dict[str, torch.Tensor]) -> dict[str, np.ndarray]:
    return {k: v.detach().double().numpy() for k, v in state.items()}


def random_inputs(
    batch: int, length: int, seed: int, size: int = 40
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Frames in [-1, 1] and normalised audio features, float32."""
    gen = torch.Generator().manual_seed(seed)
    frames = torch.rand(batch, length, 3, size, size, generator=gen) * 2 - 1
    vggish = torch.randn(batch, length, 128, generator=gen)
    mfcc = torch.randn(batch, length, 39, generator=gen)
    return frames, vggish, mfcc
