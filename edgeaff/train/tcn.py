"""Causal temporal convolutional network (Bai et al. 2018) as the reference uses it (``reference.md`` §1.2).

Each level is a :class:`TemporalBlock` with dilation ``2**level``: two weight-normalised causal convolutions with
LeakyReLU(0.01) and channel dropout, a 1×1 convolution on the residual path when the width changes, and a final
LeakyReLU after the addition. Causality is implemented by left padding with ``(k-1)·d`` zeros, which gives exactly
the outputs of the reference's "pad both sides, then chomp the right" form without computing the discarded ones.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F  # noqa: N812
from torch import nn

LEAKY_SLOPE = 0.01


class WeightNormConv1d(nn.Module):
    """Conv1d whose weight is ``g · v / ‖v‖`` with the norm taken per output channel (over input channels × taps).

    Parameters are named like PyTorch's classic ``weight_norm`` (``weight_g``, ``weight_v``, ``bias``), and are
    initialised like a default ``nn.Conv1d`` wrapped by it (reference §1.2, init quirk): Kaiming-uniform(a=√5) on
    ``v``, ``g = ‖v‖``, uniform bias.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, dilation: int) -> None:
        super().__init__()
        self.dilation = dilation
        self.left_padding = (kernel_size - 1) * dilation
        self.weight_v = nn.Parameter(torch.empty(out_channels, in_channels, kernel_size))
        self.weight_g = nn.Parameter(torch.empty(out_channels, 1, 1))
        self.bias = nn.Parameter(torch.empty(out_channels))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Default Conv1d initialisation, then ``g`` set so that the effective weight equals ``v``."""
        nn.init.kaiming_uniform_(self.weight_v, a=math.sqrt(5))
        fan_in = self.weight_v.shape[1] * self.weight_v.shape[2]
        bound = 1 / math.sqrt(fan_in)
        nn.init.uniform_(self.bias, -bound, bound)
        with torch.no_grad():
            self.weight_g.copy_(self._v_norm())

    def _v_norm(self) -> torch.Tensor:
        return torch.linalg.vector_norm(self.weight_v, dim=(1, 2), keepdim=True)

    def weight(self) -> torch.Tensor:
        """The effective convolution weight ``g · v / ‖v‖``."""
        return self.weight_v * (self.weight_g / self._v_norm())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C_in, L) → (N, C_out, L); output t depends on inputs ≤ t only."""
        return F.conv1d(F.pad(x, (self.left_padding, 0)), self.weight(), self.bias, dilation=self.dilation)


class TemporalBlock(nn.Module):
    """Two causal convolutions plus a (projected) residual connection."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, dilation: int, dropout: float) -> None:
        super().__init__()
        self.conv1 = WeightNormConv1d(in_channels, out_channels, kernel_size, dilation)
        self.conv2 = WeightNormConv1d(out_channels, out_channels, kernel_size, dilation)
        self.dropout = dropout
        self.downsample: nn.Conv1d | None = None
        if in_channels != out_channels:
            self.downsample = nn.Conv1d(in_channels, out_channels, 1)
            # The only initialisation of the reference's init_weights() that takes effect (§1.2).
            nn.init.xavier_uniform_(self.downsample.weight, gain=math.sqrt(2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C_in, L) → (N, C_out, L)."""
        y = F.dropout1d(F.leaky_relu(self.conv1(x), LEAKY_SLOPE), self.dropout, self.training)
        y = F.dropout1d(F.leaky_relu(self.conv2(y), LEAKY_SLOPE), self.dropout, self.training)
        residual = x if self.downsample is None else self.downsample(x)
        return F.leaky_relu(y + residual, LEAKY_SLOPE)


class TemporalConvNet(nn.Module):
    """Stack of :class:`TemporalBlock` levels with dilations 1, 2, 4, …; input and output are (N, C, L)."""

    def __init__(self, in_channels: int, channels: tuple[int, ...], kernel_size: int, dropout: float) -> None:
        super().__init__()
        blocks = []
        for level, out_channels in enumerate(channels):
            blocks.append(TemporalBlock(in_channels, out_channels, kernel_size, 2**level, dropout))
            in_channels = out_channels
        self.blocks = nn.ModuleList(blocks)
        self.kernel_size = kernel_size

    @property
    def receptive_field(self) -> int:
        """Number of input steps an output depends on (121 for four levels with k=5)."""
        return 1 + 2 * (self.kernel_size - 1) * sum(2**level for level in range(len(self.blocks)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Apply every level in turn."""
        for block in self.blocks:
            x = block(x)
        return x
