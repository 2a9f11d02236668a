"""The one CCC (``edgeaff.runtime.metrics``) against the textbook formula, and its answer on constant series."""

from __future__ import annotations

import math

import numpy as np
import pytest

from edgeaff.runtime.metrics import ccc, pearson, rmse


def _lin(x: np.ndarray, y: np.ndarray) -> float:
    """Lin (1989) from numpy's covariance matrix with population moments, an independent route."""
    covariance = np.cov(np.stack([x, y]), bias=True)
    return float(2 * covariance[0, 1] / (covariance[0, 0] + covariance[1, 1] + (x.mean() - y.mean()) ** 2))


def test_ccc_matches_lins_formula() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(0.2, 1.0, 500)
    y = 0.5 * x + rng.normal(-0.1, 0.3, 500)
    assert ccc(x, y) == pytest.approx(_lin(x, y), rel=1e-12)
    assert ccc(x, x) == pytest.approx(1.0) and ccc(x, -x) < -0.9
    assert ccc(x, x + 1.0) < ccc(x, x + 0.1) < 1.0  # a shifted copy is penalised, unlike Pearson
    assert pearson(x, x + 1.0) == pytest.approx(1.0)
    assert rmse(x, x + 0.5) == pytest.approx(0.5)


def test_constant_series_have_one_documented_answer() -> None:
    # Both constant and equal: the prediction is the target at every frame -> 1 (0/0 otherwise).
    assert ccc(np.full(10, 0.3), np.full(10, 0.3)) == 1.0
    # Constant but different, or one of them constant: the formula is defined and gives 0.
    assert ccc(np.zeros(10), np.ones(10)) == 0.0
    assert ccc(np.zeros(10), np.linspace(-1, 1, 10)) == 0.0
    assert math.isnan(ccc(np.array([]), np.array([])))
    with pytest.raises(ValueError, match="equal lengths"):
        ccc(np.zeros(3), np.zeros(4))
