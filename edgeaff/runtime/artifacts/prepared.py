"""The prepared-dataset layout written by ``edgeaff prepare`` and read by training, export calibration and
``edgeaff infer --prepared``.

::

    PREPARED_DIR/dataset.json        format, schema version, feature spec, per-trial info, failures, versions
    PREPARED_DIR/folds.json          the six folds and each fold's audio normalisation (written by prepare)
    PREPARED_DIR/<trial>/frame.npy   (N, 48, 48, 3) uint8 RGB face crops (black where no face image exists)
    PREPARED_DIR/<trial>/mfcc.npy    (N, 39) float32, raw (not normalised)
    PREPARED_DIR/<trial>/vggish.npy  (N, 128) float32, raw VGGish embeddings
    PREPARED_DIR/<trial>/label.npy   (N, 2) float32 [valence, arousal] (:data:`LABEL_COLUMNS`; absent if unlabelled)
    PREPARED_DIR/<trial>/trial.json  the trial's entry, written last (a trial directory appears atomically)

Arrays are opened memory-mapped, so nothing here loads a whole dataset into RAM. This is the one reader of the
layout: training, export (calibration, accuracy) and ``edgeaff infer --prepared`` all read through it.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np

from edgeaff.runtime.artifacts.manifest import Dimension
from edgeaff.runtime.errors import InvalidInputError
from edgeaff.runtime.files import read_json
from edgeaff.runtime.spec import FeatureSpec

DATASET_FORMAT = "edgeaff-prepared-dataset"
DATASET_SCHEMA_VERSION = 1
FEATURE_FILES = ("frame", "mfcc", "vggish")
TRAIN_PARTITION = "Train_Set"
VALIDATION_PARTITION = "Validation_Set"
# The columns of label.npy.
LABEL_COLUMNS = (Dimension.VALENCE, Dimension.AROUSAL)


def label_column(dimension: Dimension | str) -> int:
    """The column of ``label.npy`` that holds ``dimension``.

    Raises:
        InvalidInputError: an unknown dimension.
    """
    return LABEL_COLUMNS.index(Dimension.parse(dimension))


@dataclasses.dataclass(frozen=True)
class TrialInfo:
    """One trial of a prepared dataset."""

    name: str
    partition: str
    length: int
    fps: float
    video: str
    subject: str


@dataclasses.dataclass(frozen=True)
class TrialArrays:
    """Memory-mapped arrays of one trial; ``label`` is ``None`` for unlabelled trials."""

    frame: np.ndarray
    mfcc: np.ndarray
    vggish: np.ndarray
    label: np.ndarray | None

    @property
    def length(self) -> int:
        """Number of frames."""
        return int(self.frame.shape[0])


def _load_array(path: Path, *, mmap: bool) -> np.ndarray:
    try:
        return np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)
    except FileNotFoundError:
        raise InvalidInputError(f"missing {path}; re-run 'edgeaff prepare' for this trial") from None
    except (ValueError, OSError) as exc:
        raise InvalidInputError(f"{path}: not a readable .npy array ({exc}); re-run 'edgeaff prepare'") from None


def load_trial_arrays(trial_dir: str | Path, *, spec: FeatureSpec | None = None, mmap: bool = True) -> TrialArrays:
    """Open one prepared trial directory and check shapes and dtypes against each other (and ``spec``).

    Raises:
        InvalidInputError: missing or unreadable files, or inconsistent shapes.
    """
    directory = Path(trial_dir)
    if not directory.is_dir():
        raise InvalidInputError(f"prepared trial directory not found: {directory}")
    spec = spec or FeatureSpec()
    frame = _load_array(directory / "frame.npy", mmap=mmap)
    mfcc = _load_array(directory / "mfcc.npy", mmap=mmap)
    vggish = _load_array(directory / "vggish.npy", mmap=mmap)
    label_path = directory / "label.npy"
    label = _load_array(label_path, mmap=mmap) if label_path.exists() else None
    size = spec.face.image_size
    n = frame.shape[0] if frame.ndim == 4 else -1
    expectations = [
        ("frame.npy", frame, (n, size, size, 3), np.uint8),
        ("mfcc.npy", mfcc, (n, spec.mfcc.dim), np.float32),
        ("vggish.npy", vggish, (n, spec.vggish.embedding_dim), np.float32),
    ]
    if label is not None:
        expectations.append(("label.npy", label, (n, len(LABEL_COLUMNS)), np.float32))
    for name, array, shape, dtype in expectations:
        if array.shape != shape or array.dtype != dtype:
            raise InvalidInputError(
                f"{directory / name}: expected shape {shape} {np.dtype(dtype).name}, got {array.shape} {array.dtype}"
            )
    if n < 1:
        raise InvalidInputError(f"{directory}: empty trial")
    return TrialArrays(frame=frame, mfcc=mfcc, vggish=vggish, label=label)


def check_trial_name(name: object, *, where: Path) -> str:
    """A trial name from ``dataset.json``: a plain folder name inside the dataset (no separators, not ``.``/``..``).

    Raises:
        InvalidInputError: any other name (it would point outside the dataset folder).
    """
    if not isinstance(name, str) or not name or name in (".", "..") or "/" in name or "\\" in name or "\0" in name:
        raise InvalidInputError(f"{where}: trial name {name!r} is not a plain folder name inside the dataset")
    return name


@dataclasses.dataclass(frozen=True)
class PreparedDataset:
    """A prepared dataset directory: its description and lazy access to trials."""

    root: Path
    feature_spec: FeatureSpec
    trials: dict[str, TrialInfo]
    document: dict[str, Any]

    def arrays(self, trial: str) -> TrialArrays:
        """Memory-mapped arrays of ``trial``."""
        if trial not in self.trials:
            raise InvalidInputError(f"trial '{trial}' is not in {self.root / 'dataset.json'}")
        arrays = load_trial_arrays(self.root / trial, spec=self.feature_spec)
        if arrays.length != self.trials[trial].length:
            raise InvalidInputError(
                f"{self.root / trial}: {arrays.length} frames on disk but dataset.json says "
                f"{self.trials[trial].length}; re-run 'edgeaff prepare'"
            )
        return arrays


def load_prepared_dataset(root: str | Path) -> PreparedDataset:
    """Read ``dataset.json`` of a prepared dataset.

    Raises:
        InvalidInputError: missing or malformed ``dataset.json``, unknown format or schema version.
    """
    directory = Path(root)
    path = directory / "dataset.json"
    if not path.is_file():
        raise InvalidInputError(f"{directory} is not a prepared dataset (no dataset.json); run 'edgeaff prepare' first")
    document = read_json(path)
    if not isinstance(document, dict) or document.get("format") != DATASET_FORMAT:
        raise InvalidInputError(f"{path}: not an edgeaff prepared dataset")
    if document.get("schema_version") != DATASET_SCHEMA_VERSION:
        raise InvalidInputError(
            f"{path}: schema version {document.get('schema_version')} is not supported "
            f"(this edgeaff reads {DATASET_SCHEMA_VERSION}); re-run 'edgeaff prepare'"
        )
    try:
        trials = {
            check_trial_name(name, where=path): TrialInfo(
                name=name,
                partition=str(info["partition"]),
                length=int(info["length"]),
                fps=float(info["fps"]),
                video=str(info["video"]),
                subject=str(info["subject"]),
            )
            for name, info in document["trials"].items()
        }
        feature_spec = FeatureSpec.from_dict(document["feature_spec"])
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise InvalidInputError(f"{path}: malformed dataset description ({exc!r}); re-run 'edgeaff prepare'") from None
    return PreparedDataset(root=directory, feature_spec=feature_spec, trials=trials, document=document)
