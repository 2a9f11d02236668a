"""The streaming graph's threads, measured once per machine and bundle (edgeaff.runtime.pipeline.stream_threads)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

from onnx_bundle import build_bundle

from edgeaff.runtime import BackendOptions, Pipeline, load_bundle, tuned_stream_threads
from edgeaff.runtime.pipeline import stream_threads
from edgeaff.runtime.pipeline.stream_threads import candidates, measure_steps
from edgeaff.runtime.pipeline.tuning import smallest_within


@pytest.fixture(autouse=True)
def _no_earlier_choices(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test starts without the choices earlier tests measured on a busy machine (they hold per process)."""
    monkeypatch.setattr(stream_threads, "_PROCESS_CHOICES", {})


def test_candidates_double_up_to_the_cores() -> None:
    assert candidates(1) == (1,)
    assert candidates(2) == (1, 2)
    assert candidates(6) == (1, 2, 4, 6)
    assert candidates(8) == (1, 2, 4, 8)
    assert candidates(9) == (1, 2, 4, 8, 9)


def test_the_fewest_threads_near_the_fastest_win() -> None:
    assert smallest_within({1: 5.11, 2: 3.37}) == 2  # weights beyond the caches: a second thread draws more bandwidth
    assert smallest_within({1: 0.35, 2: 0.43}) == 1
    assert smallest_within({1: 1.02, 2: 1.0, 4: 0.995}) == 1  # within 3%: the fewest


def test_each_candidate_is_timed_in_alternating_rounds(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = [0.0]
    monkeypatch.setattr(stream_threads.time, "perf_counter", lambda: clock[0])
    order: list[int] = []

    def call(threads: int, ms: float) -> None:
        order.append(threads)
        slow = 10.0 if len(order) == 10 else 1.0  # the first timed call of 2 threads is disturbed
        clock[0] += ms * slow / 1000.0

    timings = measure_steps({1: lambda: call(1, 4.0), 2: lambda: call(2, 2.5)}, steps=3, rounds=2)
    assert order[:6] == [1, 1, 1, 2, 2, 2]  # untimed calls first
    assert order[6:] == [1, 1, 1, 2, 2, 2, 2, 2, 2, 1, 1, 1]  # then the rounds, in alternating order
    assert timings == {1: pytest.approx(4.0), 2: pytest.approx(2.5)}  # medians: the one slow call does not decide


def test_the_choice_is_measured_once_and_cached(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EDGEAFF_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(stream_threads, "quiet_machine", lambda: True)
    monkeypatch.setattr(stream_threads, "usable_cores", lambda: 2)
    bundle = load_bundle(build_bundle(tmp_path, models=2).path)
    notes: list[str] = []
    first = tuned_stream_threads(bundle, BackendOptions(), on_note=notes.append)
    again = tuned_stream_threads(bundle, BackendOptions(), on_note=notes.append)
    assert first.source == "measured" and again.source == "cache" and len(notes) == 1
    assert set(first.ms_per_step) == {1, 2} and all(ms > 0 for ms in first.ms_per_step.values())
    assert again.threads == first.threads == smallest_within(first.ms_per_step)
    files = list((tmp_path / "cache" / "tuning").glob("*.json"))
    assert len(files) == 1 and json.loads(files[0].read_text())["threads"] == first.threads
    # --threads wins, tune=False and a single core measure nothing
    assert tuned_stream_threads(bundle, BackendOptions(threads=3)).source == "requested"
    assert tuned_stream_threads(bundle, BackendOptions(), tune=False).threads == 1
    monkeypatch.setattr(stream_threads, "usable_cores", lambda: 1)
    assert tuned_stream_threads(bundle, BackendOptions()).source == "default"


def test_a_damaged_entry_is_measured_anew_and_a_busy_machine_not_remembered(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EDGEAFF_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(stream_threads, "usable_cores", lambda: 2)
    monkeypatch.setattr(stream_threads, "quiet_machine", lambda: True)
    bundle = load_bundle(build_bundle(tmp_path, models=1).path)
    first = tuned_stream_threads(bundle, BackendOptions())
    entry = tmp_path / "cache" / "tuning" / f"{first.key}.json"
    entry.write_text(json.dumps({**json.loads(entry.read_text()), "threads": 64}))  # not a candidate
    assert tuned_stream_threads(bundle, BackendOptions()).source == "measured"
    entry.unlink()
    monkeypatch.setattr(stream_threads, "quiet_machine", lambda: False)
    notes: list[str] = []
    busy = tuned_stream_threads(bundle, BackendOptions(), on_note=notes.append)
    assert busy.source == "measured" and not entry.exists() and "not cached" in notes[-1]
    # the busy machine's choice holds for this process: later sessions reuse it instead of measuring again
    monkeypatch.setattr(stream_threads, "measure_steps", lambda calls: pytest.fail("measured twice"))
    assert tuned_stream_threads(bundle, BackendOptions(), on_note=notes.append) is busy and len(notes) == 2


def test_stream_pipelines_open_the_graph_with_the_chosen_threads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EDGEAFF_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(stream_threads, "usable_cores", lambda: 2)
    monkeypatch.setattr(stream_threads, "measure_steps", lambda calls: {1: 3.0, 2: 1.0})
    bundle = load_bundle(build_bundle(tmp_path, models=2).path)
    with Pipeline(bundle, mode="stream") as pipeline:
        runner = pipeline.graphs.runner("temporal_stream")
        choice = pipeline.graphs.stream_threads
        assert choice is not None and choice.threads == 2 and choice.source in ("measured", "cache")
        assert getattr(runner, "threads", None) == 2
    with Pipeline(bundle, mode="stream", tune=False) as pipeline:
        assert getattr(pipeline.graphs.runner("temporal_stream"), "threads", None) == 1
