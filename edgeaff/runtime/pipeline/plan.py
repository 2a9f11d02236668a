"""Which of a bundle's models make each dimension's prediction.

A bundle may hold any mix of folds, dimensions and model kinds (``docs/export.md``). Per dimension, one kind is
used, all of its folds are ensembled:

* the source has audio: the multimodal models if the bundle has any for that dimension, else the unimodal ones;
* no audio: the unimodal models if there are any; otherwise the multimodal ones with the training-time padding for
  missing audio (raw zeros, normalised inside the temporal graph exactly as the padded positions of a short
  training window), and the output is flagged ``audio=0``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

from edgeaff.runtime.artifacts.manifest import Dimension, ModelEntry, ModelKind


@dataclasses.dataclass(frozen=True)
class DimensionPlan:
    """The models ensembled for one dimension.

    Attributes:
        dimension: ``valence`` or ``arousal``.
        kind: ``multimodal`` or ``unimodal``.
        indices: the models' positions in the manifest (index m of every ``(…, M)`` output).
        folds: their folds.
        zero_audio: multimodal models run with zero audio (the source has none).
    """

    dimension: Dimension
    kind: ModelKind
    indices: tuple[int, ...]
    folds: tuple[int | None, ...]
    zero_audio: bool

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form for the summary."""
        return {**dataclasses.asdict(self), "dimension": self.dimension.value, "kind": self.kind.value}


def plan_models(models: Sequence[ModelEntry], *, audio: bool) -> tuple[DimensionPlan, ...]:
    """One :class:`DimensionPlan` per dimension the bundle has, in ``valence, arousal`` order (the manifest schema
    has already refused unknown dimensions and kinds)."""
    by_dimension: dict[Dimension, dict[ModelKind, list[int]]] = {}
    for index, model in enumerate(models):
        by_dimension.setdefault(model.dimension, {}).setdefault(model.kind, []).append(index)
    plans = []
    preferred = (ModelKind.MULTIMODAL, ModelKind.UNIMODAL) if audio else (ModelKind.UNIMODAL, ModelKind.MULTIMODAL)
    for dimension in Dimension:
        kinds = by_dimension.get(dimension)
        if not kinds:
            continue
        kind = next(k for k in preferred if k in kinds)
        indices = tuple(kinds[kind])
        folds = tuple(models[i].fold for i in indices)
        plans.append(DimensionPlan(dimension, kind, indices, folds, kind is ModelKind.MULTIMODAL and not audio))
    return tuple(plans)


def bundle_dimension_plans(bundle: Any, *, audio: bool = True) -> tuple[DimensionPlan, ...]:
    """:func:`plan_models` for a loaded bundle's models."""
    return plan_models(bundle.models, audio=audio)
