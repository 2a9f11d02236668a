"""What the benchmark scripts build before they measure: random-weight fold checkpoints, synthetic media, bundles.

Shared by ``export_speed.py``, ``reference_speed.py`` and ``run_scenarios.py`` (needs torch and the export extra).

* :func:`build_models`: fold models with random weights whose BatchNorm statistics are settled, all sharing one
  frozen trunk (what training with the paper's recipe produces), so the exporter shares it too.
* :func:`save_models`: fold checkpoints with the feature spec of seeded random VGGish weights and audio statistics.
* :func:`synthetic_dataset`: ``edgeaff synth`` videos (a face and a voice) prepared with ``edgeaff prepare``;
  the videos are the end-to-end sources and the prepared trials calibrate INT8 and feed the PyTorch comparison.
* :func:`export`: an ``edgeaff export`` bundle, reused when it already exists with the same inputs.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import shutil
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from edgeaff.runtime.spec import AudioNormalization, FeatureSpec, ScalarStats, VggishSpec
from edgeaff.train import build_model, model_config, save_checkpoint
from edgeaff.train.model import EmotionModel

VGGISH_SOURCE = "random:0"
DIMENSIONS = ("valence", "arousal")
REPO = Path(__file__).resolve().parent.parent


def random_vggish_spec() -> FeatureSpec:
    """The default feature spec with VGGish identified as the seeded random weights ``random:0``."""
    from edgeaff.train.checkpoint import tensor_digest
    from edgeaff.train.vggish import random_vggish_state_dict

    digest = tensor_digest(random_vggish_state_dict(0))
    return dataclasses.replace(FeatureSpec(), vggish=VggishSpec(weights_source=VGGISH_SOURCE, weights_sha256=digest))


def build_models(
    count: int, *, backbone: str, kind: str = "multimodal", seed: int = 0, share_trunk: bool = True
) -> list[EmotionModel]:
    """``count`` models with different random weights and settled BatchNorm statistics, in eval mode.

    With ``share_trunk`` every model gets the first model's frozen trunk (the layers the paper never fine-tunes),
    exactly as folds trained from one pretrained backbone have it.
    """
    fusion = "paper" if kind == "multimodal" else None
    models = []
    for index in range(count):
        torch.manual_seed(seed + index)
        model = build_model(model_config(kind, backbone=backbone, fusion=fusion))
        model.train()
        with torch.no_grad():
            model.backbone(torch.rand(16, 3, 40, 40) * 2 - 1)
        models.append(model.eval())
    if share_trunk:
        released = {p for group in models[0].backbone.finetune_groups() for p in group}
        trunk = {
            key: value
            for key, value in models[0].backbone.state_dict().items()
            if not any(key.startswith(prefix + ".") for prefix in released)
        }
        for model in models[1:]:
            model.backbone.load_state_dict(trunk, strict=False)
    return models


def fold_entries(folds: Sequence[int], dimensions: Sequence[str] = DIMENSIONS) -> list[tuple[int, str]]:
    """(fold, dimension) of every model, folds outer: 6 folds x 2 dimensions = the 12-network ensemble."""
    return [(fold, dimension) for fold in folds for dimension in dimensions]


def save_models(models: Sequence[EmotionModel], directory: Path, entries: Sequence[tuple[int, str]]) -> list[Path]:
    """Save fold checkpoints (random-VGGish feature spec; per-fold audio statistics for multimodal models)."""
    directory.mkdir(parents=True, exist_ok=True)
    spec = random_vggish_spec()
    paths = []
    for index, (model, (fold, dimension)) in enumerate(zip(models, entries, strict=True)):
        stats = AudioNormalization(
            mfcc=ScalarStats(0.5 + 0.1 * index, 9.0 + 0.2 * index), vggish=ScalarStats(-0.05 * index, 0.5)
        )
        path = directory / f"fold{fold}_{dimension}_{model.config.kind}.safetensors"
        save_checkpoint(
            model,
            path,
            dimension=dimension,
            fold=fold,
            feature_spec=spec,
            normalization=stats if model.config.multimodal else None,
        )
        paths.append(path)
    return paths


def synthetic_dataset(work: Path, *, videos: int = 5, seconds: float = 20.0, log: bool = True) -> tuple[Path, Path]:
    """``edgeaff synth`` (demo size, 480x360, 30 fps) then ``edgeaff prepare``; both reused when present.

    Returns:
        (the synthetic Aff-Wild2 root, the prepared directory).
    """
    from edgeaff.synth import generate_dataset
    from edgeaff.train.prepare import prepare_dataset

    root = work / f"synth-{videos}x{seconds:g}s"
    prepared = work / f"prepared-{videos}x{seconds:g}s"
    if not (root / "synth.json").is_file():
        started = time.perf_counter()
        generate_dataset(root, preset="demo", videos=videos, seconds=seconds, force=True, workers=2)
        _log(log, f"synthetic dataset in {time.perf_counter() - started:.0f} s: {root}")
    if not (prepared / "dataset.json").is_file():
        started = time.perf_counter()
        prepare_dataset(root, prepared, vggish_weights=VGGISH_SOURCE)
        _log(log, f"prepared in {time.perf_counter() - started:.0f} s: {prepared}")
    return root, prepared


def trimmed_trial(prepared: Path, trial: str, frames: int, work: Path) -> Path:
    """A copy of a prepared trial cut to its first ``frames`` rows (with ``trial.json`` giving its fps)."""
    target = work / f"{trial}-{frames}"
    if (target / "trial.json").is_file():
        return target
    source = prepared / trial
    document = json.loads((prepared / "dataset.json").read_text())
    fps = float(document["trials"][trial].get("fps", 30.0))
    staging = work / f".{trial}-{frames}.tmp"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    for name in ("frame", "mfcc", "vggish", "label"):
        array = np.load(source / f"{name}.npy", mmap_mode="r")
        if len(array) < frames:
            raise ValueError(f"trial {trial} has {len(array)} frames, fewer than {frames}")
        np.save(staging / f"{name}.npy", np.ascontiguousarray(array[:frames]))
    (staging / "trial.json").write_text(json.dumps({"fps": fps, "length": frames, "source": trial}))
    shutil.rmtree(target, ignore_errors=True)
    staging.rename(target)
    return target


def export(
    checkpoints: Sequence[Path],
    output: Path,
    *,
    fp16: bool = False,
    int8: bool = False,
    calib: Path | None = None,
    log: bool = True,
) -> Path:
    """An ``edgeaff export`` bundle of ``checkpoints``; reused when one exists for the same files, options and
    exporter (the code of ``edgeaff.export`` and of the runtime's artifact formats: a bundle made by an earlier
    exporter would measure earlier graphs)."""
    from edgeaff.export.exporter import ExportOptions, export_bundle

    key = hashlib.sha256()
    for path in checkpoints:
        key.update(hashlib.sha256(path.read_bytes()).digest())
    key.update(json.dumps([fp16, int8, str(calib)]).encode())
    for source in _exporter_sources():
        key.update(source.relative_to(REPO).as_posix().encode() + b"\0" + source.read_bytes())
    stamp = output.with_name(output.name + ".inputs.sha256")
    if stamp.is_file() and stamp.read_text().strip() == key.hexdigest():
        return output
    started = time.perf_counter()
    options = ExportOptions(
        fp16=fp16, int8=int8, calib=calib, force=True, parity_frames=8, evaluation_frames_per_trial=300
    )
    export_bundle(list(checkpoints), output, options=options, log=lambda line: _log(log, f"  export: {line}"))
    stamp.write_text(key.hexdigest() + "\n")
    _log(log, f"exported {len(checkpoints)} models in {time.perf_counter() - started:.0f} s: {output}")
    return output


def _exporter_sources() -> list[Path]:
    """The files whose code decides what an export writes, in a fixed order."""
    package = REPO / "edgeaff"
    folders = [package / "export", package / "runtime" / "artifacts", package / "train"]
    kinds = {".py", ".json", ".tflite"}
    return sorted(p for folder in folders for p in folder.rglob("*") if p.is_file() and p.suffix in kinds)


def per_fold_visual_graph(models: Sequence[EmotionModel], path: Path) -> Path:
    """The visual graph with one whole backbone per model (what export writes when trunks differ); reused."""
    from edgeaff.export import visual_graph
    from edgeaff.export.torch2onnx import export_module
    from edgeaff.runtime.artifacts.manifest import TensorEntry
    from edgeaff.runtime.spec import FaceSpec

    if path.is_file():
        return path
    plan = visual_graph.TrunkPlan(
        False, tuple((i,) for i in range(len(models))), ("",) * len(models),
        visual_graph.trunk_unit_count(models[0].backbone),
    )  # fmt: skip
    embedding = models[0].config.backbone.embedding_dim
    staging = path.with_name(path.name + ".tmp")
    export_module(
        visual_graph.VisualEnsemble(list(models), FaceSpec(), plan),
        staging,
        name="visual",
        inputs=[TensorEntry("frames", ("frames", 48, 48, 3), "uint8")],
        outputs=[TensorEntry("embeddings", ("frames", len(models), embedding), "float32")],
        example=[torch.zeros(2, 48, 48, 3, dtype=torch.uint8)],
        opset=18,
    )
    staging.rename(path)
    return path


def _log(enabled: bool, line: str) -> None:
    if enabled:
        print(line, flush=True)
