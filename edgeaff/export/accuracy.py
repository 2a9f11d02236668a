"""Accuracy of a bundle's precision variants on prepared data, with ONNX Runtime on the CPU (no torch).

For each evaluation trial: the visual graph embeds every frame, the windowed temporal graph runs on the reference's
windows (300 / hop 200, last window flush with the end) and overlapping predictions are averaged per frame
(``reference.md`` §6.1). CCC is Lin's concordance correlation coefficient with population moments.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from edgeaff.export.prepared_data import LABEL_COLUMNS, Trial, window_starts
from edgeaff.runtime.backends.base import Runner
from edgeaff.runtime.backends.ort import OrtRunner

VISUAL_BATCH = 64


def ccc(prediction: np.ndarray, target: np.ndarray) -> float:
    """Lin's concordance correlation coefficient of two 1-D series (population moments); 0 for constant series."""
    x = np.asarray(prediction, dtype=np.float64)
    y = np.asarray(target, dtype=np.float64)
    mean_x, mean_y = x.mean(), y.mean()
    covariance = np.mean((x - mean_x) * (y - mean_y))
    denominator = x.var() + y.var() + (mean_x - mean_y) ** 2
    return float(2.0 * covariance / denominator) if denominator > 0 else 0.0


@dataclasses.dataclass(frozen=True)
class GraphPaths:
    """The visual and windowed temporal graph files of one precision."""

    visual: Path
    temporal: Path


def embed_frames(runner: Runner, frames: np.ndarray) -> np.ndarray:
    """(N, S, S, 3) uint8 → (N, M, E) with the visual graph, in batches."""
    parts = [
        runner.infer({"frames": np.ascontiguousarray(frames[i : i + VISUAL_BATCH])})["embeddings"]
        for i in range(0, len(frames), VISUAL_BATCH)
    ]
    return np.concatenate(parts)


def predict_trial(
    visual: Runner, temporal: Runner, trial: Trial, *, window: int, hop: int, frames: int | None, audio: bool
) -> np.ndarray:
    """Per-frame predictions (N, M) for the first ``frames`` frames of ``trial`` (all when ``None``)."""
    count = trial.length if frames is None else min(frames, trial.length)
    embeddings = embed_frames(visual, np.asarray(trial.frames[:count]))
    total = np.zeros((count, embeddings.shape[1]), dtype=np.float64)
    covered = np.zeros(count, dtype=np.int64)
    for start in window_starts(count, window, hop):
        stop = min(start + window, count)
        feed = {"embeddings": embeddings[None, start:stop]}
        if audio:
            feed["vggish"] = np.asarray(trial.vggish[None, start:stop])
            feed["mfcc"] = np.asarray(trial.mfcc[None, start:stop])
        total[start:stop] += temporal.infer(feed)["predictions"][0]
        covered[start:stop] += 1
    return (total / covered[:, None]).astype(np.float32)


def predict(
    paths: GraphPaths, trials: Sequence[Trial], *, window: int, hop: int, frames_per_trial: int | None, audio: bool
) -> np.ndarray:
    """Concatenated per-frame predictions (ΣN, M) over ``trials``."""
    with OrtRunner(paths.visual, threads=None) as visual, OrtRunner(paths.temporal, threads=None) as temporal:
        return np.concatenate(
            [
                predict_trial(visual, temporal, t, window=window, hop=hop, frames=frames_per_trial, audio=audio)
                for t in trials
            ]
        )


def labels_for(trials: Sequence[Trial], dimensions: Sequence[str], frames_per_trial: int | None) -> np.ndarray:
    """(ΣN, M) labels: each model's column is its dimension's label."""
    columns = [LABEL_COLUMNS.index(d) for d in dimensions]
    parts = [np.asarray(t.labels[: frames_per_trial or t.length])[:, columns] for t in trials]
    return np.concatenate(parts)


def compare_variants(
    variants: Mapping[str, GraphPaths],
    trials: Sequence[Trial],
    *,
    dimensions: Sequence[str],
    window: int,
    hop: int,
    frames_per_trial: int | None,
    audio: bool,
) -> dict[str, Any]:
    """CCC against the labels per precision, and each reduced precision against FP32.

    Returns:
        ``{"frames": n, "trials": k, "fp32": {"ccc_labels": [...]}, "fp16": {"ccc_labels": [...],
        "ccc_vs_fp32": [...], "ccc_drop": [...], "max_abs_vs_fp32": x}, ...}`` with one entry per model.
    """
    labels = labels_for(trials, dimensions, frames_per_trial)
    predictions = {
        name: predict(paths, trials, window=window, hop=hop, frames_per_trial=frames_per_trial, audio=audio)
        for name, paths in variants.items()
    }
    reference = predictions["fp32"]
    models = range(reference.shape[1])
    report: dict[str, Any] = {"frames": int(labels.shape[0]), "trials": [t.name for t in trials]}
    base = [ccc(reference[:, m], labels[:, m]) for m in models]
    report["fp32"] = {"ccc_labels": base}
    for name, values in predictions.items():
        if name == "fp32":
            continue
        against_labels = [ccc(values[:, m], labels[:, m]) for m in models]
        report[name] = {
            "ccc_labels": against_labels,
            "ccc_vs_fp32": [ccc(values[:, m], reference[:, m]) for m in models],
            "ccc_drop": [b - v for b, v in zip(base, against_labels, strict=True)],
            "max_abs_vs_fp32": float(np.abs(values - reference).max()),
        }
    return report
