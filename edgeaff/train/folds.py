"""The paper's six cross-validation folds, subject-independent, with per-fold audio normalisation.

Chunks: ``chunk 5`` is the official Validation_Set; the official Train_Set is cut into chunks 0-4 of roughly equal
size (frames). Trials that share a subject or a video (``_left``/``_right``) form one group and never straddle
chunks; groups are assigned greedily, largest first, to the chunk with the fewest frames (deterministic).

Fold k validates on chunk ``(5 - k) mod 6`` and trains on the other five — the reference's ``np.roll`` order
(reference §4.6): fold 0 is the official split, fold 1 validates on chunk 4, …, fold 5 on chunk 0.

Normalisation (fixes reference §7.10): one scalar mean and standard deviation (N-1) per audio feature over every
element of the fold's *training* trials; validation and deployment use those same numbers.

This module does not need torch.
"""

from __future__ import annotations

import dataclasses
import json
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from edgeaff.runtime.artifacts.prepared import TRAIN_PARTITION, VALIDATION_PARTITION, PreparedDataset, TrialInfo
from edgeaff.runtime.errors import InvalidInputError
from edgeaff.runtime.files import atomic_output, read_json
from edgeaff.runtime.spec import AudioNormalization, ScalarStats

FOLDS_FORMAT = "edgeaff-folds"
FOLDS_SCHEMA_VERSION = 1
NUM_FOLDS = 6


@dataclasses.dataclass(frozen=True)
class Fold:
    """One cross-validation fold."""

    fold: int
    train: tuple[str, ...]
    validation: tuple[str, ...]
    normalization: AudioNormalization | None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dictionary."""
        return {
            "fold": self.fold,
            "train": list(self.train),
            "validation": list(self.validation),
            "normalization": None if self.normalization is None else self.normalization.to_dict(),
        }


def _groups(trials: dict[str, TrialInfo]) -> list[list[str]]:
    """Connected components of 'same subject or same video'."""
    parent = {name: name for name in trials}

    def find(name: str) -> str:
        while parent[name] != name:
            parent[name] = parent[parent[name]]
            name = parent[name]
        return name

    for attribute in ("subject", "video"):
        first: dict[str, str] = {}
        for name in sorted(trials):
            key = getattr(trials[name], attribute)
            if key in first:
                parent[find(name)] = find(first[key])
            else:
                first[key] = name
    components: dict[str, list[str]] = defaultdict(list)
    for name in sorted(trials):
        components[find(name)].append(name)
    return sorted(components.values())


def split_chunks(trials: dict[str, TrialInfo]) -> list[list[str]]:
    """The six chunks: five balanced, subject-disjoint chunks of Train_Set, then the official Validation_Set."""
    unknown = sorted({t.partition for t in trials.values()} - {TRAIN_PARTITION, VALIDATION_PARTITION})
    if unknown:
        raise InvalidInputError(f"trials with partitions {unknown}; folds need Train_Set and Validation_Set trials")
    train = {name: info for name, info in trials.items() if info.partition == TRAIN_PARTITION}
    groups = _groups(train)
    groups.sort(key=lambda group: (-sum(train[n].length for n in group), group[0]))
    chunks: list[list[str]] = [[] for _ in range(NUM_FOLDS - 1)]
    sizes = [0] * (NUM_FOLDS - 1)
    for group in groups:
        target = min(range(len(chunks)), key=lambda i: (sizes[i], i))
        chunks[target].extend(group)
        sizes[target] += sum(train[n].length for n in group)
    validation = sorted(name for name, info in trials.items() if info.partition == VALIDATION_PARTITION)
    return [sorted(chunk) for chunk in chunks] + [validation]


def validation_chunk(fold: int) -> int:
    """Index of the chunk fold ``fold`` validates on (reference: last element of ``np.roll(arange(6), fold)``)."""
    return int(np.roll(np.arange(NUM_FOLDS), fold)[-1])


def _scalar_stats(dataset: PreparedDataset, trials: tuple[str, ...], feature: str) -> ScalarStats:
    """Mean and N-1 standard deviation over all elements, two passes in float64 over memory-mapped arrays."""
    total, count = 0.0, 0
    for trial in trials:
        values = getattr(dataset.arrays(trial), feature)
        total += float(np.sum(values, dtype=np.float64))
        count += int(values.size)
    mean = total / count
    squares = 0.0
    for trial in trials:
        values = np.asarray(getattr(dataset.arrays(trial), feature), dtype=np.float64)
        squares += float(np.sum((values - mean) ** 2))
    std = float(np.sqrt(squares / (count - 1))) if count > 1 else 0.0
    if not std > 0:
        raise InvalidInputError(f"{feature} features are constant over the training trials; check the prepared data")
    return ScalarStats(mean=mean, std=std)


def compute_folds(dataset: PreparedDataset) -> list[Fold]:
    """The six folds of ``dataset`` with their normalisation statistics (``None`` for a fold with an empty side)."""
    chunks = split_chunks(dataset.trials)
    folds = []
    for k in range(NUM_FOLDS):
        held_out = validation_chunk(k)
        validation = tuple(chunks[held_out])
        train = tuple(sorted(name for i, chunk in enumerate(chunks) if i != held_out for name in chunk))
        normalization = None
        if train and validation:
            normalization = AudioNormalization(
                mfcc=_scalar_stats(dataset, train, "mfcc"), vggish=_scalar_stats(dataset, train, "vggish")
            )
        folds.append(Fold(fold=k, train=train, validation=validation, normalization=normalization))
    return folds


def write_folds(dataset: PreparedDataset, folds: list[Fold]) -> Path:
    """Write ``folds.json`` beside ``dataset.json`` (atomically)."""
    path = dataset.root / "folds.json"
    document = {
        "format": FOLDS_FORMAT,
        "schema_version": FOLDS_SCHEMA_VERSION,
        "chunks": split_chunks(dataset.trials),
        "folds": [fold.to_dict() for fold in folds],
    }
    with atomic_output(path) as tmp:
        tmp.write_text(json.dumps(document, indent=1, sort_keys=True))
    return path


def load_folds(dataset: PreparedDataset) -> list[Fold]:
    """Read ``folds.json``, checking it still matches ``dataset.json``'s trials.

    Raises:
        InvalidInputError: missing, malformed or stale folds file.
    """
    path = dataset.root / "folds.json"
    if not path.is_file():
        raise InvalidInputError(f"{dataset.root} has no folds.json; re-run 'edgeaff prepare' to finish the dataset")
    try:
        document = read_json(path)
        if (
            not isinstance(document, dict)
            or document.get("format") != FOLDS_FORMAT
            or document.get("schema_version") != FOLDS_SCHEMA_VERSION
        ):
            raise InvalidInputError(f"{path}: not an edgeaff folds file of schema {FOLDS_SCHEMA_VERSION}")
        folds = [
            Fold(
                fold=int(entry["fold"]),
                train=tuple(entry["train"]),
                validation=tuple(entry["validation"]),
                normalization=None
                if entry["normalization"] is None
                else AudioNormalization.from_dict(entry["normalization"]),
            )
            for entry in document["folds"]
        ]
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise InvalidInputError(f"{path}: malformed folds file ({exc!r}); re-run 'edgeaff prepare'") from None
    listed = {name for fold in folds for name in (*fold.train, *fold.validation)}
    if listed != set(dataset.trials):
        raise InvalidInputError(f"{path} does not match dataset.json's trials; re-run 'edgeaff prepare'")
    return folds
