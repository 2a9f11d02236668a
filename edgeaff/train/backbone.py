"""InsightFace-style IR backbone for 40×40 face crops (``reference.md`` §1.1).

The reference's "ResNet50" is the ArcFace IR-50: pre-activation residual units (BN → conv → PReLU → conv → BN, no
activation after the addition), a stride-1 first stage for the small input, a 5×5 output layer and an
L2-normalised 512-D embedding.
"""

from __future__ import annotations

import torch
from torch import nn

from edgeaff.train.config import BackboneConfig


class ResidualUnit(nn.Module):
    """One improved-residual unit (InsightFace ``bottleneck_IR``).

    ``residual``: BN(in) → Conv3×3(in→out) → PReLU(out) → Conv3×3(out→out, stride) → BN(out).
    Shortcut: strided subsampling when the width is unchanged, otherwise Conv1×1(stride) → BN.
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int) -> None:
        super().__init__()
        self.stride = stride
        self.bn_in = nn.BatchNorm2d(in_channels)
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride=1, padding=1, bias=False)
        self.prelu = nn.PReLU(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, stride=stride, padding=1, bias=False)
        self.bn_out = nn.BatchNorm2d(out_channels)
        self.shortcut_conv: nn.Conv2d | None = None
        self.shortcut_bn: nn.BatchNorm2d | None = None
        if in_channels != out_channels:
            self.shortcut_conv = nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False)
            self.shortcut_bn = nn.BatchNorm2d(out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Residual branch plus shortcut."""
        if self.shortcut_conv is not None and self.shortcut_bn is not None:
            shortcut = self.shortcut_bn(self.shortcut_conv(x))
        else:
            # MaxPool2d(kernel 1, stride s) in the reference: plain subsampling.
            shortcut = x[:, :, :: self.stride, :: self.stride]
        residual = self.bn_out(self.conv2(self.prelu(self.conv1(self.bn_in(x)))))
        return residual + shortcut


class EmbeddingLayer(nn.Module):
    """BN2d → Dropout → Flatten (channel-major) → Linear → BN1d: the reference's ``output_layer``."""

    def __init__(self, channels: int, size: int, embedding_dim: int, dropout: float) -> None:
        super().__init__()
        self.bn_map = nn.BatchNorm2d(channels)
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(channels * size * size, embedding_dim)
        self.bn_embedding = nn.BatchNorm1d(embedding_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C, S, S) feature map → (N, embedding_dim), not yet normalised."""
        return self.bn_embedding(self.fc(torch.flatten(self.dropout(self.bn_map(x)), 1)))


class IRBackbone(nn.Module):
    """Face crop (N, 3, S, S) in [-1, 1] → L2-normalised embedding (N, E).

    Module names: ``stem_conv``, ``stem_bn``, ``stem_prelu``; ``units.0`` … ``units.{n-1}`` in one flat list (the
    reference's ``body.i``, same index); ``embedding`` (the reference's ``output_layer``).
    """

    def __init__(self, config: BackboneConfig) -> None:
        super().__init__()
        self.config = config
        width0 = config.stage_widths[0]
        self.stem_conv = nn.Conv2d(3, width0, 3, stride=1, padding=1, bias=False)
        self.stem_bn = nn.BatchNorm2d(width0)
        self.stem_prelu = nn.PReLU(width0)
        units: list[nn.Module] = []
        in_channels = width0
        for stage, (count, width) in enumerate(zip(config.stage_units, config.stage_widths, strict=True)):
            for index in range(count):
                stride = (config.first_stage_stride if stage == 0 else 2) if index == 0 else 1
                units.append(ResidualUnit(in_channels, width, stride))
                in_channels = width
        self.units = nn.ModuleList(units)
        self.embedding = EmbeddingLayer(in_channels, config.output_size, config.embedding_dim, config.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Embed a batch of crops; the result has unit L2 norm per row (no epsilon, as the reference)."""
        x = self.stem_prelu(self.stem_bn(self.stem_conv(x)))
        for unit in self.units:
            x = unit(x)
        features = self.embedding(x)
        return features / torch.linalg.vector_norm(features, dim=1, keepdim=True)

    def stage_of_unit(self) -> list[int]:
        """Stage index of every unit in ``units``."""
        return [stage for stage, count in enumerate(self.config.stage_units) for _ in range(count)]

    def finetune_groups(self) -> list[list[str]]:
        """Module-name prefixes (relative to the backbone) of the groups the recipe releases, in release order.

        For IR-50: ``[["embedding"], ["units.21", "units.22", "units.23"], ["units.18", "units.19", "units.20"]]``
        (reference §1.1). Everything not listed is the frozen trunk shared by all folds.
        """
        stages = self.stage_of_unit()
        last_stage = len(self.config.stage_units) - 1
        last = [f"units.{i}" for i, s in enumerate(stages) if s == last_stage]
        penultimate = [i for i, s in enumerate(stages) if s == last_stage - 1]
        tail = (
            penultimate[len(penultimate) - self.config.released_tail_units :] if self.config.released_tail_units else []
        )
        groups = [["embedding"], last]
        if tail:
            groups.append([f"units.{i}" for i in tail])
        return groups
