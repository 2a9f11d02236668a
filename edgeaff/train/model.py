"""The per-dimension emotion network: backbone → TCN(s) → (fusion) → linear head (``reference.md`` §1.3-1.5).

``EmotionModel(frames, vggish=..., mfcc=...)`` maps normalised face crops (B, L, 3, 40, 40) and, for the multimodal
model, normalised VGGish (B, L, 128) and MFCC (B, L, 39) features to one prediction per frame, (B, L). There is no
output activation (the reference clips only after ensembling).

The network is split so that export can compile the per-frame part and the temporal part separately:
``model.backbone`` embeds frames, ``model.temporal`` maps (B, L, E) embeddings (+ audio) to (B, L).
"""

from __future__ import annotations

import torch
from torch import nn

from edgeaff.runtime.errors import InvalidInputError
from edgeaff.train.backbone import IRBackbone
from edgeaff.train.config import ModelConfig
from edgeaff.train.fusion import LeaderFollowerFusion
from edgeaff.train.tcn import TemporalConvNet


def _exporting() -> bool:
    """True while tracing/exporting, where only static checks may run."""
    return bool(torch.jit.is_tracing() or torch.compiler.is_exporting() or torch.compiler.is_compiling())


class VisualTemporalModel(nn.Module):
    """Unimodal temporal part: visual TCN → Linear(channels → 1)."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.visual_tcn = TemporalConvNet(
            config.backbone.embedding_dim, config.visual_channels, config.kernel_size, config.tcn_dropout
        )
        self.regressor = nn.Linear(config.visual_channels[-1], 1)

    def forward(self, embeddings: torch.Tensor) -> torch.Tensor:
        """(B, L, E) → (B, L)."""
        hidden = self.visual_tcn(embeddings.transpose(1, 2)).transpose(1, 2)
        return self.regressor(hidden).squeeze(-1)


class AudioVisualTemporalModel(nn.Module):
    """Multimodal temporal part: three TCNs, leader-follower fusion, Linear(→ 1)."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        if config.fusion is None:
            raise ValueError("the multimodal model needs a fusion variant")
        self.visual_tcn = TemporalConvNet(
            config.backbone.embedding_dim, config.visual_channels, config.kernel_size, config.tcn_dropout
        )
        self.vggish_tcn = TemporalConvNet(
            config.vggish_dim, config.audio_channels, config.kernel_size, config.tcn_dropout
        )
        self.mfcc_tcn = TemporalConvNet(config.mfcc_dim, config.audio_channels, config.kernel_size, config.tcn_dropout)
        dims = (config.visual_channels[-1], config.audio_channels[-1], config.audio_channels[-1])
        self.fusion = LeaderFollowerFusion(dims, config.attention_dim, config.fusion)
        self.regressor = nn.Linear(self.fusion.output_dim, 1)

    def forward(self, embeddings: torch.Tensor, vggish: torch.Tensor, mfcc: torch.Tensor) -> torch.Tensor:
        """(B, L, E), (B, L, 128), (B, L, 39) → (B, L)."""
        batch, length = embeddings.shape[0], embeddings.shape[1]
        branches = []
        for tcn, x in ((self.visual_tcn, embeddings), (self.vggish_tcn, vggish), (self.mfcc_tcn, mfcc)):
            hidden = tcn(x.transpose(1, 2)).transpose(1, 2)
            branches.append(hidden.reshape(batch * length, hidden.shape[-1]))
        fused = self.fusion(branches)
        return self.regressor(fused).reshape(batch, length)


class EmotionModel(nn.Module):
    """Backbone plus temporal part for one emotion dimension."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        self.backbone = IRBackbone(config.backbone)
        self.temporal: VisualTemporalModel | AudioVisualTemporalModel
        if config.multimodal:
            self.temporal = AudioVisualTemporalModel(config)
        else:
            self.temporal = VisualTemporalModel(config)

    def embed(self, frames: torch.Tensor) -> torch.Tensor:
        """(B, L, 3, S, S) normalised frames → (B, L, E) unit-norm embeddings."""
        batch, length = frames.shape[0], frames.shape[1]
        flat = frames.reshape(batch * length, *frames.shape[2:])
        if self.backbone.stem_conv.weight.is_contiguous(memory_format=torch.channels_last) and not _exporting():
            flat = flat.contiguous(memory_format=torch.channels_last)
        return self.backbone(flat).reshape(batch, length, -1)

    def forward(
        self, frames: torch.Tensor, vggish: torch.Tensor | None = None, mfcc: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Predict one value per frame.

        Args:
            frames: (B, L, 3, S, S) float, scaled to [-1, 1].
            vggish: (B, L, vggish_dim) normalised VGGish features (multimodal only).
            mfcc: (B, L, mfcc_dim) normalised MFCC features (multimodal only).

        Returns:
            (B, L) predictions.

        Raises:
            InvalidInputError: wrong ranks or feature widths, or audio missing (multimodal) / given (unimodal).
        """
        self._check_inputs(frames, vggish, mfcc)
        embeddings = self.embed(frames)
        if isinstance(self.temporal, AudioVisualTemporalModel):
            assert vggish is not None and mfcc is not None  # guaranteed by _check_inputs
            return self.temporal(embeddings, vggish.to(embeddings.dtype), mfcc.to(embeddings.dtype))
        return self.temporal(embeddings)

    def _check_inputs(self, frames: torch.Tensor, vggish: torch.Tensor | None, mfcc: torch.Tensor | None) -> None:
        size = self.config.backbone.input_size
        if frames.dim() != 5 or tuple(frames.shape[2:]) != (3, size, size):
            raise InvalidInputError(f"frames must be (B, L, 3, {size}, {size}); got {tuple(frames.shape)}")
        if not self.config.multimodal:
            if vggish is not None or mfcc is not None:
                raise InvalidInputError("the unimodal model takes frames only; do not pass vggish/mfcc")
            return
        if vggish is None or mfcc is None:
            raise InvalidInputError("the multimodal model needs vggish=(B, L, 128) and mfcc=(B, L, 39) features")
        for name, tensor, width in (("vggish", vggish, self.config.vggish_dim), ("mfcc", mfcc, self.config.mfcc_dim)):
            if tensor.dim() != 3 or tensor.shape[-1] != width:
                raise InvalidInputError(f"{name} must be (B, L, {width}); got {tuple(tensor.shape)}")
            if not _exporting() and tuple(tensor.shape[:2]) != tuple(frames.shape[:2]):
                covered, expected = tuple(tensor.shape[:2]), tuple(frames.shape[:2])
                raise InvalidInputError(f"{name} covers {covered} (batch, frames) but frames cover {expected}")


def build_model(config: ModelConfig) -> EmotionModel:
    """Construct a freshly initialised model for ``config``."""
    return EmotionModel(config)


def count_parameters(module: nn.Module) -> int:
    """Number of scalar parameters (trainable or not)."""
    return sum(p.numel() for p in module.parameters())
