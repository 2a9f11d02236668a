"""The streaming temporal graph: the TCNs with their causal history carried as explicit state (``design.md`` §4).

Every causal convolution with kernel k and dilation d needs the last ``(k-1)·d`` inputs it has seen. One step takes
a chunk of C ≥ 1 new frames and the packed state, prepends each convolution's history to its new inputs, runs the
convolution without padding and keeps the last ``(k-1)·d`` inputs as the new history. Fusion and heads work per
frame and need no state. A zero state is exactly the zero padding of the windowed graph, so from a zero state the
step reproduces the windowed predictions frame for frame; on a long stream it equals the windowed result of any
window once that window has seen the receptive field (121 frames for the paper's TCNs).

The models run as groups of batched operators (:mod:`edgeaff.export.grouped_temporal`), so a step costs about one
operator per TCN layer, not one per layer and model. The state of all models is one float32 tensor (B, S), packed
by grouped convolution: for each group, branch, level and convolution, the (G·C, steps) history of its G models
(model g's channels first for g = 0, then g = 1, ...). Each model's own history of one convolution is therefore one
(channels, steps) row-major block, oldest step first, and the manifest's
:class:`~edgeaff.runtime.artifacts.manifest.StateSegment` rows, one per model and convolution in offset order, say
where each block sits.
"""

from __future__ import annotations

import torch
from torch import nn

from edgeaff.export.grouped_temporal import TemporalGroup, assemble, build_groups
from edgeaff.runtime.artifacts.manifest import StateSegment
from edgeaff.runtime.spec import AudioNormalization
from edgeaff.train.model import EmotionModel

STATE_INPUT = "state"
STATE_OUTPUT = "state_out"


def state_layout(groups: nn.ModuleList) -> tuple[StateSegment, ...]:
    """Segments of the packed state in offset order: group, branch, level, convolution, then model."""
    segments: list[StateSegment] = []
    offset = 0
    for group in groups:
        assert isinstance(group, TemporalGroup)
        for branch, level, number, conv in group.convs:
            for model in group.indices:
                segment = StateSegment(model, branch, level, number, conv.in_channels, conv.steps, offset)
                segments.append(segment)
                offset += segment.size
    return tuple(segments)


class StreamingEnsemble(nn.Module):
    """One streaming step for every model.

    ``forward(embeddings (B, C, M, E)[, vggish (B, C, 128), mfcc (B, C, 39)], state (B, S))`` →
    ``(predictions (B, C, M), state_out (B, S))``; audio is raw, normalised inside as in the windowed graph.

    Args:
        models: the fold models in bundle order.
        normalizations: their audio statistics (``None`` for unimodal models).
        grouped: batch the models of one structure into shared operators (``False``: the per-model graph).
    """

    def __init__(
        self, models: list[EmotionModel], normalizations: list[AudioNormalization | None], *, grouped: bool = True
    ) -> None:
        super().__init__()
        self.groups = build_groups(models, normalizations, grouped=grouped)
        self.segments = state_layout(self.groups)
        self.state_size = sum(s.size for s in self.segments)
        self.multimodal = any(m.config.multimodal for m in models)
        # One history tensor per grouped convolution: its G models' segments side by side.
        self._sizes: list[int] = []
        for group in self.groups:
            assert isinstance(group, TemporalGroup)
            self._sizes += [group.size * conv.in_channels * conv.steps for _, _, _, conv in group.convs]

    def forward(
        self,
        embeddings: torch.Tensor,
        vggish: torch.Tensor | None = None,
        mfcc: torch.Tensor | None = None,
        state: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Advance every model by the chunk's frames."""
        assert state is not None
        batch = embeddings.shape[0]
        histories = list(torch.split(state, self._sizes, dim=1)) if len(self._sizes) > 1 else [state]
        cursor = 0
        outputs: list[torch.Tensor] = []
        new_state: list[torch.Tensor] = []
        for group in self.groups:
            assert isinstance(group, TemporalGroup)
            hidden = []
            for tcn, x in zip(group.branch_tcns, group.inputs(embeddings, vggish, mfcc), strict=True):
                count = len(tcn.convs)
                shaped = [
                    h.reshape(batch, conv.groups, conv.steps, conv.in_channels)
                    for h, conv in zip(histories[cursor : cursor + count], tcn.convs, strict=True)
                ]
                cursor += count
                y, new = tcn.step(x, shaped)
                new_state += [h.reshape(batch, -1) for h in new]
                hidden.append(y)
            outputs.append(group.head(hidden))
        return assemble(list(self.groups), outputs), torch.cat(new_state, dim=1)  # type: ignore[arg-type]
