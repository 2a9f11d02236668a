"""Accuracy of a bundle's precision variants on prepared data, with ONNX Runtime on the CPU (no torch).

For each evaluation trial: the visual graph embeds every frame, the windowed temporal graph runs on the windows of
:func:`~edgeaff.runtime.pipeline.windows.window_starts` (the rule training and the runtime use) and overlapping
predictions are averaged per frame by :class:`~edgeaff.runtime.pipeline.windows.OverlapAverager`
(``reference.md`` §6.1). CCC is :func:`edgeaff.runtime.metrics.ccc`. Trials are read through the one prepared-data
reader (:mod:`edgeaff.runtime.artifacts.prepared`).
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from edgeaff.runtime.artifacts.manifest import Dimension
from edgeaff.runtime.artifacts.prepared import PreparedDataset, TrialArrays, label_column
from edgeaff.runtime.backends.base import Runner
from edgeaff.runtime.backends.ort import OrtRunner
from edgeaff.runtime.errors import InvalidInputError
from edgeaff.runtime.metrics import ccc
from edgeaff.runtime.pipeline.windows import OverlapAverager, window_starts

VISUAL_BATCH = 64


@dataclasses.dataclass(frozen=True)
class GraphPaths:
    """The visual and windowed temporal graph files of one precision, and its VGGish graph when the VGGish features
    are computed from log-mel examples rather than read from the prepared data."""

    visual: Path
    temporal: Path
    vggish: Path | None = None


def embed_frames(runner: Runner, frames: np.ndarray) -> np.ndarray:
    """(N, S, S, 3) uint8 → (N, M, E) with the visual graph, in batches."""
    parts = [
        runner.infer({"frames": np.ascontiguousarray(frames[i : i + VISUAL_BATCH])})["embeddings"]
        for i in range(0, len(frames), VISUAL_BATCH)
    ]
    return np.concatenate(parts)


def vggish_features(runner: Runner, examples: np.ndarray) -> np.ndarray:
    """(N, 96, 64) log-mel examples → (N, 128) raw VGGish features with the VGGish graph, in batches."""
    parts = [
        runner.infer({"log_mel": np.ascontiguousarray(examples[i : i + VISUAL_BATCH])})["vggish"]
        for i in range(0, len(examples), VISUAL_BATCH)
    ]
    return np.concatenate(parts)


def predict_trial(
    visual: Runner,
    temporal: Runner,
    trial: TrialArrays,
    *,
    window: int,
    hop: int,
    frames: int | None,
    audio: bool,
    vggish: Runner | None = None,
    log_mel: np.ndarray | None = None,
) -> np.ndarray:
    """Per-frame predictions (N, M) for the first ``frames`` frames of ``trial`` (all when ``None``).

    The VGGish features are the prepared ones, or, given ``vggish`` and the frames' ``log_mel`` examples, that
    graph's output.
    """
    count = trial.length if frames is None else min(frames, trial.length)
    embeddings = embed_frames(visual, np.asarray(trial.frame[:count]))
    features = np.asarray(trial.vggish)
    if vggish is not None and log_mel is not None:
        if len(log_mel) < count:
            raise InvalidInputError(f"{len(log_mel)} log-mel examples for {count} frames")
        features = vggish_features(vggish, log_mel[:count])
    stitched = OverlapAverager(count, channels=embeddings.shape[1])
    for start in window_starts(count, window=window, hop=hop):
        stop = min(start + window, count)
        feed = {"embeddings": embeddings[None, start:stop]}
        if audio:
            feed["vggish"] = np.ascontiguousarray(features[None, start:stop])
            feed["mfcc"] = np.asarray(trial.mfcc[None, start:stop])
        stitched.add(start, temporal.infer(feed)["predictions"][0])
    return stitched.result().astype(np.float32)


def predict(
    paths: GraphPaths,
    dataset: PreparedDataset,
    trials: Sequence[str],
    *,
    window: int,
    hop: int,
    frames_per_trial: int | None,
    audio: bool,
    log_mel: Mapping[str, np.ndarray] | None = None,
) -> np.ndarray:
    """Concatenated per-frame predictions (ΣN, M) over ``trials``; VGGish from ``log_mel`` when ``paths.vggish``."""
    with contextlib.ExitStack() as stack:
        visual = stack.enter_context(OrtRunner(paths.visual, threads=None))
        temporal = stack.enter_context(OrtRunner(paths.temporal, threads=None))
        vggish = None
        if paths.vggish is not None and log_mel is not None:
            vggish = stack.enter_context(OrtRunner(paths.vggish, threads=None))
        return np.concatenate(
            [
                predict_trial(
                    visual,
                    temporal,
                    dataset.arrays(t),
                    window=window,
                    hop=hop,
                    frames=frames_per_trial,
                    audio=audio,
                    vggish=vggish,
                    log_mel=None if log_mel is None else log_mel[t],
                )
                for t in trials
            ]
        )


def labels_for(
    dataset: PreparedDataset, trials: Sequence[str], dimensions: Sequence[Dimension | str], frames_per_trial: int | None
) -> np.ndarray:
    """(ΣN, M) labels: each model's column is its dimension's label.

    Raises:
        InvalidInputError: a trial has no labels.
    """
    columns = [label_column(d) for d in dimensions]
    parts = []
    for name in trials:
        label = dataset.arrays(name).label
        if label is None:
            raise InvalidInputError(
                f"prepared trial '{name}' in {dataset.root} has no labels; the accuracy check needs labelled trials"
            )
        parts.append(np.asarray(label[: frames_per_trial or len(label)])[:, columns])
    return np.concatenate(parts)


def compare_variants(
    variants: Mapping[str, GraphPaths],
    dataset: PreparedDataset,
    trials: Sequence[str],
    *,
    dimensions: Sequence[Dimension | str],
    window: int,
    hop: int,
    frames_per_trial: int | None,
    audio: bool,
    log_mel: Mapping[str, np.ndarray] | None = None,
) -> dict[str, Any]:
    """CCC against the labels per precision, and each reduced precision against FP32.

    With ``log_mel`` (each trial's examples), every precision computes its VGGish features with its own VGGish graph
    (``GraphPaths.vggish``), so a reduced-precision VGGish counts in its CCC.

    Returns:
        ``{"frames": n, "trials": [...], "fp32": {"ccc_labels": [...]}, "fp16": {"ccc_labels": [...],
        "ccc_vs_fp32": [...], "ccc_drop": [...], "max_abs_vs_fp32": x}, ...}`` with one entry per model.
    """
    labels = labels_for(dataset, trials, dimensions, frames_per_trial)
    predictions = {
        name: predict(
            paths,
            dataset,
            trials,
            window=window,
            hop=hop,
            frames_per_trial=frames_per_trial,
            audio=audio,
            log_mel=log_mel,
        )
        for name, paths in variants.items()
    }
    reference = predictions["fp32"]
    models = range(reference.shape[1])
    report: dict[str, Any] = {"frames": int(labels.shape[0]), "trials": list(trials)}
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
