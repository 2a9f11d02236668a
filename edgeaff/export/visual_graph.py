"""The per-frame visual graph: uint8 face crops in, every model's embedding out (``design.md`` §4).

Preprocessing lives inside the graph, so a runtime feeds the stored 48×48 RGB crops as they are: centre crop to the
model's input size (``FaceSpec.crop_offset``), ``(x / 255 - mean) / std``, NHWC → NCHW. Then the backbones.

Shared trunk: the recipe fine-tunes only the backbone groups of :meth:`IRBackbone.finetune_groups`; everything before
them (stem and the first units) is the frozen, pretrained trunk. Models whose trunks are bit-identical (parameters
and BatchNorm statistics, compared by hash) share one copy of it, computed once per frame; each model keeps its own
tail (released units, output layer, L2 normalisation). With no two trunks alike, every model has a whole backbone.
"""

from __future__ import annotations

import dataclasses

import torch
from torch import nn

from edgeaff.runtime.spec import FaceSpec
from edgeaff.train.backbone import IRBackbone
from edgeaff.train.checkpoint import tensor_digest
from edgeaff.train.model import EmotionModel

FRAMES_INPUT = "frames"
EMBEDDINGS_OUTPUT = "embeddings"


def trunk_unit_count(backbone: IRBackbone) -> int:
    """Number of leading residual units that no fine-tuning group releases (the frozen trunk's units)."""
    released = [
        int(prefix.split(".")[1])
        for group in backbone.finetune_groups()
        for prefix in group
        if prefix.startswith("units.")
    ]
    return min(released) if released else len(backbone.units)


def trunk_digest(backbone: IRBackbone) -> str:
    """sha256 over the frozen trunk's tensors: stem and leading units, parameters and BatchNorm statistics.

    ``num_batches_tracked`` counters are left out: they never change an eval-mode output.
    """
    units = trunk_unit_count(backbone)
    prefixes = ("stem_", *(f"units.{i}." for i in range(units)))
    state = {
        name: tensor
        for name, tensor in backbone.state_dict().items()
        if name.startswith(prefixes) and not name.endswith("num_batches_tracked")
    }
    return tensor_digest(state)


@dataclasses.dataclass(frozen=True)
class TrunkPlan:
    """How the models' backbones are laid out in the visual graph.

    Attributes:
        shared: True when one trunk serves every model (and there is more than one model).
        groups: for each distinct trunk, the indices of the models that use it.
        digests: the trunk hash of each group.
        trunk_units: leading residual units in a trunk (plus the stem).
    """

    shared: bool
    groups: tuple[tuple[int, ...], ...]
    digests: tuple[str, ...]
    trunk_units: int


def plan_trunks(models: list[EmotionModel]) -> TrunkPlan:
    """Group models by trunk hash; sharing is used only when all trunks are identical (else one trunk per model)."""
    digests = [trunk_digest(m.backbone) for m in models]
    units = trunk_unit_count(models[0].backbone)
    if len(set(digests)) == 1 and len(models) > 1:
        return TrunkPlan(True, (tuple(range(len(models))),), (digests[0],), units)
    return TrunkPlan(False, tuple((i,) for i in range(len(models))), tuple(digests), units)


class _Trunk(nn.Module):
    def __init__(self, backbone: IRBackbone, units: int) -> None:
        super().__init__()
        self.stem_conv = backbone.stem_conv
        self.stem_bn = backbone.stem_bn
        self.stem_prelu = backbone.stem_prelu
        self.units = nn.ModuleList(backbone.units[:units])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem_prelu(self.stem_bn(self.stem_conv(x)))
        for unit in self.units:
            x = unit(x)
        return x


class _Tail(nn.Module):
    def __init__(self, backbone: IRBackbone, units: int) -> None:
        super().__init__()
        self.units = nn.ModuleList(backbone.units[units:])
        self.embedding = backbone.embedding

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for unit in self.units:
            x = unit(x)
        features = self.embedding(x)
        return features / torch.linalg.vector_norm(features, dim=1, keepdim=True)


class VisualEnsemble(nn.Module):
    """uint8 frames (N, S, S, 3) → embeddings (N, M, E), one row per model in bundle order."""

    def __init__(self, models: list[EmotionModel], face: FaceSpec, plan: TrunkPlan) -> None:
        super().__init__()
        size = models[0].config.backbone.input_size
        if size != face.crop_size:
            raise ValueError(f"backbone input size {size} differs from the feature spec's crop size {face.crop_size}")
        self.offset = face.crop_offset
        self.size = size
        self.mean = face.scale_mean
        self.std = face.scale_std
        self.trunks = nn.ModuleList(_Trunk(models[g[0]].backbone, plan.trunk_units) for g in plan.groups)
        self.tails = nn.ModuleList(_Tail(m.backbone, plan.trunk_units) for m in models)
        self.trunk_of_model = [next(i for i, g in enumerate(plan.groups) if m in g) for m in range(len(models))]

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        """Crop, scale, transpose, embed."""
        end = self.offset + self.size
        x = frames[:, self.offset : end, self.offset : end, :].to(torch.float32)
        x = (x / 255.0 - self.mean) / self.std
        x = x.permute(0, 3, 1, 2)
        trunk_outputs = [trunk(x) for trunk in self.trunks]
        embeddings = [tail(trunk_outputs[t]) for tail, t in zip(self.tails, self.trunk_of_model, strict=True)]
        return torch.stack(embeddings, dim=1)
