"""The torch CCC loss against the one numpy CCC (``edgeaff.runtime.metrics.ccc``).

The loss keeps the reference's form (biased covariance over unbiased variances, + 1e-8), so ``1 - loss`` is not
exactly the metric: with n frames the variances are larger by n/(n-1). The tests pin that relation exactly and
check that the mask selects the same frames the metric sees.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from edgeaff.runtime.metrics import ccc
from edgeaff.train.loss import CCC_LOSS_EPSILON, ccc_loss


def _reference_form(x: np.ndarray, y: np.ndarray) -> float:
    """The loss's CCC rewritten from the metric's population moments."""
    n = x.size
    population = ccc(x, y)
    covariance = population * (x.var() + y.var() + (x.mean() - y.mean()) ** 2) / 2
    return 2 * covariance / ((x.var() + y.var()) * n / (n - 1) + (x.mean() - y.mean()) ** 2 + CCC_LOSS_EPSILON)


def test_loss_is_one_minus_the_reference_form_of_the_metric() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(0.1, 0.4, (3, 300))
    y = 0.6 * x + rng.normal(0.0, 0.2, (3, 300))
    loss = float(ccc_loss(torch.from_numpy(x), torch.from_numpy(y)))
    expected = np.mean([1 - _reference_form(x[i], y[i]) for i in range(3)])
    assert loss == pytest.approx(expected, rel=1e-9)
    # Over a 300-frame window the two forms differ by at most ~1/n.
    metric = np.mean([ccc(x[i], y[i]) for i in range(3)])
    assert abs((1 - loss) - metric) < 2 / 300


def test_masked_frames_are_exactly_the_ones_the_metric_leaves_out() -> None:
    rng = np.random.default_rng(1)
    x = rng.normal(0.0, 0.5, (1, 120))
    y = 0.8 * x + rng.normal(0.0, 0.3, (1, 120))
    valid = 90
    mask = torch.zeros(1, 120, dtype=torch.bool)
    mask[0, :valid] = True
    padded_x, padded_y = x.copy(), y.copy()
    padded_x[0, valid:], padded_y[0, valid:] = 5.0, -5.0  # padding that would ruin the value if it counted
    loss = float(ccc_loss(torch.from_numpy(padded_x), torch.from_numpy(padded_y), mask))
    assert loss == pytest.approx(1 - _reference_form(x[0, :valid], y[0, :valid]), rel=1e-9)
