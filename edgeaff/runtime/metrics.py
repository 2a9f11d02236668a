"""Agreement metrics in numpy: the one CCC (and Pearson, RMSE) every part of edgeaff reports."""

from __future__ import annotations

import numpy as np


def ccc(prediction: np.ndarray, target: np.ndarray) -> float:
    """Lin's concordance correlation coefficient, the ABAW metric: 2·s_xy / (s_x² + s_y² + (μ_x − μ_y)²).

    The one CCC of edgeaff: training's validation metrics, the export's precision comparisons, the demo and the
    benchmarks all call it. Population (biased) moments throughout.

    Constant series: the denominator is zero only when both series are constant *and* equal, i.e. the prediction
    equals the target at every frame. The formula is then 0/0; the answer is **1.0**, the value ``ccc(x, x)`` has
    for every non-constant ``x`` (agreement is perfect). Two constant but different series give 0 from the formula.
    Empty input gives ``nan`` (there is nothing to measure).

    Raises:
        ValueError: the two series have different lengths.

    Example:
        >>> ccc(np.array([0.1, 0.2, 0.3]), np.array([0.1, 0.2, 0.3]))
        1.0
        >>> ccc(np.zeros(4), np.zeros(4))
        1.0
        >>> ccc(np.zeros(4), np.ones(4))
        0.0
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
        return 1.0
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
