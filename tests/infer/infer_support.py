"""Session fixtures and helpers of the runtime tests: a tiny exported bundle (built with torch), test videos, a
torch-free CLI.

The bundle holds three random ir-tiny models: valence multimodal folds 0 and 1 (two folds to ensemble) and arousal
unimodal fold 0, plus the shipped face detector. Exporting takes a while on two cores, so it is built once.
"""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from media_fixtures import face_frames, speech, write_media
from torch_block import BLOCK_TORCH

from edgeaff.export.exporter import ExportOptions, export_bundle
from edgeaff.runtime import Outputs, Pipeline, Results, write_results
from edgeaff.runtime.spec import AudioNormalization, FeatureSpec, ScalarStats, VggishSpec
from edgeaff.train import build_model, model_config, save_checkpoint
from edgeaff.train.checkpoint import tensor_digest
from edgeaff.train.model import EmotionModel
from edgeaff.train.vggish import random_vggish_state_dict

MODELS = [("multimodal", 0, "valence"), ("multimodal", 1, "valence"), ("unimodal", 0, "arousal")]
FACE_VIDEO_FPS = 25
FACE_VIDEO_FRAMES = 137  # 5.48 s: the speech fixture is 5.5 s
HIDDEN = range(50, 90)  # frames where the face is out of the picture


@dataclasses.dataclass(frozen=True)
class TinyBundle:
    """The exported bundle and the PyTorch models (manifest order) with their audio statistics."""

    path: Path
    models: list[EmotionModel]
    normalizations: list[AudioNormalization | None]


def _models() -> tuple[list[EmotionModel], list[AudioNormalization | None]]:
    models, stats = [], []
    trunk = None
    for index, (kind, _, _) in enumerate(MODELS):
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
def tiny_bundle(tmp_path_factory: pytest.TempPathFactory) -> TinyBundle:
    root = tmp_path_factory.mktemp("infer-bundle")
    models, stats = _models()
    spec = dataclasses.replace(
        FeatureSpec(),
        vggish=VggishSpec(weights_source="random:0", weights_sha256=tensor_digest(random_vggish_state_dict(0))),
    )
    paths = []
    for model, normalization, (kind, fold, dimension) in zip(models, stats, MODELS, strict=True):
        path = root / f"fold{fold}_{dimension}_{kind}.safetensors"
        save_checkpoint(model, path, dimension=dimension, fold=fold, feature_spec=spec, normalization=normalization)
        paths.append(path)
    bundle = export_bundle(paths, root / "bundle", options=ExportOptions(parity_frames=4)).path
    return TinyBundle(bundle, models, stats)


@pytest.fixture(scope="session")
def face_video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The astronaut's face (hidden in frames 50-89) at 25 fps, 320×240, with the speech fixture as its sound."""
    path = tmp_path_factory.mktemp("media") / "astronaut.mp4"
    return write_media(
        path, face_frames(lambda i: i not in HIDDEN), count=FACE_VIDEO_FRAMES, rate=FACE_VIDEO_FPS, audio=speech()
    )


def run_without_torch(args: list[str], *, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """``edgeaff ARGS`` in a fresh interpreter where ``import torch`` fails."""
    code = BLOCK_TORCH + f"from edgeaff.cli import main\nmain({args!r})\n"
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=timeout, check=False, cwd=Path.cwd()
    )


def read_csv(path: Path) -> tuple[list[str], np.ndarray]:
    """Header and float rows of a result CSV."""
    lines = path.read_text().strip().splitlines()
    return lines[0].split(","), np.array([[float(x) for x in line.split(",")] for line in lines[1:]])


def infer_files(
    source: object,
    bundle: Path,
    out: Path,
    *,
    outputs: Outputs | None = None,
    name: str | None = None,
    fps: float | None = None,
    audio: Path | None = None,
    timeout_s: float = 10.0,
    max_frames: int | None = None,
    **settings: Any,
) -> Results:
    """What ``edgeaff infer`` does, through the public API: a pipeline and :func:`write_results`."""
    outputs = outputs or Outputs()
    settings.setdefault("per_model", outputs.per_model)
    settings.setdefault("images", outputs.overlay)
    with Pipeline(bundle, **settings) as pipeline:
        run = pipeline.run(source, fps=fps, audio=audio, timeout_s=timeout_s, max_frames=max_frames)  # type: ignore[arg-type]
        return write_results(run, out, name=name, outputs=outputs, echo=lambda _: None, show=lambda _: None)
