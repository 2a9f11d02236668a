"""Leader-follower attentive fusion (``reference.md`` §1.4).

Per time step the three branches — visual (leader), VGGish and MFCC (followers) — are projected to queries, keys
and values of width ``a``; attention runs across the three modalities of that step only, with an identity
residual ("+1" in the paper), LayerNorm over the whole (3, a) block, and the result is appended to the leader's
feature: ``[h_visual | A_visual | A_vggish | A_mfcc]``.

Two variants:

* ``paper``: every branch's Q, K and V come from that branch's TCN feature; scores ``Q·Kᵀ / √a``.
* ``abaw2``: the reference code exactly — the aural branches' Q and V are projections of their *key* vectors
  (reference bug §7.1) and the scores are ``K·Qᵀ / √a`` with softmax over the last axis (§7.2).

Both use ``softmax(scores)·V + V``.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from edgeaff.train.config import FUSION_VARIANTS

MODALITIES = ("visual", "vggish", "mfcc")


class LeaderFollowerFusion(nn.Module):
    """Fuse a leader feature with follower features, one attention over modalities per time step."""

    def __init__(self, input_dims: tuple[int, ...], attention_dim: int, variant: str) -> None:
        super().__init__()
        if variant not in FUSION_VARIANTS:
            raise ValueError(f"fusion variant must be one of {FUSION_VARIANTS}, got {variant!r}")
        self.variant = variant
        self.attention_dim = attention_dim
        # In the abaw2 variant the aural Q/V layers read the aural keys (width attention_dim), not the TCN feature.
        qv_dims = [input_dims[0], *([attention_dim] * (len(input_dims) - 1))] if variant == "abaw2" else input_dims
        self.key = nn.ModuleList(nn.Linear(d, attention_dim) for d in input_dims)
        self.query = nn.ModuleList(nn.Linear(d, attention_dim) for d in qv_dims)
        self.value = nn.ModuleList(nn.Linear(d, attention_dim) for d in qv_dims)
        self.norm = nn.LayerNorm([len(input_dims), attention_dim])
        self.output_dim = input_dims[0] + len(input_dims) * attention_dim

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        """``features[m]`` is (N, d_m) with the leader first; returns (N, d_0 + M·a)."""
        keys = [layer(x) for layer, x in zip(self.key, features, strict=True)]
        sources = [features[0], *keys[1:]] if self.variant == "abaw2" else features
        queries = torch.stack([layer(x) for layer, x in zip(self.query, sources, strict=True)], dim=1)
        values = torch.stack([layer(x) for layer, x in zip(self.value, sources, strict=True)], dim=1)
        key_stack = torch.stack(keys, dim=1)
        scale = 1.0 / math.sqrt(self.attention_dim)
        if self.variant == "abaw2":
            scores = torch.matmul(key_stack, queries.transpose(1, 2)) * scale
        else:
            scores = torch.matmul(queries, key_stack.transpose(1, 2)) * scale
        attended = torch.matmul(torch.softmax(scores, dim=-1), values) + values
        return torch.cat([features[0], torch.flatten(self.norm(attended), 1)], dim=1)
