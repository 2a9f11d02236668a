"""The one torch fixture of the pipeline tests: three random ir-tiny PyTorch models exported by ``edgeaff export``,
kept beside their bundle so that a test can compare the runtime's numbers with the models'.

The layout is the tiny bundle's (``infer_support.MODELS``): valence multimodal folds 0 and 1, arousal unimodal
fold 0, sharing their frozen trunk as trained folds do. Exporting takes about a minute on two cores, so it is built
once, and only when a test asks for it. Where torch is absent the fixture skips its tests: torch, training and the
exporter are imported inside it, never when this module is imported (``conftest.py`` registers the fixture in the
torch-free environment too).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from infer_support import MODELS

from edgeaff.runtime.spec import AudioNormalization, ScalarStats


@dataclasses.dataclass(frozen=True)
class PytorchBundle:
    """The exported bundle and the PyTorch models (manifest order) with their audio statistics."""

    path: Path
    models: list[Any]  # edgeaff.train.model.EmotionModel, in eval mode
    normalizations: list[AudioNormalization | None]

    def predict(self, frames: np.ndarray, vggish: np.ndarray, mfcc: np.ndarray) -> np.ndarray:
        """Every model in PyTorch on one window of prepared data: (L, 48, 48, 3) uint8 crops, raw (L, 128) VGGish
        and (L, 39) MFCC rows → (L, M) predictions; the crops are cut and scaled as in the reference (§4.6)."""
        import torch

        crops = frames[:, 4:44, 4:44].astype(np.float32)
        scaled = torch.from_numpy(((crops / 255.0 - 0.5) / 0.5).transpose(0, 3, 1, 2).astype(np.float32))
        out = np.zeros((len(frames), len(self.models)))
        with torch.no_grad():
            for m, (model, stats) in enumerate(zip(self.models, self.normalizations, strict=True)):
                audio = {}
                if stats is not None:
                    v = (vggish - stats.vggish.mean) / stats.vggish.std
                    c = (mfcc - stats.mfcc.mean) / stats.mfcc.std
                    audio = {"vggish": torch.from_numpy(v[None]).float(), "mfcc": torch.from_numpy(c[None]).float()}
                out[:, m] = model(scaled[None], **audio)[0].numpy()
        return out


def _models() -> tuple[list[Any], list[AudioNormalization | None]]:
    import torch

    from edgeaff.train import build_model, model_config

    models: list[Any] = []
    stats: list[AudioNormalization | None] = []
    trunk = None
    for index, (_, _, kind) in enumerate(MODELS):
        torch.manual_seed(100 + index)
        model = build_model(model_config(kind, backbone="ir-tiny", fusion="paper" if kind == "multimodal" else None))
        model.train()
        with torch.no_grad():  # non-trivial BatchNorm statistics
            model.backbone(torch.rand(8, 3, 40, 40, generator=torch.Generator().manual_seed(index)) * 2 - 1)
        model.eval()
        released = {p for group in model.backbone.finetune_groups() for p in group}
        state = model.backbone.state_dict()
        frozen = {k: v for k, v in state.items() if not any(k.startswith(p + ".") for p in released)}
        if trunk is None:
            trunk = frozen
        else:
            model.backbone.load_state_dict(trunk, strict=False)  # the folds share their frozen trunk, as trained
        models.append(model)
        stats.append(
            AudioNormalization(mfcc=ScalarStats(2.0 + index, 9.0), vggish=ScalarStats(-0.1 * index, 0.6))
            if kind == "multimodal"
            else None
        )
    return models, stats


@pytest.fixture(scope="session")
def pytorch_bundle(tmp_path_factory: pytest.TempPathFactory) -> PytorchBundle:
    """Three random ir-tiny models, their checkpoints and the bundle ``edgeaff export`` makes of them (with the
    face detector); skipped where torch is not installed."""
    pytest.importorskip("torch")
    from edgeaff.export.exporter import ExportOptions, export_bundle
    from edgeaff.runtime.spec import FeatureSpec, VggishSpec
    from edgeaff.train import save_checkpoint
    from edgeaff.train.checkpoint import tensor_digest
    from edgeaff.train.vggish import random_vggish_state_dict

    root = tmp_path_factory.mktemp("pytorch-bundle")
    models, stats = _models()
    spec = dataclasses.replace(
        FeatureSpec(),
        vggish=VggishSpec(weights_source="random:0", weights_sha256=tensor_digest(random_vggish_state_dict(0))),
    )
    paths = []
    for model, normalization, (fold, dimension, kind) in zip(models, stats, MODELS, strict=True):
        path = root / f"fold{fold}_{dimension}_{kind}.safetensors"
        save_checkpoint(model, path, dimension=dimension, fold=fold, feature_spec=spec, normalization=normalization)
        paths.append(path)
    bundle = export_bundle(paths, root / "bundle", options=ExportOptions(parity_frames=4)).path
    return PytorchBundle(bundle, models, stats)
