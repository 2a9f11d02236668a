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
from collections.abc import Mapping, Sequence
from typing import Any

from edgeaff.runtime.errors import InvalidInputError

DIMENSIONS = ("valence", "arousal")


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

    dimension: str
    kind: str
    indices: tuple[int, ...]
    folds: tuple[int | None, ...]
    zero_audio: bool

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form for the summary."""
        return dataclasses.asdict(self)


def model_name(model: Mapping[str, Any]) -> str:
    """Column name of a manifest model: ``fold<k>_<dimension>_<kind>`` (``fold-`` without a fold)."""
    fold = model.get("fold")
    return f"fold{'-' if fold is None else fold}_{model['dimension']}_{model['kind']}"


def plan_models(models: Sequence[Mapping[str, Any]], *, audio: bool) -> tuple[DimensionPlan, ...]:
    """One :class:`DimensionPlan` per dimension the bundle has, in ``valence, arousal`` order.

    Raises:
        InvalidInputError: a model of an unknown dimension or kind.
    """
    by_dimension: dict[str, dict[str, list[int]]] = {}
    for index, model in enumerate(models):
        dimension, kind = model.get("dimension"), model.get("kind")
        if dimension not in DIMENSIONS or kind not in ("multimodal", "unimodal"):
            raise InvalidInputError(f"bundle model {index} has an unknown dimension/kind: {dimension!r}/{kind!r}")
        by_dimension.setdefault(str(dimension), {}).setdefault(str(kind), []).append(index)
    plans = []
    for dimension in DIMENSIONS:
        kinds = by_dimension.get(dimension)
        if not kinds:
            continue
        preferred = ("multimodal", "unimodal") if audio else ("unimodal", "multimodal")
        kind = next(k for k in preferred if k in kinds)
        indices = tuple(kinds[kind])
        folds = tuple(models[i].get("fold") for i in indices)
        plans.append(DimensionPlan(dimension, kind, indices, folds, kind == "multimodal" and not audio))
    return tuple(plans)


def bundle_dimension_plans(bundle: Any, *, audio: bool = True) -> tuple[DimensionPlan, ...]:
    """:func:`plan_models` for a loaded bundle's models."""
    return plan_models(bundle.models, audio=audio)
