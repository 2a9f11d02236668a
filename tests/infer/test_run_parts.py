"""Small parts of a run: stage timers, model choice per dimension, atomic result files."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from edgeaff.runtime.pipeline.plan import model_name, plan_models
from edgeaff.runtime.pipeline.timing import StageTimer, format_summary
from edgeaff.runtime.sinks.files import ResultFiles


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


MODELS = [
    {"fold": 0, "dimension": "valence", "kind": "multimodal"},
    {"fold": 1, "dimension": "valence", "kind": "multimodal"},
    {"fold": 0, "dimension": "valence", "kind": "unimodal"},
    {"fold": 3, "dimension": "arousal", "kind": "multimodal"},
]


def test_one_kind_per_dimension_by_audio() -> None:
    with_audio = {p.dimension: p for p in plan_models(MODELS, audio=True)}
    assert with_audio["valence"].indices == (0, 1) and with_audio["valence"].folds == (0, 1)
    assert with_audio["arousal"].indices == (3,) and not with_audio["arousal"].zero_audio
    without = {p.dimension: p for p in plan_models(MODELS, audio=False)}
    assert without["valence"].kind == "unimodal" and without["valence"].indices == (2,)
    assert without["arousal"].kind == "multimodal" and without["arousal"].zero_audio  # training's padding
    assert [p.dimension for p in plan_models(MODELS[3:], audio=True)] == ["arousal"]
    assert model_name(MODELS[3]) == "fold3_arousal_multimodal"


def test_result_files_appear_only_on_success(tmp_path: Path) -> None:
    files = ResultFiles(tmp_path, "clip", dimensions=["valence", "arousal"], model_names=["a"], latency=False)
    with pytest.raises(RuntimeError, match="boom"), files as out:
        out.write(0, 0.0, {"valence": 0.1, "arousal": 0.2}, face=True, audio=True, raw=np.array([0.3]))
        raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []  # nothing that looks like a result, and no temporary left
    with ResultFiles(tmp_path, "clip", dimensions=["arousal", "valence"], model_names=None, latency=True) as out:
        out.write(0, 0.04, {"valence": 0.1, "arousal": -0.2}, face=False, audio=True, latency_ms=12.3)
        out.summary = {"frames": 1}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip.csv", "clip.json", "clip.txt"]
    assert (tmp_path / "clip.csv").read_text().splitlines() == [
        "frame,time_s,arousal,valence,face,audio,latency_ms",
        "0,0.040000,-0.200000,0.100000,0,1,12.3",
    ]
    # the submission file is always valence,arousal, whatever order the dimensions came in
    assert (tmp_path / "clip.txt").read_text().splitlines() == ["valence,arousal", "0.100000,-0.200000"]
    assert json.loads((tmp_path / "clip.json").read_text())["frames"] == 1


def test_no_submission_file_with_one_dimension(tmp_path: Path) -> None:
    with ResultFiles(tmp_path, "v", dimensions=["valence"], model_names=None, latency=False) as out:
        out.write(0, 0.0, {"valence": 0.5}, face=True, audio=False)
        out.summary = {}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["v.csv", "v.json"]
