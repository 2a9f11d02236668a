"""Prepared datasets written directly in the `edgeaff prepare` layout (read back by the one reader,
:mod:`edgeaff.runtime.artifacts.prepared`).

:func:`write_prepared_dataset` writes given arrays (torch-free); :func:`make_prepared` writes learnable signals and
the folds: valence is drawn into the faces (brightness of a mouth-like band), arousal into the audio features (MFCC
c0 and a VGGish direction) and, weakly, into the faces. Used by training tests that do not need the media pipeline.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from edgeaff.runtime.artifacts.prepared import DATASET_FORMAT, DATASET_SCHEMA_VERSION, load_prepared_dataset
from edgeaff.runtime.spec import FeatureSpec


def smooth_curve(rng: np.random.Generator, length: int) -> np.ndarray:
    t = np.arange(length) / 30.0
    curve = sum(
        rng.uniform(0.2, 0.5) * np.sin(2 * np.pi * rng.uniform(0.02, 0.12) * t + rng.uniform(0, 6.3)) for _ in range(3)
    )
    return np.clip(curve, -1, 1).astype(np.float32)


def write_prepared_dataset(
    root: Path,
    trials: dict[str, tuple[str, dict[str, np.ndarray]]],
    *,
    spec: FeatureSpec | None = None,
    fps: float = 30.0,
) -> Path:
    """Write ``{trial: (partition, {"frame", "mfcc", "vggish"[, "label"]: array})}`` and ``dataset.json``."""
    entries = {}
    for name, (partition, arrays) in trials.items():
        directory = root / name
        directory.mkdir(parents=True)
        for key, array in arrays.items():
            np.save(directory / f"{key}.npy", array)
        length = len(arrays["frame"])
        entries[name] = {"partition": partition, "length": length, "fps": fps, "video": f"{name}.mp4", "subject": name}
    document = {
        "format": DATASET_FORMAT,
        "schema_version": DATASET_SCHEMA_VERSION,
        "feature_spec": (spec or FeatureSpec()).to_dict(),
        "trials": entries,
    }
    (root / "dataset.json").write_text(json.dumps(document))
    return root


def make_prepared(root: Path, *, subjects: int = 12, length: int = 360, seed: int = 0) -> Path:
    """Write ``subjects`` one-trial subjects (the last two in Validation_Set) and compute the folds."""
    from edgeaff.train.folds import compute_folds, write_folds

    rng = np.random.default_rng(seed)
    trials = {}
    for index in range(subjects):
        name = f"s{index:02d}"
        n = length + int(rng.integers(-80, 80))
        valence, arousal = smooth_curve(rng, n), smooth_curve(rng, n)
        base = rng.integers(60, 160, size=(1, 48, 48, 3))
        frames = np.repeat(base, n, axis=0).astype(np.float32)
        frames[:, 30:38, 12:36, :] = 128 + 110 * valence[:, None, None, None]
        frames[:, 10:14, 12:36, :] += 15 * arousal[:, None, None, None]
        frames += rng.normal(0, 6, frames.shape)
        mfcc = rng.normal(0, 1, (n, 39)).astype(np.float32) * 3
        mfcc[:, 0] = 20 * arousal + rng.normal(0, 2, n)
        vggish = rng.normal(0, 0.4, (n, 128)).astype(np.float32)
        vggish[:, :8] += arousal[:, None]
        partition = "Validation_Set" if index >= subjects - 2 else "Train_Set"
        trials[name] = (
            partition,
            {
                "frame": np.clip(frames, 0, 255).astype(np.uint8),
                "mfcc": mfcc.astype(np.float32),
                "vggish": vggish.astype(np.float32),
                "label": np.stack([valence, arousal], axis=1).astype(np.float32),
            },
        )
    write_prepared_dataset(root, trials)
    dataset = load_prepared_dataset(root)
    write_folds(dataset, compute_folds(dataset))
    return root
