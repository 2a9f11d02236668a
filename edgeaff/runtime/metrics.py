"""Agreement metrics in numpy."""

from __future__ import annotations

import numpy as np


def ccc(prediction: np.ndarray, target: np.ndarray) -> float:
    """Lin's concordance correlation coefficient, the ABAW metric: 2·s_xy / (s_x² + s_y² + (μ_x − μ_y)²).

    Population (biased) moments throughout. Returns ``nan`` for empty input or two constant, equal sequences.
    """
    x = np.asarray(prediction, dtype=np.float64).ravel()
    y = np.asarray(target, dtype=np.float64).ravel()
    if x.shape != y.shape:
        raise ValueError(f"ccc needs equal lengths, got {x.shape} and {y.shape}")
    if x.size == 0:
        return float("nan")
    mx, my = x.mean(), y.mean()
    covariance = np.mean((x - mx) * (y - my))
    denominator = x.var() + y.var() + (mx - my) ** 2
    if denominator == 0:
        return float("nan")
    return float(2 * covariance / denominator)


def pearson(prediction: np.ndarray, target: np.ndarray) -> float:
    """Pearson correlation; ``nan`` when either sequence is constant."""
    x = np.asarray(prediction, dtype=np.float64).ravel()
    y = np.asarray(target, dtype=np.float64).ravel()
    sx, sy = x.std(), y.std()
    if x.size == 0 or sx == 0 or sy == 0:
        return float("nan")
    return float(np.mean((x - x.mean()) * (y - y.mean())) / (sx * sy))


def rmse(prediction: np.ndarray, target: np.ndarray) -> float:
    """Root mean squared error."""
    x = np.asarray(prediction, dtype=np.float64).ravel()
    y = np.asarray(target, dtype=np.float64).ravel()
    return float(np.sqrt(np.mean((x - y) ** 2)))
