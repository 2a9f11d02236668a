"""Label curves of the synthetic dataset: smooth valence/arousal per trial, the rows left unannotated (-5), and the
exact text of an Aff-Wild2 ``VA_Set`` label file."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

UNLABELED = -5
"""The value Aff-Wild2 writes for a frame the annotators left out."""

HEADER = "valence,arousal"


@dataclass(frozen=True)
class TrialLabels:
    """The labels of one trial as they are written to its annotation file.

    Attributes:
        valence: (rows,) clean valence, rounded to ``decimals``, in [-1, 1].
        arousal: (rows,) clean arousal, likewise.
        decimals: digits after the decimal point in the file.
        unlabeled_rows: sorted rows written with a -5 in at least one column (the reference drops them).
        half_unlabeled: the rows among ``unlabeled_rows`` that have -5 in one column only, with that column's name.
    """

    valence: np.ndarray
    arousal: np.ndarray
    decimals: int
    unlabeled_rows: tuple[int, ...]
    half_unlabeled: tuple[tuple[int, str], ...]

    @property
    def rows(self) -> int:
        """Number of label rows (= frames the trial annotates)."""
        return int(self.valence.shape[0])


def smooth_curve(rng: np.random.Generator, rows: int, fps: float, *, components: int = 6) -> np.ndarray:
    """A smooth random curve in [-1, 1]: a sum of low-frequency sinusoids, rescaled to a random sub-range.

    The lowest frequency gives about one cycle over the trial (at least 0.02 Hz), the highest 0.25 Hz, so short
    trials still sweep their range and long ones change over seconds, as continuous annotations do.

    Args:
        rng: the random source (consumed deterministically).
        rows: number of frames.
        fps: frame rate, to make the curve a function of time rather than of frame index.
        components: number of sinusoids.

    Returns:
        (rows,) float64 array in [-1, 1].
    """
    seconds = max(rows / fps, 1e-3)
    low, high = max(0.02, 1.0 / seconds), 0.25
    high = max(high, low * 1.5)
    t = np.arange(rows) / fps
    freqs = np.exp(rng.uniform(np.log(low), np.log(high), components))
    phases = rng.uniform(0.0, 2.0 * np.pi, components)
    amps = rng.uniform(0.4, 1.0, components) / np.sqrt(freqs / low)
    curve = (amps[:, None] * np.sin(2.0 * np.pi * freqs[:, None] * t[None, :] + phases[:, None])).sum(axis=0)
    return _rescale(rng, curve)


def _rescale(rng: np.random.Generator, curve: np.ndarray) -> np.ndarray:
    centred = curve - curve.mean()
    peak = float(np.abs(centred).max())
    unit = centred / peak if peak > 0 else centred
    half_range = rng.uniform(0.55, 0.9)
    offset = rng.uniform(-1.0, 1.0) * (1.0 - half_range) * 0.7
    return np.clip(offset + half_range * unit, -1.0, 1.0)


def valence_arousal(rng: np.random.Generator, rows: int, fps: float) -> tuple[np.ndarray, np.ndarray]:
    """Independent smooth valence and arousal curves whose sample correlation within the trial is zero.

    Arousal is drawn like valence, then its projection on valence (both centred) is removed and it is rescaled, so a
    statistic that follows valence tells nothing about arousal within a trial.
    """
    valence = smooth_curve(rng, rows, fps)
    raw = smooth_curve(rng, rows, fps)
    v = valence - valence.mean()
    a = raw - raw.mean()
    denominator = float(v @ v)
    if denominator > 0:
        a = a - (float(a @ v) / denominator) * v
    return valence, _rescale(rng, a)


def choose_unlabeled(
    rng: np.random.Generator, rows: int, pattern: str
) -> tuple[tuple[int, ...], tuple[tuple[int, str], ...]]:
    """Rows to write as -5.

    Args:
        rng: the random source.
        rows: label rows of the trial.
        pattern: ``"none"``; ``"run"`` (a contiguous block of 8-15 % of the rows in the middle third);
            ``"scattered"`` (3-5 single rows, one with only valence -5 and one with only arousal -5);
            ``"both"`` (a run and scattered rows).

    Returns:
        (sorted unlabeled rows, rows with only one column at -5 and that column's name).
    """
    chosen: set[int] = set()
    half: list[tuple[int, str]] = []
    if pattern in ("run", "both"):
        length = max(3, int(rows * rng.uniform(0.08, 0.15)))
        start = int(rng.integers(rows // 3, max(rows // 3 + 1, 2 * rows // 3 - length)))
        chosen.update(range(start, min(rows, start + length)))
    if pattern in ("scattered", "both"):
        count = int(rng.integers(3, 6))
        candidates = [row for row in range(2, rows - 2) if row not in chosen and row - 1 not in chosen]
        picks = sorted(int(row) for row in rng.choice(candidates, size=count, replace=False))
        chosen.update(picks)
        half = [(picks[0], "valence"), (picks[1], "arousal")]
    elif pattern not in ("none", "run"):
        raise ValueError(f"unknown unlabeled-row pattern {pattern!r}")
    return tuple(sorted(chosen)), tuple(half)


def make_trial_labels(rng: np.random.Generator, rows: int, fps: float, pattern: str) -> TrialLabels:
    """Draw a trial's curves, round them to 3, 4 or 6 decimals and choose its -5 rows."""
    valence, arousal = valence_arousal(rng, rows, fps)
    decimals = int(rng.choice([3, 4, 6]))
    unlabeled, half = choose_unlabeled(rng, rows, pattern)
    # "+ 0.0" turns -0.0 into 0.0 so the file never says "-0.000"
    return TrialLabels(
        valence=np.round(valence, decimals) + 0.0,
        arousal=np.round(arousal, decimals) + 0.0,
        decimals=decimals,
        unlabeled_rows=unlabeled,
        half_unlabeled=half,
    )


def label_file_text(labels: TrialLabels) -> str:
    """The annotation file: header ``valence,arousal`` then one ``v,a`` row per frame, -5 where unannotated."""
    half = dict(labels.half_unlabeled)
    unlabeled = set(labels.unlabeled_rows)
    lines = [HEADER]
    for row in range(labels.rows):
        valence = f"{labels.valence[row]:.{labels.decimals}f}"
        arousal = f"{labels.arousal[row]:.{labels.decimals}f}"
        if row in unlabeled:
            column = half.get(row)
            if column != "arousal":
                valence = str(UNLABELED)
            if column != "valence":
                arousal = str(UNLABELED)
        lines.append(f"{valence},{arousal}")
    return "\n".join(lines) + "\n"
