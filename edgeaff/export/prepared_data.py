"""Read ``edgeaff prepare`` output for calibration and accuracy checks (no torch).

Layout: ``PREPARED_DIR/dataset.json`` with ``{"trials": {"<trial>": {"partition": "Train_Set" | "Validation_Set",
"length": N, ...}}}`` and per trial ``<trial>/frame.npy`` (N, 48, 48, 3) uint8 RGB, ``mfcc.npy`` (N, 39) and
``vggish.npy`` (N, 128) raw float32, ``label.npy`` (N, 2) float32 [valence, arousal].
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from edgeaff.runtime.artifacts.prepared import check_trial_name
from edgeaff.runtime.errors import InvalidInputError
from edgeaff.runtime.files import read_json

TRAIN = "Train_Set"
VALIDATION = "Validation_Set"
LABEL_COLUMNS = ("valence", "arousal")


@dataclasses.dataclass(frozen=True)
class Trial:
    """One prepared trial's arrays (memory-mapped)."""

    name: str
    partition: str
    frames: np.ndarray
    mfcc: np.ndarray
    vggish: np.ndarray
    labels: np.ndarray

    @property
    def length(self) -> int:
        """Number of frames."""
        return int(self.frames.shape[0])


def _load(path: Path, *, dtype: type, shape: tuple[int, ...], length: int | None) -> np.ndarray:
    if not path.is_file():
        raise InvalidInputError(f"prepared data: {path} is missing; re-run 'edgeaff prepare'")
    try:
        array = np.load(path, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise InvalidInputError(f"prepared data: cannot read {path} ({exc})") from None
    if array.dtype != np.dtype(dtype) or array.ndim != len(shape) + 1 or tuple(array.shape[1:]) != shape:
        raise InvalidInputError(
            f"prepared data: {path} must be (N, {', '.join(map(str, shape))}) {np.dtype(dtype)}, "
            f"got {array.shape} {array.dtype}"
        )
    if length is not None and array.shape[0] != length:
        raise InvalidInputError(f"prepared data: {path} has {array.shape[0]} rows, the trial has {length} frames")
    return array


def load_prepared(directory: str | Path, *, image_size: int = 48) -> list[Trial]:
    """Open every trial listed in ``dataset.json``.

    Raises:
        InvalidInputError: a missing or malformed ``dataset.json``, missing arrays, wrong shapes or dtypes, no trials.
    """
    root = Path(directory)
    index = root / "dataset.json"
    if not index.is_file():
        raise InvalidInputError(f"{root} is not a prepared data directory (no dataset.json); run 'edgeaff prepare'")
    document = read_json(index)
    entries = document.get("trials") if isinstance(document, dict) else None
    if not isinstance(entries, dict) or not entries:
        raise InvalidInputError(f"{index}: no trials listed")
    trials = []
    for name, info in sorted(entries.items()):
        folder = root / check_trial_name(name, where=index)
        frames = _load(folder / "frame.npy", dtype=np.uint8, shape=(image_size, image_size, 3), length=None)
        count = int(frames.shape[0])
        trials.append(
            Trial(
                name=name,
                partition=str(info.get("partition", "")) if isinstance(info, dict) else "",
                frames=frames,
                mfcc=_load(folder / "mfcc.npy", dtype=np.float32, shape=(39,), length=count),
                vggish=_load(folder / "vggish.npy", dtype=np.float32, shape=(128,), length=count),
                labels=_load(folder / "label.npy", dtype=np.float32, shape=(2,), length=count),
            )
        )
    return trials


def split_trials(trials: list[Trial]) -> tuple[list[Trial], list[Trial]]:
    """(calibration trials, evaluation trials): Train_Set and Validation_Set; one side falls back to the other."""
    train = [t for t in trials if t.partition == TRAIN]
    validation = [t for t in trials if t.partition == VALIDATION]
    return (train or validation or trials), (validation or train or trials)


def calibration_batches(trials: list[Trial], *, frames: int, batch: int) -> list[np.ndarray]:
    """About ``frames`` real face crops spread evenly over ``trials``, in batches of ``batch`` (uint8)."""
    total = sum(t.length for t in trials)
    if total == 0:
        raise InvalidInputError("the calibration data has no frames")
    picks = np.unique(np.linspace(0, total - 1, num=min(frames, total)).round().astype(np.int64))
    starts = np.cumsum([0] + [t.length for t in trials])
    chosen = []
    for trial, start, stop in zip(trials, starts[:-1], starts[1:], strict=True):
        local = picks[(picks >= start) & (picks < stop)] - start
        if local.size:
            chosen.append(np.asarray(trial.frames[local]))
    stacked = np.concatenate(chosen)
    return [stacked[i : i + batch] for i in range(0, len(stacked), batch)]


def window_starts(length: int, window: int, hop: int) -> list[int]:
    """Window start frames as the reference: hop through the trial, then one final window flush with its end."""
    if length <= window:
        return [0]
    starts = list(range(0, length - window, hop))
    return [*starts, length - window]
