"""Batch sizes measured once per machine and bundle (edgeaff.runtime.pipeline.tuning)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

from onnx_bundle import build_bundle

from edgeaff.runtime import BackendOptions, Pipeline, graph_runner, load_bundle
from edgeaff.runtime.pipeline import tuning
from edgeaff.runtime.pipeline.tuning import CANDIDATES, measure_batches, smallest_within, tuned_batch


def test_the_smallest_batch_near_the_fastest_wins() -> None:
    assert smallest_within({8: 4.0, 16: 3.0, 32: 2.99, 64: 2.98}) == 16  # within 3% of the best: the smallest
    assert smallest_within({8: 4.0, 16: 3.0, 32: 2.5, 64: 2.0}) == 64
    assert smallest_within({8: 1.0, 16: 1.5, 32: 2.0, 64: 2.5}) == 8


def test_measured_time_per_item_follows_the_call(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = [0.0]
    monkeypatch.setattr(tuning.time, "perf_counter", lambda: clock[0])
    calls: list[int] = []

    def call(batch: int) -> None:  # 20 ms per call + 1 ms per item (on a fake clock): larger batches cost less per item
        calls.append(batch)
        clock[0] += 0.020 + 0.001 * batch

    timings = measure_batches(call, candidates=(4, 16), rounds=2)
    assert calls == [4, 16, 4, 16, 16, 4]  # one untimed call each, then rounds in alternating order
    assert timings == {4: pytest.approx(6.0), 16: pytest.approx(2.25)}
    assert smallest_within(timings) == 16


def test_a_disturbed_round_does_not_decide(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = [0.0]
    monkeypatch.setattr(tuning.time, "perf_counter", lambda: clock[0])
    calls = [0]

    def call(batch: int) -> None:  # 1 ms per item, but batch 8 is slowed 10× in two of its three rounds
        calls[0] += 1
        clock[0] += 0.001 * batch * (10 if calls[0] in (5, 8) else 1)

    timings = measure_batches(call, candidates=(4, 8), rounds=3)
    assert timings == {4: pytest.approx(1.0), 8: pytest.approx(1.0)}  # the fastest round of each (a median: 10)


def test_a_measurement_is_cached_per_machine_and_bundle(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EDGEAFF_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(tuning, "quiet_machine", lambda: True)
    bundle = load_bundle(build_bundle(tmp_path, models=2).path)
    options = BackendOptions(threads=1)
    notes: list[str] = []
    runner, choice = graph_runner(bundle, "visual", options)
    with runner:
        first = tuned_batch(bundle, "visual", runner, choice, options, on_note=notes.append)
        again = tuned_batch(bundle, "visual", runner, choice, options, on_note=notes.append)
    assert first.source == "measured" and again.source == "cache" and len(notes) == 1
    assert again.batch == first.batch == smallest_within(first.ms_per_item)
    assert set(first.ms_per_item) == set(CANDIDATES)
    files = list((tmp_path / "cache" / "tuning").glob("*.json"))
    assert len(files) == 1 and json.loads(files[0].read_text())["batch"] == first.batch
    runner, choice = graph_runner(bundle, "visual", BackendOptions(threads=2))
    with runner:  # another thread count is another key: measured anew
        assert tuned_batch(bundle, "visual", runner, choice, BackendOptions(threads=2)).source == "measured"


def test_a_busy_machine_is_not_remembered(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EDGEAFF_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(tuning, "quiet_machine", lambda: False)
    bundle = load_bundle(build_bundle(tmp_path, models=1).path)
    runner, choice = graph_runner(bundle, "visual", BackendOptions(threads=1))
    notes: list[str] = []
    with runner:
        assert tuned_batch(bundle, "visual", runner, choice, BackendOptions(threads=1), on_note=notes.append).source
    assert not (tmp_path / "cache" / "tuning").exists() and "not cached" in notes[-1]


def test_offline_runs_use_the_tuned_batches(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EDGEAFF_CACHE_DIR", str(tmp_path / "cache"))
    built = build_bundle(tmp_path, models=2)
    trial = tmp_path / "frames"
    trial.mkdir()
    bundle = load_bundle(built.path)
    with Pipeline(bundle, threads=1) as pipeline:
        visual = pipeline.graphs.batch("visual")
        vggish = pipeline.graphs.batch("vggish")
    assert visual.batch in CANDIDATES and vggish.batch in CANDIDATES
    with Pipeline(bundle, threads=1, tune=False) as pipeline:
        assert pipeline.graphs.batch("visual").source == "default" and pipeline.graphs.batch("visual").batch == 16


@pytest.mark.parametrize(
    "content",
    ["[]", "{", '{"format": 1, "key": 2, "batch": "x"}', "[" * 100_000, " " * 100_000 + "{}", None],
    ids=["a list", "not JSON", "wrong types", "nested deeply", "too large", "a FIFO"],
)
def test_a_damaged_cache_entry_is_measured_anew(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, content: str | None
) -> None:
    monkeypatch.setenv("EDGEAFF_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(tuning, "quiet_machine", lambda: True)
    bundle = load_bundle(build_bundle(tmp_path, models=1).path)
    options = BackendOptions(threads=1)
    runner, choice = graph_runner(bundle, "visual", options)
    with runner:
        first = tuned_batch(bundle, "visual", runner, choice, options)
        entry = tmp_path / "cache" / "tuning" / f"{first.key}.json"
        entry.unlink()
        if content is None:
            os.mkfifo(entry)  # opening it for reading would block until a writer came
        else:
            entry.write_text(content)
        again = tuned_batch(bundle, "visual", runner, choice, options)
    assert again.source == "measured" and again.batch in CANDIDATES
