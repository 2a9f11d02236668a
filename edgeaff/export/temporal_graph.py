"""The windowed temporal graph: every model's TCNs, fusion and head over a window of per-frame features.

Inputs are the visual graph's embeddings for the window, (B, L, M, E), and, when any model is multimodal, the *raw*
VGGish (B, L, 128) and MFCC (B, L, 39) features. Each multimodal model normalises the audio with its own fold's
scalar statistics inside the graph, so the runtime computes the features once and never applies constants itself
(the manifest records them for information only). Output: (B, L, M), one prediction per frame and model.

The models run as groups of batched operators (:mod:`edgeaff.export.grouped_temporal`): one grouped convolution per
TCN layer and one batched product per fusion or head layer for all models of the same structure, the same grouping
as the streaming graph.
"""

from __future__ import annotations

import torch
from torch import nn

from edgeaff.export.grouped_temporal import TemporalGroup, assemble, build_groups
from edgeaff.runtime.spec import AudioNormalization
from edgeaff.train.model import EmotionModel

EMBEDDINGS_INPUT = "embeddings"
VGGISH_INPUT = "vggish"
MFCC_INPUT = "mfcc"
PREDICTIONS_OUTPUT = "predictions"


class TemporalEnsemble(nn.Module):
    """(B, L, M, E) embeddings [+ raw vggish, mfcc] → (B, L, M) predictions of every model.

    Args:
        models: the fold models in bundle order.
        normalizations: their audio statistics (``None`` for unimodal models).
        grouped: batch the models of one structure into shared operators (``False``: one set of operators per
            model, the per-model graph).
    """

    def __init__(
        self, models: list[EmotionModel], normalizations: list[AudioNormalization | None], *, grouped: bool = True
    ) -> None:
        super().__init__()
        self.groups = build_groups(models, normalizations, grouped=grouped)
        self.multimodal = any(m.config.multimodal for m in models)

    def forward(
        self, embeddings: torch.Tensor, vggish: torch.Tensor | None = None, mfcc: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Run every group on the window from a zero history; audio only when some model is multimodal."""
        outputs = []
        for group in self.groups:
            assert isinstance(group, TemporalGroup)
            inputs = group.window_inputs(embeddings, vggish, mfcc)
            hidden = [tcn.window(x) for tcn, x in zip(group.branch_tcns, inputs, strict=True)]
            outputs.append(group.head(group.window_outputs(hidden)))
        return assemble(list(self.groups), outputs)  # type: ignore[arg-type]
