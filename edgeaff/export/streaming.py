"""The streaming temporal graph: the TCNs with their causal history carried as explicit state (``design.md`` §4).

Every causal convolution with kernel k and dilation d needs the last ``(k-1)·d`` inputs it has seen. One step takes
a chunk of C ≥ 1 new frames and the packed state, prepends each convolution's history to its new inputs, runs the
convolution without padding and keeps the last ``(k-1)·d`` inputs as the new history. Fusion and heads work per
frame and need no state. A zero state is exactly the zero padding of the windowed graph, so from a zero state the
step reproduces the windowed predictions frame for frame; on a long stream it equals the windowed result of any
window once that window has seen the receptive field (121 frames for the paper's TCNs).

The state of all models is one float32 tensor (B, S); the manifest's
:class:`~edgeaff.runtime.artifacts.manifest.StateSegment` rows say where each convolution's (channels, steps) block
sits (row-major, oldest step first).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F  # noqa: N812
from torch import nn

from edgeaff.export.temporal_graph import AudioNormalizer
from edgeaff.runtime.artifacts.manifest import StateSegment
from edgeaff.runtime.spec import AudioNormalization
from edgeaff.train.model import AudioVisualTemporalModel, EmotionModel
from edgeaff.train.tcn import LEAKY_SLOPE, TemporalBlock, TemporalConvNet, WeightNormConv1d

STATE_INPUT = "state"
STATE_OUTPUT = "state_out"


class _StreamingConv(nn.Module):
    """A causal convolution applied to [history | new inputs] without padding."""

    def __init__(self, conv: WeightNormConv1d) -> None:
        super().__init__()
        self.steps = conv.left_padding
        self.dilation = conv.dilation
        self.weight = nn.Parameter(conv.weight().detach().clone(), requires_grad=False)
        self.bias = nn.Parameter(conv.bias.detach().clone(), requires_grad=False)

    def forward(self, x: torch.Tensor, history: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        full = torch.cat([history, x], dim=2)
        y = F.conv1d(full, self.weight, self.bias, dilation=self.dilation)
        return y, full[:, :, full.shape[2] - self.steps :]


class _StreamingBlock(nn.Module):
    def __init__(self, block: TemporalBlock) -> None:
        super().__init__()
        self.conv1 = _StreamingConv(block.conv1)
        self.conv2 = _StreamingConv(block.conv2)
        self.downsample = block.downsample

    def forward(
        self, x: torch.Tensor, history1: torch.Tensor, history2: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        y, new1 = self.conv1(x, history1)
        y, new2 = self.conv2(F.leaky_relu(y, LEAKY_SLOPE), history2)
        y = F.leaky_relu(y, LEAKY_SLOPE)
        residual = x if self.downsample is None else self.downsample(x)
        return F.leaky_relu(y + residual, LEAKY_SLOPE), new1, new2


class _StreamingTcn(nn.Module):
    def __init__(self, tcn: TemporalConvNet) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(_StreamingBlock(b) for b in tcn.blocks if isinstance(b, TemporalBlock))

    def forward(self, x: torch.Tensor, histories: list[torch.Tensor]) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """(B, C, T) and two histories per block → (B, C_out, T) and the new histories."""
        new: list[torch.Tensor] = []
        for index, block in enumerate(self.blocks):
            x, h1, h2 = block(x, histories[2 * index], histories[2 * index + 1])
            new += [h1, h2]
        return x, new


def _tcns(model: EmotionModel) -> list[tuple[str, TemporalConvNet]]:
    temporal = model.temporal
    if isinstance(temporal, AudioVisualTemporalModel):
        return [("visual", temporal.visual_tcn), ("vggish", temporal.vggish_tcn), ("mfcc", temporal.mfcc_tcn)]
    return [("visual", temporal.visual_tcn)]


def state_layout(models: list[EmotionModel]) -> tuple[StateSegment, ...]:
    """Segments of the packed state, in model, branch (visual, vggish, mfcc), block, conv order."""
    segments: list[StateSegment] = []
    offset = 0
    for index, model in enumerate(models):
        for branch, tcn in _tcns(model):
            for level, block in enumerate(tcn.blocks):
                assert isinstance(block, TemporalBlock)
                for number, conv in ((1, block.conv1), (2, block.conv2)):
                    channels = conv.weight_v.shape[1]
                    segment = StateSegment(index, branch, level, number, channels, conv.left_padding, offset)
                    segments.append(segment)
                    offset += segment.size
    return tuple(segments)


class StreamingEnsemble(nn.Module):
    """One streaming step for every model.

    ``forward(embeddings (B, C, M, E)[, vggish (B, C, 128), mfcc (B, C, 39)], state (B, S))`` →
    ``(predictions (B, C, M), state_out (B, S))``; audio is raw, normalised inside as in the windowed graph.
    """

    def __init__(self, models: list[EmotionModel], normalizations: list[AudioNormalization | None]) -> None:
        super().__init__()
        self.segments = state_layout(models)
        self.state_size = sum(s.size for s in self.segments)
        self.multimodal = any(m.config.multimodal for m in models)
        self.tcns = nn.ModuleList(nn.ModuleList(_StreamingTcn(t) for _, t in _tcns(m)) for m in models)
        self.fusions = nn.ModuleList(
            m.temporal.fusion if isinstance(m.temporal, AudioVisualTemporalModel) else nn.Identity() for m in models
        )
        self.regressors = nn.ModuleList(m.temporal.regressor for m in models)
        normalizers: list[nn.Module] = []
        for model, normalization in zip(models, normalizations, strict=True):
            if model.config.multimodal:
                if normalization is None:
                    raise ValueError("a multimodal model needs its audio normalisation statistics")
                normalizers.append(AudioNormalizer(normalization))
            else:
                normalizers.append(nn.Identity())
        self.normalizers = nn.ModuleList(normalizers)

    def forward(
        self,
        embeddings: torch.Tensor,
        vggish: torch.Tensor | None = None,
        mfcc: torch.Tensor | None = None,
        state: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Advance every model by the chunk's frames."""
        assert state is not None
        batch, steps = embeddings.shape[0], embeddings.shape[1]
        histories = [state[:, s.offset : s.offset + s.size].reshape(batch, s.channels, s.steps) for s in self.segments]
        cursor = 0
        predictions: list[torch.Tensor] = []
        new_state: list[torch.Tensor] = []
        for index, tcns in enumerate(self.tcns):
            inputs = [embeddings[:, :, index, :]]
            normalizer = self.normalizers[index]
            if isinstance(normalizer, AudioNormalizer):
                assert vggish is not None and mfcc is not None
                inputs += list(normalizer(vggish, mfcc))
            branches = []
            for tcn, x in zip(list(tcns), inputs, strict=True):  # type: ignore[call-overload]
                assert isinstance(tcn, _StreamingTcn)
                count = 2 * len(tcn.blocks)
                hidden, new = tcn(x.transpose(1, 2), histories[cursor : cursor + count])
                cursor += count
                new_state += [h.reshape(batch, -1) for h in new]
                hidden = hidden.transpose(1, 2)
                branches.append(hidden.reshape(batch * steps, hidden.shape[-1]))
            fusion = self.fusions[index]
            fused = branches[0] if isinstance(fusion, nn.Identity) else fusion(branches)
            predictions.append(self.regressors[index](fused).reshape(batch, steps))
        return torch.stack(predictions, dim=-1), torch.cat(new_state, dim=1)
