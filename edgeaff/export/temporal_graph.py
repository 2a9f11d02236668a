"""The windowed temporal graph: every model's TCNs, fusion and head over a window of per-frame features.

Inputs are the visual graph's embeddings for the window, (B, L, M, E), and, when any model is multimodal, the *raw*
VGGish (B, L, 128) and MFCC (B, L, 39) features. Each multimodal model normalises the audio with its own fold's
scalar statistics inside the graph, so the runtime computes the features once and never applies constants itself
(the manifest records them for information only). Output: (B, L, M), one prediction per frame and model.
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F  # noqa: N812
from torch import nn

from edgeaff.runtime.spec import AudioNormalization
from edgeaff.train.model import AudioVisualTemporalModel, EmotionModel
from edgeaff.train.tcn import TemporalBlock, WeightNormConv1d

EMBEDDINGS_INPUT = "embeddings"
VGGISH_INPUT = "vggish"
MFCC_INPUT = "mfcc"
PREDICTIONS_OUTPUT = "predictions"


class FoldedCausalConv(nn.Module):
    """A weight-normalised causal convolution with ``g · v / ‖v‖`` computed once (a constant in the graph)."""

    def __init__(self, conv: WeightNormConv1d) -> None:
        super().__init__()
        self.left_padding = conv.left_padding
        self.dilation = conv.dilation
        self.weight = nn.Parameter(conv.weight().detach().clone(), requires_grad=False)
        self.bias = nn.Parameter(conv.bias.detach().clone(), requires_grad=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Left-pad with zeros and convolve: output t depends on inputs <= t."""
        return F.conv1d(F.pad(x, (self.left_padding, 0)), self.weight, self.bias, dilation=self.dilation)


def fold_weight_norm(module: nn.Module) -> nn.Module:
    """A copy of ``module`` whose TCN convolutions carry their effective weights (fewer nodes, no runtime norms)."""
    folded = copy.deepcopy(module)
    for block in folded.modules():
        if isinstance(block, TemporalBlock):
            block.conv1 = FoldedCausalConv(block.conv1)  # type: ignore[assignment]
            block.conv2 = FoldedCausalConv(block.conv2)  # type: ignore[assignment]
    return folded


class AudioNormalizer(nn.Module):
    """``(x - mean) / std`` for VGGish and MFCC with one fold's scalar statistics."""

    def __init__(self, normalization: AudioNormalization) -> None:
        super().__init__()
        self.vggish_mean = normalization.vggish.mean
        self.vggish_std = normalization.vggish.std
        self.mfcc_mean = normalization.mfcc.mean
        self.mfcc_std = normalization.mfcc.std

    def forward(self, vggish: torch.Tensor, mfcc: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Raw features → the normalised features the model was trained on."""
        return (vggish - self.vggish_mean) / self.vggish_std, (mfcc - self.mfcc_mean) / self.mfcc_std


class TemporalEnsemble(nn.Module):
    """(B, L, M, E) embeddings [+ raw vggish, mfcc] → (B, L, M) predictions, reusing each model's own modules."""

    def __init__(self, models: list[EmotionModel], normalizations: list[AudioNormalization | None]) -> None:
        super().__init__()
        pairs = list(zip(models, normalizations, strict=True))
        missing = [i for i, (m, n) in enumerate(pairs) if m.config.multimodal and n is None]
        if missing:
            raise ValueError(f"multimodal models {missing} have no audio normalisation statistics")
        self.temporals = nn.ModuleList(fold_weight_norm(m.temporal) for m in models)
        self.normalizers = nn.ModuleList(
            AudioNormalizer(n) if m.config.multimodal and n is not None else nn.Identity()
            for m, n in zip(models, normalizations, strict=True)
        )
        self.multimodal = any(m.config.multimodal for m in models)

    def forward(
        self, embeddings: torch.Tensor, vggish: torch.Tensor | None = None, mfcc: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Run every model on its slice of ``embeddings``; audio only when some model is multimodal."""
        outputs = []
        for index, (temporal, normalizer) in enumerate(zip(self.temporals, self.normalizers, strict=True)):
            own = embeddings[:, :, index, :]
            if isinstance(temporal, AudioVisualTemporalModel):
                assert vggish is not None and mfcc is not None and isinstance(normalizer, AudioNormalizer)
                vggish_n, mfcc_n = normalizer(vggish, mfcc)
                outputs.append(temporal(own, vggish_n, mfcc_n))
            else:
                outputs.append(temporal(own))
        return torch.stack(outputs, dim=-1)
