"""Session fixtures and helpers of the runtime tests: a tiny bundle (built without torch), test videos, a
torch-free CLI.

The bundle (``tests/onnx_bundle.py``) holds three tiny ONNX models: valence multimodal folds 0 and 1 (two folds to
ensemble) and arousal unimodal fold 0, plus the shipped face detector. Their temporal graphs see
:data:`RECEPTIVE_FIELD` frames of history, as the reference's models do. Nothing here imports torch, training or
the exporter's PyTorch side, so this module works where torch is absent (CI's torch-free step runs ``tests/infer``);
the one fixture that exports PyTorch models lives in ``torch_bundle``.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from media_fixtures import face_frames, speech, write_media
from onnx_bundle import TinyBundle, build_bundle
from torch_block import BLOCK_TORCH

from edgeaff.runtime import Outputs, Pipeline, Results, write_results

__all__ = ["TinyBundle"]

MODELS = [(0, "valence", "multimodal"), (1, "valence", "multimodal"), (0, "arousal", "unimodal")]
RECEPTIVE_FIELD = 121  # the reference's temporal models see 121 frames (test_infer_modes relies on it)
FACE_VIDEO_FPS = 25
FACE_VIDEO_FRAMES = 137  # 5.48 s: the speech fixture is 5.5 s
HIDDEN = range(50, 90)  # frames where the face is out of the picture


@pytest.fixture(scope="session")
def tiny_bundle(tmp_path_factory: pytest.TempPathFactory) -> TinyBundle:
    """The tiny bundle (see the module docstring): ``.path``, ``.models`` (the manifest's model entries),
    ``.normalizations`` (each model's audio statistics) and numpy references of its graphs."""
    root = tmp_path_factory.mktemp("infer-bundle")
    return build_bundle(root, models=MODELS, face_detector=True, kernel=RECEPTIVE_FIELD, seed=7)


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
