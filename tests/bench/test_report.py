"""The benchmark stamp and the JSON / Markdown writers (edgeaff.bench.stamp, edgeaff.bench.report)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import edgeaff
from edgeaff.bench.instrument import TimedRunner
from edgeaff.bench.report import build_document, render_markdown, stage_order, write_json, write_markdown
from edgeaff.bench.stamp import cpu_model, describe_device, load_average, make_stamp, peak_rss_mib
from edgeaff.bench.stats import Repeats, latency_stats, time_interleaved
from edgeaff.runtime.backends.base import Runner, TensorSpec
from edgeaff.runtime.pipeline.timing import StageTimer


def _document() -> dict:
    stamp = make_stamp(
        settings={"backend": "ort-cpu", "precision": "int8", "models": 12, "folds": 6, "shared_trunk": True,
                  "source": {"uri": "clip.mp4", "fps": 25.0, "width": 64, "height": 48, "frames": 10, "audio": True}},
        load_before=[1.0, 2.0, 3.0],
    )  # fmt: skip
    stages = {
        "visual_compute": {"where": "pipeline", **latency_stats([1.0, 2.0], frames=0).to_dict()},
        "write": {"where": "pipeline", **latency_stats([3.0], frames=10).to_dict()},
        "read": {"where": "pipeline", **latency_stats([0.5, 0.7, 0.9], frames=3).to_dict()},
        "visual": {"where": "pipeline", **latency_stats([10.0, 12.0], frames=32).to_dict()},
    }
    pair = time_interleaved(lambda: None, lambda: sum(range(1000)), Repeats(iterations=3, warmup=0), name="p",
                            labels=("fast", "slow"))  # fmt: skip
    return build_document(
        stamp=stamp,
        stages=stages,
        end_to_end={
            "passes": 1,
            "frames": 10,
            "video_s": 0.4,
            "wall_s": 0.2,
            "frames_per_s": 50.0,
            "x_real_time": 2.0,
            "ms_per_frame": 20.0,
            "pass_ms": {},
            "frame_latency_ms": None,
            "peak_rss_mib": 100.0,
        },
        comparisons=[pair.to_dict()],
        skipped=[{"what": "trt", "why": "no GPU"}],
        notes=["note: something"],
    )


def test_stamp_records_machine_versions_settings_and_load() -> None:
    stamp = make_stamp(settings={"backend": "ort-cpu"}, load_before=[0.5, 0.6, 0.7])
    assert stamp["versions"]["edgeaff"] == edgeaff.__version__
    assert stamp["versions"]["numpy"] == np.__version__ and "python" in stamp["versions"]
    assert stamp["settings"] == {"backend": "ort-cpu"}
    assert stamp["load_average"]["before"] == [0.5, 0.6, 0.7]
    assert stamp["load_average"]["after"] is None or len(stamp["load_average"]["after"]) == 3
    assert stamp["machine"]["cpu_cores"] >= 1 and stamp["machine"]["os"]
    assert stamp["device"] == describe_device(stamp["machine"])
    assert stamp["date"].endswith("+00:00") and stamp["peak_rss_mib"] > 0
    assert peak_rss_mib() > 0 and (load_average() is None or len(load_average()) == 3)  # type: ignore[arg-type]


def test_device_description_prefers_jetson_then_gpu_then_cpu() -> None:
    cpu = {"cpu": "X", "cpu_cores": 6, "gpu": None, "jetson": None}
    assert describe_device(cpu) == "CPU X, 6 cores, no GPU"
    gpu = {**cpu, "gpu": {"name": "RTX"}}
    assert describe_device(gpu).startswith("RTX")
    jetson = {**gpu, "jetson": {"model": "NVIDIA Jetson Orin Nano", "power_mode": "MAXN_SUPER"}}
    assert describe_device(jetson) == "NVIDIA Jetson Orin Nano, power mode MAXN_SUPER"


def test_cpu_model_reads_cpuinfo(tmp_path: Path) -> None:
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nmodel name\t: Test CPU @ 2.0GHz\n")
    assert cpu_model(info) == "Test CPU @ 2.0GHz"
    arm = tmp_path / "arm"
    arm.write_text("processor\t: 0\nBogoMIPS\t: 62.50\n")
    assert cpu_model(arm)  # falls back to the platform's name


def test_stage_order_and_gpu_split_names() -> None:
    names = ["write", "visual_d2h", "mystery", "visual_h2d", "read", "visual", "visual_compute"]
    assert stage_order(names) == ["read", "visual", "visual_h2d", "visual_compute", "visual_d2h", "write", "mystery"]
    document = _document()
    assert list(document["stages"]) == ["read", "visual", "visual_compute", "write"]
    assert "compute" in document["stages"]["visual_compute"]["description"]


def test_json_round_trip_and_markdown_tables(tmp_path: Path) -> None:
    document = _document()
    path = write_json(document, tmp_path / "out" / "bench.json")
    loaded = json.loads(path.read_text())
    assert loaded == json.loads(json.dumps(document))
    assert loaded["format"] == "edgeaff-bench" and loaded["schema_version"] == 1
    assert not list((tmp_path / "out").glob("*.tmp"))  # written atomically, nothing left behind
    markdown = write_markdown(document, tmp_path / "bench.md", title="T").read_text()
    assert markdown.startswith("# T\n")
    assert "| read | pipeline | 3 | 3 | 0.70 | 0.70 |" in markdown  # calls, frames, mean, p50
    assert "| 1 | 10 | 0.4 | 0.2 | 50.0 | 2.00 | 20.00 |" in markdown  # the end-to-end row
    # ms per video-second from ms/frame and the source's 25 fps: 3 ms / 10 frames * 25
    assert "| write | pipeline | 1 | 10 | 3.00 | 3.00 | 3.00 | 3.00 | 0.300 | 7.5 |" in markdown
    assert "| p | fast | slow | **" in markdown and "- trt: no GPU" in markdown and "- note: something" in markdown
    assert render_markdown(document) == render_markdown(json.loads(json.dumps(document)))


class _FakeTimes:
    h2d_ms, compute_ms, d2h_ms = 0.25, 2.0, 0.5


class _FakeRunner(Runner):
    def __init__(self, *, split: bool) -> None:
        super().__init__()
        if split:
            self.last_times = _FakeTimes()

    def activate(self) -> None: ...

    def deactivate(self) -> None: ...

    @property
    def inputs(self) -> list[TensorSpec]:
        return [TensorSpec("x", (None,), np.dtype(np.float32))]

    @property
    def outputs(self) -> list[TensorSpec]:
        return [TensorSpec("y", (None,), np.dtype(np.float32))]

    def infer(self, feed):  # type: ignore[no-untyped-def]
        return {"y": np.asarray(feed["x"]) * 2}


@pytest.mark.parametrize("split", [True, False])
def test_timed_runner_records_the_gpu_split_only_where_the_runner_measures_it(split: bool) -> None:
    timer = StageTimer()
    with _FakeRunner(split=split) as inner:
        wrapped = TimedRunner(inner, "visual")
        wrapped.timer = timer
        out = wrapped.infer({"x": np.ones(3, np.float32)})
    np.testing.assert_array_equal(out["y"], 2.0)
    assert wrapped.inputs == inner.inputs and wrapped.splits_transfers is split
    if split:
        assert timer.stages() == ["visual_h2d", "visual_compute", "visual_d2h"]
        assert timer.values("visual_compute").tolist() == [2.0]
    else:
        assert timer.stages() == []
