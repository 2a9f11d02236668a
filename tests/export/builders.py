"""Tiny fold checkpoints and prepared-data directories for the export tests."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import torch
from prepared_fixture import write_prepared_dataset

from edgeaff.runtime.spec import AudioNormalization, FeatureSpec, ScalarStats, VggishSpec
from edgeaff.train import build_model, model_config, save_checkpoint
from edgeaff.train.checkpoint import tensor_digest
from edgeaff.train.model import EmotionModel
from edgeaff.train.vggish import random_vggish_state_dict

VGGISH_SOURCE = "random:0"


def tiny_feature_spec() -> FeatureSpec:
    """The default feature spec with VGGish identified as seeded random weights."""
    digest = tensor_digest(random_vggish_state_dict(0))
    return dataclasses.replace(FeatureSpec(), vggish=VggishSpec(weights_source=VGGISH_SOURCE, weights_sha256=digest))


def _settle_batchnorm(model: EmotionModel, seed: int) -> None:
    """Give BatchNorm non-trivial running statistics (one training-mode pass)."""
    gen = torch.Generator().manual_seed(seed)
    model.train()
    with torch.no_grad():
        model.backbone(torch.rand(8, 3, 40, 40, generator=gen) * 2 - 1)
    model.eval()


def tiny_models(specs: list[tuple[str, str | None]], *, seed: int = 0, share_trunk: bool = True) -> list[EmotionModel]:
    """ir-tiny models (kind, fusion) with different weights; the frozen trunk copied from the first when asked."""
    models = []
    for index, (kind, fusion) in enumerate(specs):
        torch.manual_seed(seed + index)
        model = build_model(model_config(kind, backbone="ir-tiny", fusion=fusion))
        _settle_batchnorm(model, seed + index)
        models.append(model)
    if share_trunk:
        units = models[0].backbone.finetune_groups()
        released = {p for group in units for p in group}
        trunk = {
            k: v for k, v in models[0].backbone.state_dict().items() if not any(k.startswith(p + ".") for p in released)
        }
        for model in models[1:]:
            model.backbone.load_state_dict(trunk, strict=False)
    return models


def save_models(
    models: list[EmotionModel],
    directory: Path,
    entries: list[tuple[int | None, str]],
    *,
    spec: FeatureSpec | None = None,
) -> list[Path]:
    """Save each model as a fold checkpoint (fold, dimension) with its own audio statistics."""
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for index, (model, (fold, dimension)) in enumerate(zip(models, entries, strict=True)):
        stats = AudioNormalization(
            mfcc=ScalarStats(1.0 + index, 8.0 + index), vggish=ScalarStats(-0.1 * index, 0.5 + 0.1 * index)
        )
        path = directory / f"fold{fold}_{dimension}_{model.config.kind}.safetensors"
        save_checkpoint(
            model,
            path,
            dimension=dimension,
            fold=fold,
            feature_spec=spec or tiny_feature_spec(),
            normalization=stats if model.config.multimodal else None,
            metrics={"ccc": 0.4 + 0.01 * index},
        )
        paths.append(path)
    return paths


def write_prepared(directory: Path, lengths: dict[str, tuple[str, int]], *, seed: int = 0) -> Path:
    """A prepared-data directory with random frames, audio and smooth random-walk labels."""
    rng = np.random.default_rng(seed)
    trials = {}
    for name, (partition, length) in lengths.items():
        arrays = {
            "frame": rng.integers(0, 256, (length, 48, 48, 3), dtype=np.uint8),
            "mfcc": rng.normal(1.0, 8.0, (length, 39)).astype(np.float32),
            "vggish": rng.normal(-0.1, 0.5, (length, 128)).astype(np.float32),
        }
        walk = np.cumsum(rng.normal(0, 0.05, (length, 2)), axis=0)
        trials[name] = (partition, {**arrays, "label": np.clip(walk, -1, 1).astype(np.float32)})
    return write_prepared_dataset(directory, trials)
