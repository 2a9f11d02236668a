"""Fold ensembling by CCC-centering (``reference.md`` §6.3) and clipping (§6.4), in numpy.

For one emotion dimension and one video, ``predictions`` is (folds, T). The reference (a port of AVEC 2016's
``run_gold_standard.m``):

1. pairwise CCC ``c_ij`` of the fold predictions (biased covariance, unbiased variances, ``+1e-100``);
2. each fold's agreement ``a_i`` = mean of ``c_ij`` over the pairs that contain it;
3. ``μ_i`` = temporal mean of fold i; ``w = Σ μ_i a_i / Σ a_i``;
4. ``centered_i(t) = P_i(t) − μ_i + w``; the result is ``mean_i centered_i(t)``.

So the agreement only sets the global offset of the plain fold average. One fold is returned unchanged. The
reference also transposes its input when it has more rows than columns (to guess the orientation); here the
orientation is explicit, (folds, T), and nothing is transposed.

:func:`causal_ccc_centering` is the streaming variant: at time t it uses the statistics of frames 0..t only, so each
output is final when it is produced. Clipping to [-1, 1] is late (after centering, the released script's choice)
by default, or early (each fold before centering).
"""

from __future__ import annotations

import numpy as np

from edgeaff.runtime.choices import Choice
from edgeaff.runtime.errors import InvalidInputError

_REFERENCE_EPSILON = 1e-100


class Clip(Choice):
    """Where predictions are clipped to [-1, 1] (``--clip``): after ensembling (``late``, the released script's
    choice), each model before ensembling (``early``), or not at all (``none``)."""

    __label__ = "clipping"

    LATE = "late"
    EARLY = "early"
    NONE = "none"


def _check(predictions: np.ndarray) -> np.ndarray:
    array = np.asarray(predictions, dtype=np.float64)
    if array.ndim != 2 or array.shape[0] < 1 or array.shape[1] < 1:
        raise InvalidInputError(f"predictions must be (folds, T) with at least one of each, got {array.shape}")
    return array


def reference_ccc(x: np.ndarray, y: np.ndarray) -> float:
    """The reference logger's CCC: 2·cov_biased / (var_unbiased(x) + var_unbiased(y) + (Δμ)² + 1e-100)."""
    n = x.size
    mx, my = x.mean(), y.mean()
    covariance = np.mean((x - mx) * (y - my))
    ddof = 1 if n > 1 else 0
    return float(2 * covariance / (x.var(ddof=ddof) + y.var(ddof=ddof) + (mx - my) ** 2 + _REFERENCE_EPSILON))


def fold_agreement(predictions: np.ndarray) -> np.ndarray:
    """Each fold's mean pairwise CCC with the other folds, (folds,)."""
    folds = _check(predictions)
    count = folds.shape[0]
    agreement = np.zeros(count)
    for i in range(count):
        for j in range(i + 1, count):
            value = reference_ccc(folds[i], folds[j])
            agreement[i] += value
            agreement[j] += value
    return agreement / max(count - 1, 1)


def ccc_centering(predictions: np.ndarray, *, clip: str | Clip = Clip.LATE) -> np.ndarray:
    """Merge fold predictions (folds, T) into one (T,) series by CCC-centering, then clip.

    Args:
        predictions: (folds, T) raw predictions of one dimension for one video.
        clip: ``"late"`` (clip the merged series), ``"early"`` (clip each fold first) or ``"none"``.

    Returns:
        (T,) float64.

    Example:
        >>> ccc_centering(np.array([[0.1, 0.2, 0.3], [0.3, 0.4, 0.5]])).round(3).tolist()
        [0.2, 0.3, 0.4]
    """
    clip = Clip.parse(clip)
    folds = _check(predictions)
    if clip is Clip.EARLY:
        folds = np.clip(folds, -1.0, 1.0)
    if folds.shape[0] == 1:
        merged = folds[0].copy()
    else:
        agreement = fold_agreement(folds)
        means = folds.mean(axis=1)
        total = float(np.sum(agreement))
        # No agreement to weigh by (one frame, or folds that never vary): the plain mean, as the causal variant.
        offset = float(np.sum(means * agreement) / total) if total != 0 else float(means.mean())
        merged = (folds - means[:, None] + offset).mean(axis=0)
    return np.clip(merged, -1.0, 1.0) if clip is Clip.LATE else merged


class CausalCccCentering:
    """Streaming CCC-centering: feed one (folds,) vector per frame, get the merged value using frames 0..t only.

    Running sums of x, x² and pairwise products give every statistic of the offline formula over the prefix, in
    O(folds²) per frame. At the last frame of a sequence the output equals :func:`ccc_centering`'s value for that
    frame.
    """

    def __init__(self, folds: int, *, clip: str | Clip = Clip.LATE) -> None:
        clip = Clip.parse(clip)
        self.folds = folds
        self.clip = clip
        self.count = 0
        self._sum = np.zeros(folds)
        self._products = np.zeros((folds, folds))

    def update(self, values: np.ndarray) -> float:
        """Add frame t's fold predictions and return the merged prediction for frame t."""
        x = np.asarray(values, dtype=np.float64).reshape(self.folds)
        if self.clip is Clip.EARLY:
            x = np.clip(x, -1.0, 1.0)
        self.count += 1
        self._sum += x
        self._products += np.outer(x, x)
        if self.folds == 1:
            merged = float(x[0])
        else:
            n = self.count
            means = self._sum / n
            covariance = self._products / n - np.outer(means, means)  # biased
            variance = np.diag(covariance) * (n / (n - 1)) if n > 1 else np.diag(covariance)
            ccc = (
                2
                * covariance
                / (variance[:, None] + variance[None, :] + (means[:, None] - means[None, :]) ** 2 + _REFERENCE_EPSILON)
            )
            agreement = (ccc.sum(axis=1) - np.diag(ccc)) / (self.folds - 1)
            total = agreement.sum()
            offset = float(np.sum(means * agreement) / total) if total != 0 else float(means.mean())
            merged = float(np.mean(x - means) + offset)
        return float(np.clip(merged, -1.0, 1.0)) if self.clip is Clip.LATE else merged


def causal_ccc_centering(predictions: np.ndarray, *, clip: str | Clip = Clip.LATE) -> np.ndarray:
    """:class:`CausalCccCentering` applied to a whole (folds, T) array: (T,)."""
    folds = _check(predictions)
    merger = CausalCccCentering(folds.shape[0], clip=clip)
    return np.array([merger.update(folds[:, t]) for t in range(folds.shape[1])])
