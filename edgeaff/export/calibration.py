"""Which prepared trials calibrate INT8 and which measure accuracy, and the calibration frames (no torch).

The data are read through the one prepared-data reader, :mod:`edgeaff.runtime.artifacts.prepared`, which checks
the dataset's format, schema version and array shapes. The dataset must have been prepared with the checkpoints'
face crop and audio feature widths.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from edgeaff.runtime.artifacts.prepared import TRAIN_PARTITION, VALIDATION_PARTITION, PreparedDataset
from edgeaff.runtime.errors import InvalidInputError
from edgeaff.runtime.spec import FeatureSpec


def check_features(dataset: PreparedDataset, spec: FeatureSpec) -> None:
    """Refuse prepared data whose face crops or audio features differ from what the models take.

    Raises:
        InvalidInputError: naming the first difference.
    """
    ours, theirs = spec, dataset.feature_spec
    for what, wanted, found in (
        ("face crops", ours.face, theirs.face),
        ("MFCC features", ours.mfcc, theirs.mfcc),
        ("VGGish embedding width", ours.vggish.embedding_dim, theirs.vggish.embedding_dim),
    ):
        if wanted != found:
            raise InvalidInputError(
                f"--calib {dataset.root}: its {what} ({found}) differ from the models' ({wanted}); prepare the data "
                "with the models' feature spec"
            )


def split_trials(dataset: PreparedDataset) -> tuple[list[str], list[str]]:
    """(calibration trials, evaluation trials): the Train_Set and the Validation_Set trials, sorted.

    When one partition is empty the other serves both; a dataset without either uses all its trials for both.
    """
    names = sorted(dataset.trials)
    train = [n for n in names if dataset.trials[n].partition == TRAIN_PARTITION]
    validation = [n for n in names if dataset.trials[n].partition == VALIDATION_PARTITION]
    return (train or validation or names), (validation or train or names)


def check_labelled(dataset: PreparedDataset, trials: Sequence[str]) -> None:
    """Refuse evaluation trials without labels before anything is exported (the accuracy check needs them).

    Raises:
        InvalidInputError: naming the first unlabelled trial.
    """
    for name in trials:
        if dataset.arrays(name).label is None:
            raise InvalidInputError(
                f"--calib {dataset.root}: trial '{name}' has no labels (label.npy); the accuracy check needs labelled "
                "Validation_Set trials"
            )


def spread(dataset: PreparedDataset, trials: Sequence[str], *, count: int) -> dict[str, np.ndarray]:
    """About ``count`` frame indices spread evenly over the trials' frames taken end to end: ``{trial: indices}``.

    Raises:
        InvalidInputError: the trials have no frames, or ``count`` is below 1.
    """
    if count < 1:
        raise InvalidInputError(f"calibration needs at least 1 example, got {count}")
    lengths = [dataset.trials[name].length for name in trials]
    total = sum(lengths)
    if total == 0:
        raise InvalidInputError("the calibration data has no frames")
    picks = np.unique(np.linspace(0, total - 1, num=min(count, total)).round().astype(np.int64))
    starts = np.cumsum([0, *lengths])
    chosen = {}
    for name, start, stop in zip(trials, starts[:-1], starts[1:], strict=True):
        local = picks[(picks >= start) & (picks < stop)] - start
        if local.size:
            chosen[name] = local
    return chosen


def in_batches(rows: np.ndarray, batch: int) -> list[np.ndarray]:
    """``rows`` cut into consecutive batches of ``batch`` (the last one shorter).

    Raises:
        InvalidInputError: ``batch`` below 1.
    """
    if batch < 1:
        raise InvalidInputError(f"calibration needs batch >= 1, got {batch}")
    return [rows[i : i + batch] for i in range(0, len(rows), batch)]


def calibration_batches(
    dataset: PreparedDataset, trials: Sequence[str], *, frames: int, batch: int
) -> list[np.ndarray]:
    """About ``frames`` real face crops spread evenly over ``trials``, in batches of ``batch`` (uint8).

    Raises:
        InvalidInputError: the trials have no frames, or ``frames``/``batch`` is below 1.
    """
    if frames < 1 or batch < 1:
        raise InvalidInputError(f"calibration needs frames >= 1 and batch >= 1, got {frames} and {batch}")
    picked = spread(dataset, trials, count=frames)
    stacked = np.concatenate([np.asarray(dataset.arrays(name).frame[local]) for name, local in picked.items()])
    return in_batches(stacked, batch)
