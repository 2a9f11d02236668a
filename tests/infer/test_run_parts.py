"""Small parts of a run: stage timers, model choice per dimension, atomic result files."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from edgeaff.runtime import Dimension, ModelKind
from edgeaff.runtime.pipeline.plan import plan_models
from edgeaff.runtime.pipeline.timing import StageTimer, format_summary


def test_stage_timer_statistics_match_numpy() -> None:
    timer = StageTimer()
    values = np.random.default_rng(0).exponential(5.0, 501)
    for v in values:
        timer.add("visual", float(v), frames=4)
    with timer.measure("face"):
        pass
    summary = timer.summary()
    entry = summary["visual"]
    assert entry["calls"] == 501 and entry["frames"] == 2004
    assert entry["mean_ms"] == pytest.approx(values.mean(), rel=1e-12)
    for q in (50, 90, 99):
        assert entry[f"p{q}_ms"] == pytest.approx(np.percentile(values, q), rel=1e-12)
    assert entry["ms_per_frame"] == pytest.approx(values.sum() / 2004, rel=1e-12)
    assert summary["face"]["calls"] == 1 and "visual" in format_summary(summary)


def test_stage_timer_memory_is_bounded_on_endless_streams(monkeypatch: pytest.MonkeyPatch) -> None:
    from edgeaff.runtime.pipeline import timing as stage_timer

    monkeypatch.setattr(stage_timer, "MAX_SAMPLES", 2000)
    timer = StageTimer()
    values = np.random.default_rng(1).uniform(0.0, 100.0, 50_000)
    for v in values:
        timer.add("temporal", float(v))
    entry = timer.summary()["temporal"]
    assert len(timer.values("temporal")) == 2000  # a uniform sample of the calls, not all of them
    assert entry["calls"] == 50_000 and entry["mean_ms"] == pytest.approx(values.mean(), rel=1e-9)  # exact
    # percentiles of a 2000-call uniform sample: within a few percent of the truth (standard error ~1.1 at p50)
    assert entry["p50_ms"] == pytest.approx(np.percentile(values, 50), abs=5.0)
    assert entry["p90_ms"] == pytest.approx(np.percentile(values, 90), abs=3.0)


MODELS: list[Any] = [
    SimpleNamespace(fold=fold, dimension=Dimension(dimension), kind=ModelKind(kind))
    for fold, dimension, kind in [
        (0, "valence", "multimodal"),
        (1, "valence", "multimodal"),
        (0, "valence", "unimodal"),
        (3, "arousal", "multimodal"),
    ]
]


def test_one_kind_per_dimension_by_audio() -> None:
    with_audio = {p.dimension: p for p in plan_models(MODELS, audio=True)}
    assert with_audio["valence"].indices == (0, 1) and with_audio["valence"].folds == (0, 1)
    assert with_audio["arousal"].indices == (3,) and not with_audio["arousal"].zero_audio
    without = {p.dimension: p for p in plan_models(MODELS, audio=False)}
    assert without["valence"].kind == "unimodal" and without["valence"].indices == (2,)
    assert without["arousal"].kind == "multimodal" and without["arousal"].zero_audio  # training's padding
    assert [p.dimension for p in plan_models(MODELS[3:], audio=True)] == ["arousal"]
