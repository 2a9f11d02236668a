"""Every model's temporal part as one set of batched operators (``design.md`` §4; grouped streaming heads).

A bundle holds up to twelve models whose TCNs, fusion and heads have the same shapes. Run one by one they cost a few
hundred tiny operators per frame, and on a CPU (or a GPU's kernel launches) the fixed cost per operator, not the
arithmetic, sets the speed of a streaming step. Here the models with the same temporal structure form a *group*, and
each layer of the group is **one** operator for all its models:

* a TCN convolution of G models is one grouped 1-D convolution (``groups=G``) over ``G·C`` channels, model g owning
  channels ``[g·C, (g+1)·C)``; the 1×1 residual projection likewise;
* the fusion's and head's linear layers are batched matrix products over a leading model axis ``(G, N, d) @ (G, d,
  d')``; the attention over the three modalities, the LayerNorm and the head follow with the same leading axis;
* each model's audio normalisation ``(x - mean) / std`` is one broadcast subtraction and division for the group.

Models group by :func:`temporal_signature` (kind, TCN widths, kernel, fusion variant, attention width); a bundle of
one architecture is one group, a mixed bundle (say unimodal and both fusion variants) a few. The arithmetic is each
model's own: a grouped convolution sums exactly the products of the per-model convolution, so the outputs equal
the per-model graphs' up to float32 summation order (well below 1e-5). ``grouped=False`` puts every model in a group
of its own, which is the per-model graph the tests and benchmarks compare with.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import torch
import torch.nn.functional as F  # noqa: N812
from torch import nn

from edgeaff.runtime.spec import AudioNormalization
from edgeaff.train.fusion import LeaderFollowerFusion
from edgeaff.train.model import AudioVisualTemporalModel, EmotionModel
from edgeaff.train.tcn import LEAKY_SLOPE, TemporalBlock, TemporalConvNet, WeightNormConv1d

BRANCHES = ("visual", "vggish", "mfcc")


def temporal_signature(model: EmotionModel) -> tuple[object, ...]:
    """What must be equal for two models to share grouped operators: kind, input and TCN widths, kernel, fusion."""
    config = model.config
    audio = (config.audio_channels, config.vggish_dim, config.mfcc_dim) if config.multimodal else None
    return (
        config.kind,
        config.backbone.embedding_dim,
        config.visual_channels,
        config.kernel_size,
        audio,
        config.fusion,
        config.attention_dim if config.multimodal else None,
    )


def plan_groups(models: Sequence[EmotionModel], *, grouped: bool = True) -> tuple[tuple[int, ...], ...]:
    """The model indices of each group, in order of each group's first model.

    With ``grouped=False`` every model is a group of its own (the per-model layout).
    """
    if not grouped:
        return tuple((index,) for index in range(len(models)))
    groups: dict[tuple[object, ...], list[int]] = {}
    for index, model in enumerate(models):
        groups.setdefault(temporal_signature(model), []).append(index)
    return tuple(tuple(members) for members in groups.values())


def tcns_of(model: EmotionModel) -> list[tuple[str, TemporalConvNet]]:
    """The model's TCNs by branch, leader first: (visual[, vggish, mfcc])."""
    temporal = model.temporal
    if isinstance(temporal, AudioVisualTemporalModel):
        return [("visual", temporal.visual_tcn), ("vggish", temporal.vggish_tcn), ("mfcc", temporal.mfcc_tcn)]
    return [("visual", temporal.visual_tcn)]


def _linears(modules: Iterable[nn.Module]) -> list[nn.Linear]:
    layers = list(modules)
    assert all(isinstance(layer, nn.Linear) for layer in layers)
    return layers  # type: ignore[return-value]


def _constant(tensor: torch.Tensor) -> nn.Parameter:
    return nn.Parameter(tensor.detach().clone().contiguous(), requires_grad=False)


class GroupedCausalConv(nn.Module):
    """G weight-normalised causal convolutions (same kernel k, dilation d and widths) as one operator.

    ``g · v / ‖v‖`` is computed once here, so the graph holds each model's effective weight as a constant. Two forms
    of the same weights:

    * :meth:`window` (a whole window, channels first (B, G·C_in, T)): one grouped convolution, model g owning channels
      ``[g·C_in, (g+1)·C_in)``; zero history before the first step;
    * :meth:`step` (a chunk of new steps, channels last (B, G, T, C_in), with the last ``(k-1)·d`` inputs as
      history): the k taps of every new step gathered into one row, then one batched product
      ``(B, G, T, k·C_in) @ (G, k·C_in, C_out)``. For a single step at batch 1 that is G matrix-vector products in one
      kernel, which a CPU runs far faster than G tiny convolutions.
    """

    offsets: torch.Tensor

    def __init__(self, convs: Sequence[WeightNormConv1d]) -> None:
        super().__init__()
        self.groups = len(convs)
        self.dilation = convs[0].dilation
        self.steps = convs[0].left_padding  # the history one output needs: (k - 1) · d inputs
        self.in_channels = convs[0].weight_v.shape[1]
        weights = [conv.weight() for conv in convs]  # (C_out, C_in, k) each
        kernel = weights[0].shape[2]
        self.weight = _constant(torch.cat(weights))  # (G·C_out, C_in, k)
        self.bias = _constant(torch.cat([conv.bias for conv in convs]))
        # Row j·C_in + c of model g's tap matrix is its weight for input channel c at tap j (tap k-1: the newest).
        self.tap_weight = _constant(torch.stack([w.permute(2, 1, 0).reshape(-1, w.shape[0]) for w in weights]))
        self.tap_bias = _constant(torch.stack([conv.bias for conv in convs]).unsqueeze(1))  # (G, 1, C_out)
        self.register_buffer("offsets", torch.arange(kernel) * self.dilation, persistent=False)

    def window(self, x: torch.Tensor) -> torch.Tensor:
        """(B, G·C_in, T) → (B, G·C_out, T) from a zero history (the training graph's left padding)."""
        padded = F.pad(x, (self.steps, 0))
        return F.conv1d(padded, self.weight, self.bias, dilation=self.dilation, groups=self.groups)

    def step(self, x: torch.Tensor, history: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, G, T, C_in) new steps and (B, G, (k-1)·d, C_in) history → (B, G, T, C_out) and the next history."""
        full = torch.cat([history, x], dim=2)
        count = x.shape[2]
        index = (torch.arange(count, device=x.device).unsqueeze(1) + self.offsets).reshape(-1)  # taps of each step
        taps = torch.index_select(full, 2, index).reshape(x.shape[0], self.groups, count, -1)
        return torch.matmul(taps, self.tap_weight) + self.tap_bias, full[:, :, count:]


class GroupedPointwise(nn.Module):
    """G 1×1 convolutions (the residual projections), in both layouts of :class:`GroupedCausalConv`."""

    def __init__(self, convs: Sequence[nn.Conv1d]) -> None:
        super().__init__()
        self.groups = len(convs)
        biases = [conv.bias if conv.bias is not None else torch.zeros(conv.out_channels) for conv in convs]
        self.weight = _constant(torch.cat([conv.weight for conv in convs]))  # (G·C_out, C_in, 1)
        self.bias = _constant(torch.cat(biases))
        self.matrix = _constant(torch.stack([conv.weight[:, :, 0].t() for conv in convs]))  # (G, C_in, C_out)
        self.row_bias = _constant(torch.stack(biases).unsqueeze(1))  # (G, 1, C_out)

    def window(self, x: torch.Tensor) -> torch.Tensor:
        """(B, G·C_in, T) → (B, G·C_out, T)."""
        return F.conv1d(x, self.weight, self.bias, groups=self.groups)

    def step(self, x: torch.Tensor) -> torch.Tensor:
        """(B, G, T, C_in) → (B, G, T, C_out)."""
        return torch.matmul(x, self.matrix) + self.row_bias


class GroupedBlock(nn.Module):
    """One TCN level of G models: two grouped causal convolutions and the (projected) residual."""

    def __init__(self, blocks: Sequence[TemporalBlock]) -> None:
        super().__init__()
        self.conv1 = GroupedCausalConv([b.conv1 for b in blocks])
        self.conv2 = GroupedCausalConv([b.conv2 for b in blocks])
        projections = [b.downsample for b in blocks]
        self.downsample = None if projections[0] is None else GroupedPointwise(projections)  # type: ignore[arg-type]

    def window(self, x: torch.Tensor) -> torch.Tensor:
        """(B, G·C_in, T) → (B, G·C_out, T) from a zero history."""
        y = F.leaky_relu(self.conv2.window(F.leaky_relu(self.conv1.window(x), LEAKY_SLOPE)), LEAKY_SLOPE)
        residual = x if self.downsample is None else self.downsample.window(x)
        return F.leaky_relu(y + residual, LEAKY_SLOPE)

    def step(
        self, x: torch.Tensor, history1: torch.Tensor, history2: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(B, G, T, C_in) new steps given both convolutions' histories → outputs and both next histories."""
        y, new1 = self.conv1.step(x, history1)
        y, new2 = self.conv2.step(F.leaky_relu(y, LEAKY_SLOPE), history2)
        residual = x if self.downsample is None else self.downsample.step(x)
        return F.leaky_relu(F.leaky_relu(y, LEAKY_SLOPE) + residual, LEAKY_SLOPE), new1, new2


class GroupedTcn(nn.Module):
    """One branch's TCN for G models."""

    def __init__(self, tcns: Sequence[TemporalConvNet]) -> None:
        super().__init__()
        levels = [[b for b in tcn.blocks if isinstance(b, TemporalBlock)] for tcn in tcns]
        self.levels = [GroupedBlock(list(level)) for level in zip(*levels, strict=True)]
        self.blocks = nn.ModuleList(self.levels)  # registers the levels' constants

    @property
    def convs(self) -> list[GroupedCausalConv]:
        """The causal convolutions in state order (level by level, conv1 then conv2)."""
        return [conv for block in self.levels for conv in (block.conv1, block.conv2)]

    def window(self, x: torch.Tensor) -> torch.Tensor:
        """(B, G·C_in, T) → (B, G·C_out, T), every level from a zero history."""
        for block in self.levels:
            x = block.window(x)
        return x

    def step(self, x: torch.Tensor, histories: Sequence[torch.Tensor]) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """(B, G, T, C_in) → (B, G, T, C_out); ``histories`` has two entries per level (see :attr:`convs`)."""
        new: list[torch.Tensor] = []
        for index, block in enumerate(self.levels):
            x, h1, h2 = block.step(x, histories[2 * index], histories[2 * index + 1])
            new += [h1, h2]
        return x, new


class GroupedLinear(nn.Module):
    """G linear layers as one batched product: (…, G, T, d_in) → (…, G, T, d_out)."""

    def __init__(self, layers: Sequence[nn.Linear]) -> None:
        super().__init__()
        self.weight = _constant(torch.stack([layer.weight.t() for layer in layers]))  # (G, d_in, d_out)
        self.bias = _constant(torch.stack([layer.bias for layer in layers]).unsqueeze(1))  # (G, 1, d_out)

    @classmethod
    def merged(cls, columns: Sequence[Sequence[nn.Linear]]) -> GroupedLinear:
        """Several layers reading the same input, side by side: ``columns[j][g]`` is layer j of model g; the output
        holds layer 0's outputs, then layer 1's, ... (one product instead of one per layer)."""
        fused = []
        for per_model in zip(*columns, strict=True):
            layer = nn.Linear(per_model[0].in_features, sum(p.out_features for p in per_model))
            with torch.no_grad():
                layer.weight.copy_(torch.cat([p.weight for p in per_model]))
                layer.bias.copy_(torch.cat([p.bias for p in per_model]))
            fused.append(layer)
        return cls(fused)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Model g's rows go through model g's layer."""
        return torch.matmul(x, self.weight) + self.bias


class GroupedFusion(nn.Module):
    """G leader-follower fusions (:class:`~edgeaff.train.fusion.LeaderFollowerFusion`, same variant and widths) on
    (B, G, T, d_m) features, leader first; returns (B, G, T, d_0 + 3·a)."""

    def __init__(self, fusions: Sequence[LeaderFollowerFusion]) -> None:
        super().__init__()
        first = fusions[0]
        self.variant = first.variant
        self.attention_dim = first.attention_dim
        count = len(first.key)
        if self.variant == "abaw2":
            # The aural Q and V read the aural keys: keys first, then Q and V from them.
            self.leader = GroupedLinear.merged([_linears(f.key[0] for f in fusions), *self._qv(fusions, 0)])
            self.keys = nn.ModuleList(GroupedLinear(_linears(f.key[m] for f in fusions)) for m in range(1, count))
            self.followers = nn.ModuleList(GroupedLinear.merged(self._qv(fusions, m)) for m in range(1, count))
        else:
            self.projections = nn.ModuleList(
                GroupedLinear.merged([_linears(f.key[m] for f in fusions), *self._qv(fusions, m)]) for m in range(count)
            )
        norms = [f.norm for f in fusions]
        self.norm_shape = tuple(first.norm.normalized_shape)
        self.norm_eps = first.norm.eps
        width = math.prod(self.norm_shape)
        self.norm_weight = _constant(torch.stack([n.weight.reshape(width) for n in norms]).unsqueeze(1))
        self.norm_bias = _constant(torch.stack([n.bias.reshape(width) for n in norms]).unsqueeze(1))

    @staticmethod
    def _qv(fusions: Sequence[LeaderFollowerFusion], modality: int) -> list[list[nn.Linear]]:
        return [_linears(f.query[modality] for f in fusions), _linears(f.value[modality] for f in fusions)]

    def forward(self, features: Sequence[torch.Tensor]) -> torch.Tensor:
        """``features[m]`` is (B, G, T, d_m); the attention runs per model and per step over the modalities."""
        a = self.attention_dim
        keys, queries, values = [], [], []
        if self.variant == "abaw2":
            kqv = self.leader(features[0])
            keys.append(kqv[..., :a])
            queries.append(kqv[..., a : 2 * a])
            values.append(kqv[..., 2 * a :])
            for key_layer, qv_layer, x in zip(self.keys, self.followers, features[1:], strict=True):
                key = key_layer(x)
                qv = qv_layer(key)
                keys.append(key)
                queries.append(qv[..., :a])
                values.append(qv[..., a:])
        else:
            for layer, x in zip(self.projections, features, strict=True):
                kqv = layer(x)
                keys.append(kqv[..., :a])
                queries.append(kqv[..., a : 2 * a])
                values.append(kqv[..., 2 * a :])
        key_stack = torch.stack(keys, dim=-2)  # (B, G, T, 3, a)
        query_stack = torch.stack(queries, dim=-2)
        value_stack = torch.stack(values, dim=-2)
        scale = 1.0 / math.sqrt(a)
        if self.variant == "abaw2":
            scores = torch.matmul(key_stack, query_stack.transpose(-1, -2)) * scale
        else:
            scores = torch.matmul(query_stack, key_stack.transpose(-1, -2)) * scale
        attended = torch.matmul(torch.softmax(scores, dim=-1), value_stack) + value_stack
        flat = attended.flatten(-2)  # (B, G, T, 3·a): LayerNorm over the whole (3, a) block of each step
        normed = F.layer_norm(flat, (flat.shape[-1],), eps=self.norm_eps) * self.norm_weight + self.norm_bias
        return torch.cat([features[0], normed], dim=-1)


class TemporalGroup(nn.Module):
    """The temporal parts of the models in one group: grouped TCNs per branch, audio normalisation, fusion, head.

    Args:
        models: the group's models, all with the same :func:`temporal_signature`.
        normalizations: their audio statistics (``None`` for unimodal models).
        indices: their positions in the bundle (the embeddings' model axis).
        total: the number of models in the bundle.
    """

    index: torch.Tensor

    def __init__(
        self,
        models: Sequence[EmotionModel],
        normalizations: Sequence[AudioNormalization | None],
        *,
        indices: Sequence[int],
        total: int,
    ) -> None:
        super().__init__()
        self.size = len(models)
        self.indices = tuple(indices)
        self.select = list(self.indices) != list(range(total))  # the embeddings hold other models too
        self.register_buffer("index", torch.tensor(self.indices, dtype=torch.int64), persistent=False)
        per_model = [tcns_of(m) for m in models]
        self.branches = tuple(name for name, _ in per_model[0])
        self.branch_tcns = [GroupedTcn([tcns[b][1] for tcns in per_model]) for b in range(len(self.branches))]
        self.tcns = nn.ModuleList(self.branch_tcns)
        self.multimodal = models[0].config.multimodal
        temporals = [m.temporal for m in models]
        if self.multimodal:
            if any(n is None for n in normalizations):
                raise ValueError("a multimodal model needs its audio normalisation statistics")
            stats = [n for n in normalizations if n is not None]

            def column(values: list[float]) -> nn.Parameter:
                return _constant(torch.tensor(values, dtype=torch.float32).reshape(1, self.size, 1, 1))

            self.vggish_mean = column([s.vggish.mean for s in stats])
            self.vggish_std = column([s.vggish.std for s in stats])
            self.mfcc_mean = column([s.mfcc.mean for s in stats])
            self.mfcc_std = column([s.mfcc.std for s in stats])
            fusions = [t.fusion for t in temporals if isinstance(t, AudioVisualTemporalModel)]
            self.fusion: GroupedFusion | None = GroupedFusion(fusions)
        else:
            self.fusion = None
        self.regressor = GroupedLinear([t.regressor for t in temporals])

    @property
    def convs(self) -> list[tuple[str, int, int, GroupedCausalConv]]:
        """(branch, level, conv number, convolution) in state order."""
        return [
            (branch, index // 2, 1 + index % 2, conv)
            for branch, tcn in zip(self.branches, self.branch_tcns, strict=True)
            for index, conv in enumerate(tcn.convs)
        ]

    def inputs(
        self, embeddings: torch.Tensor, vggish: torch.Tensor | None, mfcc: torch.Tensor | None
    ) -> list[torch.Tensor]:
        """Each branch's input (B, G, T, C_in), channels last, from (B, T, M, E) embeddings and raw (B, T, D) audio."""
        own = torch.index_select(embeddings, 2, self.index) if self.select else embeddings
        channels = [own.transpose(1, 2)]
        if self.multimodal:
            assert vggish is not None and mfcc is not None
            for raw, mean, std in ((vggish, self.vggish_mean, self.vggish_std), (mfcc, self.mfcc_mean, self.mfcc_std)):
                channels.append((raw.unsqueeze(1) - mean) / std)
        return channels

    def window_inputs(
        self, embeddings: torch.Tensor, vggish: torch.Tensor | None, mfcc: torch.Tensor | None
    ) -> list[torch.Tensor]:
        """The same, channels first as the windowed convolutions take them: (B, G·C_in, T)."""
        return [x.transpose(2, 3).flatten(1, 2) for x in self.inputs(embeddings, vggish, mfcc)]

    def window_outputs(self, hidden: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        """Windowed TCN outputs (B, G·C, T) → channels last (B, G, T, C) for :meth:`head`."""
        return [h.reshape(h.shape[0], self.size, -1, h.shape[2]).transpose(2, 3) for h in hidden]

    def head(self, hidden: Sequence[torch.Tensor]) -> torch.Tensor:
        """Branch outputs (B, G, T, C), leader first → predictions (B, G, T)."""
        fused = hidden[0] if self.fusion is None else self.fusion(hidden)
        return self.regressor(fused).squeeze(-1)


def build_groups(
    models: Sequence[EmotionModel], normalizations: Sequence[AudioNormalization | None], *, grouped: bool = True
) -> nn.ModuleList:
    """One :class:`TemporalGroup` per group of :func:`plan_groups`."""
    if len(models) != len(normalizations):
        raise ValueError("one normalisation entry per model")
    missing = [
        i for i, (m, n) in enumerate(zip(models, normalizations, strict=True)) if m.config.multimodal and n is None
    ]
    if missing:
        raise ValueError(f"multimodal models {missing} have no audio normalisation statistics")
    return nn.ModuleList(
        TemporalGroup(
            [models[i] for i in members], [normalizations[i] for i in members], indices=members, total=len(models)
        )
        for members in plan_groups(models, grouped=grouped)
    )


def model_order(groups: Sequence[TemporalGroup]) -> list[int] | None:
    """Where each bundle model sits among the groups' concatenated outputs, or ``None`` when that is the model order."""
    order = [index for group in groups for index in group.indices]
    if order == sorted(order):
        return None
    return sorted(range(len(order)), key=order.__getitem__)


def assemble(groups: Sequence[TemporalGroup], outputs: Sequence[torch.Tensor]) -> torch.Tensor:
    """Per-group (B, G, T) predictions → (B, T, M) in the bundle's model order."""
    stacked = outputs[0] if len(outputs) == 1 else torch.cat(list(outputs), dim=1)
    order = model_order(groups)
    if order is not None:
        stacked = stacked[:, order]
    return stacked.transpose(1, 2)
