"""Real VGGish inputs for INT8 calibration and accuracy: the log-mel example of every prepared frame (no torch).

A prepared dataset keeps VGGish *embeddings*, not the log-mel examples they came from, but ``dataset.json`` records
the raw Aff-Wild2-layout tree it was prepared from (``settings.source_root``). For a trial, this module finds its
video and annotation there, decodes the audio with the runtime's one decode rule, computes the log-mel rows and
takes each labelled frame's example exactly as ``edgeaff prepare`` did (:mod:`edgeaff.runtime.audio.alignment`).
The result is checked against the prepared embeddings by the caller (the FP32 VGGish graph on these examples must
give the stored features), so a source that changed since preparation is noticed, not used.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from edgeaff.export.calibration import in_batches, spread
from edgeaff.runtime.artifacts.prepared import PreparedDataset
from edgeaff.runtime.audio.alignment import vggish_starts_for_fps
from edgeaff.runtime.audio.logmel import examples_at_rows, log_mel
from edgeaff.runtime.errors import EdgeaffError
from edgeaff.runtime.io.audio_track import decode_audio
from edgeaff.train.affwild2 import discover_trials, read_labels


@dataclasses.dataclass(frozen=True)
class TrialAudio:
    """Where a prepared trial's audio comes from."""

    video: Path
    annotation: Path
    fps: float


def source_root(dataset: PreparedDataset) -> Path | None:
    """The raw tree the dataset was prepared from, as ``dataset.json`` records it (``None`` if it does not)."""
    settings = dataset.document.get("settings")
    root = settings.get("source_root") if isinstance(settings, dict) else None
    return Path(root) if isinstance(root, str) and root else None


def locate_trials(dataset: PreparedDataset, names: Sequence[str]) -> tuple[dict[str, TrialAudio], str | None]:
    """The source video and annotation of each of ``names``, or why they cannot be found.

    Returns:
        ``({trial: TrialAudio}, None)`` when every trial was found, else ``({}, reason)``.
    """
    root = source_root(dataset)
    if root is None:
        return {}, f"{dataset.root / 'dataset.json'} records no source_root"
    if not root.is_dir():
        return {}, f"the raw data it was prepared from ({root}) is not on this machine"
    try:
        raw, _ = discover_trials(root)
    except EdgeaffError as exc:
        return {}, f"the raw data at {root} cannot be read ({exc})"
    by_name = {trial.name: trial for trial in raw}
    missing = [name for name in names if name not in by_name]
    if missing:
        return {}, f"trials {missing[:3]} have no video or annotation under {root}"
    return {
        name: TrialAudio(by_name[name].video, by_name[name].annotation, dataset.trials[name].fps) for name in names
    }, None


def trial_examples(dataset: PreparedDataset, name: str, audio: TrialAudio) -> np.ndarray:
    """(N, 96, 64) float32: the VGGish log-mel example of each of the trial's N prepared frames.

    Raises:
        EdgeaffError: the audio cannot be decoded, or the annotation's labelled rows no longer match the trial.
    """
    spec = dataset.feature_spec.vggish
    _, rows, _ = read_labels(audio.annotation)
    if len(rows) != dataset.trials[name].length:
        raise EdgeaffError(
            f"{audio.annotation} labels {len(rows)} frames but the prepared trial '{name}' has "
            f"{dataset.trials[name].length}; the raw data changed since 'edgeaff prepare'"
        )
    signal = decode_audio(audio.video, sample_rate=spec.sample_rate)
    log_mel_rows = log_mel(signal, spec=spec)
    starts = vggish_starts_for_fps(rows, audio.fps, len(log_mel_rows), example_frames=spec.example_frames)
    return examples_at_rows(log_mel_rows, starts, example_frames=spec.example_frames).astype(np.float32)


def calibration_examples(
    dataset: PreparedDataset, trials: dict[str, TrialAudio], *, count: int, batch: int
) -> list[np.ndarray]:
    """About ``count`` log-mel examples spread evenly over the trials' frames (the rule of the visual calibration,
    :func:`edgeaff.export.calibration.spread`), in batches of ``batch``."""
    picked = spread(dataset, list(trials), count=count)
    stacked = np.concatenate([trial_examples(dataset, name, trials[name])[local] for name, local in picked.items()])
    return in_batches(stacked, batch)
