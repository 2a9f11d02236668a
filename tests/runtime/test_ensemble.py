"""CCC-centering against a direct transcription of the reference procedure (reference.md §6.3)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from edgeaff.runtime.errors import InvalidInputError
from edgeaff.runtime.pipeline.ensemble import CausalCccCentering, causal_ccc_centering, ccc_centering


def reference_centering(p: np.ndarray) -> np.ndarray:
    """Written step by step from §6.3 with plain Python loops (independent of the module's vectorisation)."""
    folds, length = p.shape

    def lin_ccc(x: list[float], y: list[float]) -> float:
        n = len(x)
        mx, my = sum(x) / n, sum(y) / n
        cov = sum((a - mx) * (b - my) for a, b in zip(x, y, strict=True)) / n
        vx = sum((a - mx) ** 2 for a in x) / (n - 1)
        vy = sum((b - my) ** 2 for b in y) / (n - 1)
        return 2 * cov / (vx + vy + (mx - my) ** 2 + 1e-100)

    rows = [list(map(float, row)) for row in p]
    pair = {}
    for i, j in itertools.combinations(range(folds), 2):
        pair[(i, j)] = pair[(j, i)] = lin_ccc(rows[i], rows[j])
    agreement = [sum(pair[(i, j)] for j in range(folds) if j != i) / (folds - 1) for i in range(folds)]
    means = [sum(r) / length for r in rows]
    w = sum(m * a for m, a in zip(means, agreement, strict=True)) / sum(agreement)
    return np.array([sum(rows[i][t] - means[i] + w for i in range(folds)) / folds for t in range(length)])


def test_matches_the_reference_procedure() -> None:
    rng = np.random.default_rng(0)
    base = np.sin(np.linspace(0, 6, 400))
    predictions = base + rng.normal(0, 0.2, (6, 400)) + rng.normal(0, 0.3, (6, 1))
    expected = reference_centering(predictions)
    np.testing.assert_allclose(ccc_centering(predictions, clip="none"), expected, rtol=0, atol=1e-12)
    np.testing.assert_allclose(ccc_centering(predictions), np.clip(expected, -1, 1), rtol=0, atol=1e-12)
    # Only the offset differs from the plain mean.
    offset = ccc_centering(predictions, clip="none") - predictions.mean(axis=0)
    assert np.ptp(offset) < 1e-12


def test_clipping_modes_and_single_fold() -> None:
    predictions = np.array([[1.5, 0.0, -2.0, 0.5], [0.9, 0.2, -1.2, 0.4]])
    late = ccc_centering(predictions)
    early = ccc_centering(predictions, clip="early")
    np.testing.assert_allclose(early, reference_centering(np.clip(predictions, -1, 1)), atol=1e-12)
    assert late.max() <= 1 and late.min() >= -1
    assert not np.allclose(late, early)
    single = np.array([[0.1, 2.0, -0.3]])
    np.testing.assert_array_equal(ccc_centering(single, clip="none"), single[0])
    with pytest.raises(InvalidInputError, match="late, early, none"):
        ccc_centering(predictions, clip="middle")
    with pytest.raises(InvalidInputError, match=r"\(folds, T\)"):
        ccc_centering(np.zeros(5))


def test_causal_variant_uses_only_the_past_and_ends_at_the_offline_value() -> None:
    rng = np.random.default_rng(1)
    predictions = np.cumsum(rng.normal(0, 0.05, (4, 200)), axis=1) + rng.normal(0, 0.2, (4, 1))
    causal = causal_ccc_centering(predictions, clip="none")
    for t in (1, 17, 120, 199):
        prefix = predictions[:, : t + 1]
        assert causal[t] == pytest.approx(reference_centering(prefix)[-1], abs=1e-9)
    # Changing the future never changes the past.
    changed = predictions.copy()
    changed[:, 150:] += 3.0
    np.testing.assert_array_equal(causal_ccc_centering(changed, clip="none")[:150], causal[:150])
    merger = CausalCccCentering(1)
    assert merger.update(np.array([0.4])) == 0.4


def test_series_without_agreement_get_the_mean_of_the_folds() -> None:
    """One frame (a face track that lives one frame before the video ends) or folds that never vary have no pairwise
    CCC to weigh by: the offset is the plain mean of the fold means, not 0/0, offline and causal alike."""
    one_frame = np.array([[0.1], [0.3], [0.5]])
    assert ccc_centering(one_frame).tolist() == pytest.approx([0.3])
    flat = np.array([[0.2, 0.2, 0.2], [-0.4, -0.4, -0.4]])
    assert ccc_centering(flat).tolist() == pytest.approx([-0.1, -0.1, -0.1])
    assert causal_ccc_centering(flat)[-1] == pytest.approx(ccc_centering(flat)[-1])
