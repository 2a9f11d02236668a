"""CCC loss along time (``reference.md`` §5.1)."""

from __future__ import annotations

import torch

CCC_LOSS_EPSILON = 1e-8


def ccc_loss(prediction: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Mean over the batch of ``1 - CCC`` computed along time per sequence.

    Per sequence: ``1 - 2·cov_biased / (var_unbiased(target) + var_unbiased(prediction) + (Δμ)² + 1e-8)``, the
    reference's form. With ``mask`` (B, L) bool, only valid positions count (zero-padded positions of short trials
    are excluded); without it every position counts, as in the reference.

    Args:
        prediction: (B, L).
        target: (B, L).
        mask: optional (B, L) bool, True where the frame is real.
    """
    if mask is None:
        mask = torch.ones_like(prediction, dtype=torch.bool)
    weights = mask.to(prediction.dtype)
    count = weights.sum(dim=1).clamp(min=2.0)
    mean_p = (prediction * weights).sum(dim=1) / count
    mean_t = (target * weights).sum(dim=1) / count
    dp = (prediction - mean_p[:, None]) * weights
    dt = (target - mean_t[:, None]) * weights
    covariance = (dp * dt).sum(dim=1) / count
    var_p = (dp * dp).sum(dim=1) / (count - 1)
    var_t = (dt * dt).sum(dim=1) / (count - 1)
    ccc = 2 * covariance / (var_t + var_p + (mean_t - mean_p) ** 2 + CCC_LOSS_EPSILON)
    return (1 - ccc).mean()
