"""``edgeaff bench`` end to end on the tiny bundle and the face video, in a process where torch cannot be imported.

Lives beside the ``edgeaff infer`` tests because it runs the same pipeline on the same session fixtures. No timing
is asserted: only that every stage was measured, the counts add up, and the document is complete and sane.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from infer_support import FACE_VIDEO_FRAMES, HIDDEN, TinyBundle, run_without_torch

PIPELINE_STAGES = (
    "read", "audio_read", "face", "face_detect", "face_track", "face_align", "audio_features", "vggish", "visual",
    "temporal", "ensemble", "write",
)  # fmt: skip
ISOLATED_STAGES = ("mfcc", "log_mel", "temporal_window", "temporal_step")


@pytest.fixture(scope="module")
def bench_document(tiny_bundle: TinyBundle, face_video: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    out = tmp_path_factory.mktemp("bench")
    args = ["bench", "--bundle", str(tiny_bundle.path), "--source", str(face_video), "--iterations", "1"]
    args += ["--pairs", "2", "--warmup", "1", "--threads", "1", "--batch", "8"]
    result = run_without_torch([*args, "--json", str(out / "b.json"), "--markdown", str(out / "b.md")])
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    markdown = (out / "b.md").read_text()
    assert "## End to end" in markdown and "| face_detect | pipeline |" in markdown
    return json.loads((out / "b.json").read_text())


def test_every_stage_was_measured_with_sane_statistics(bench_document: dict) -> None:
    stages = bench_document["stages"]
    for name in (*PIPELINE_STAGES, *ISOLATED_STAGES):
        assert name in stages, name
        stage = stages[name]
        assert stage["count"] > 0, name
        assert 0 <= stage["min_ms"] <= stage["p50_ms"] <= stage["p90_ms"] <= stage["p99_ms"] <= stage["max_ms"]
        assert stage["min_ms"] <= stage["mean_ms"] <= stage["max_ms"]
        assert stage["where"] == ("isolated" if name in ISOLATED_STAGES else "pipeline")
        assert stage["description"]


def test_counts_follow_the_video(bench_document: dict) -> None:
    stages = bench_document["stages"]
    faces = bench_document["stamp"]["settings"]["face_counts"]
    frames_with_face = FACE_VIDEO_FRAMES - len(HIDDEN)
    assert faces == {"detected": faces["detected"], "tracked": frames_with_face - faces["detected"],
                     "missing": len(HIDDEN)}  # fmt: skip
    for name in ("read", "face"):
        assert stages[name]["count"] == stages[name]["frames"] == FACE_VIDEO_FRAMES
    assert stages["visual"]["frames"] == FACE_VIDEO_FRAMES and stages["visual"]["count"] == -(-FACE_VIDEO_FRAMES // 8)
    assert stages["face_align"]["count"] == frames_with_face  # alignment runs only where a face was found
    assert stages["face_detect"]["count"] >= faces["detected"]  # every detection, plus searches that found nothing
    assert stages["temporal"]["count"] == 1 and stages["temporal"]["frames"] == FACE_VIDEO_FRAMES  # one window
    assert stages["temporal_window"]["count"] == stages["temporal_step"]["count"] == 2  # --pairs 2


def test_end_to_end_figures_and_stamp(bench_document: dict, tiny_bundle: TinyBundle) -> None:
    e2e = bench_document["end_to_end"]
    assert e2e["passes"] == 1 and e2e["frames"] == FACE_VIDEO_FRAMES
    assert e2e["wall_s"] > 0 and e2e["frames_per_s"] == pytest.approx(FACE_VIDEO_FRAMES / e2e["wall_s"])
    assert e2e["x_real_time"] == pytest.approx(e2e["video_s"] / e2e["wall_s"])
    assert e2e["video_s"] == pytest.approx(FACE_VIDEO_FRAMES / 25, abs=0.05)
    assert e2e["peak_rss_mib"] > 0 and e2e["frame_latency_ms"] is None  # offline: no per-frame latency
    stamp = bench_document["stamp"]
    settings = stamp["settings"]
    assert settings["backend"] == "ort-cpu" and settings["precision"] == "fp32" and settings["mode"] == "offline"
    assert settings["models"] == 3 and settings["folds"] == 2 and settings["backbone"] == ["onnx-tiny"]
    # the manifest's word, not a default: the tiny bundle's models each have their own projection
    assert settings["shared_trunk"] is tiny_bundle.manifest.visual.shared_trunk is False
    assert settings["source"]["frames"] == FACE_VIDEO_FRAMES and settings["source"]["audio"] is True
    assert stamp["versions"]["onnxruntime"] and stamp["device"] and stamp["load_average"]["before"] is not None
    assert "torch" not in stamp["versions"]


def test_comparisons_and_what_was_skipped(bench_document: dict) -> None:
    comparisons = {c["name"]: c for c in bench_document["comparisons"]}
    stream = comparisons["stream_step_vs_window"]
    assert (
        stream["pairs"] == 2 and stream["ratio"] > 0 and stream["ratio_low"] <= stream["ratio"] <= stream["ratio_high"]
    )
    skipped = {s["what"] for s in bench_document["skipped"]}
    assert "precision comparisons" in skipped  # the tiny bundle is FP32 only
    assert "visual_trt_vs_onnxruntime" in skipped  # no GPU in CI


def test_bad_options_are_one_line_errors(tiny_bundle: TinyBundle) -> None:
    result = run_without_torch(["bench", "--bundle", str(tiny_bundle.path), "--precision", "int8"])
    assert result.returncode == 2 and "has no int8 graphs" in result.stderr and "Traceback" not in result.stderr
    result = run_without_torch(["bench", "--bundle", str(tiny_bundle.path), "--iterations", "2", "--duration", "1"])
    assert result.returncode == 2 and "not both" in result.stderr


def test_stream_mode_measures_every_frame_with_its_latency(
    tiny_bundle: TinyBundle, face_video: Path, tmp_path: Path
) -> None:
    """Stream mode keeps no per-frame rows in ``edgeaff infer``; the bench must still get every pass's values."""
    args = ["bench", "--bundle", str(tiny_bundle.path), "--source", str(face_video), "--mode", "stream"]
    args += ["--iterations", "1", "--warmup", "1", "--threads", "1", "--no-compare", "--json", str(tmp_path / "s.json")]
    result = run_without_torch(args)
    assert result.returncode == 0, result.stderr
    document = json.loads((tmp_path / "s.json").read_text())
    e2e = document["end_to_end"]
    assert e2e["frames"] == FACE_VIDEO_FRAMES and document["stamp"]["settings"]["mode"] == "stream"
    latency = e2e["frame_latency_ms"]
    assert latency is not None and 0 < latency["p50_ms"] <= latency["p99_ms"]
    stages = document["stages"]
    assert stages["temporal"]["frames"] == FACE_VIDEO_FRAMES  # one streaming step per frame, none skipped


def test_peaks_fractions_and_isa_are_in_the_document(bench_document: dict) -> None:
    """``edgeaff bench --json`` carries the measured peaks, achieved GOP/s and fractions per graph, and the ISA."""
    peaks = bench_document["peaks"]
    assert peaks["engine"] == "onnxruntime-cpu" and peaks["threads"] == 1
    names = {"fp32_matmul", "fp32_conv", "int8_matmul", "int8_conv", "fp32_gemv"}
    assert {e["name"] for e in peaks["entries"]} == names
    assert all(0 < e["mean_gops"] <= e["gops"] for e in peaks["entries"]) and peaks["bandwidth_gbs"] > 0
    report = bench_document["efficiency"]
    stages = bench_document["stages"]
    for name in ("visual", "vggish", "temporal", "temporal_window", "temporal_step"):
        row = report["stages"][name]
        graph = report["graphs"][row["graph"]]
        assert row["flops_per_item"] == graph["flops_per_item"] > 0
        # achieved GOP/s is the counted FLOPs of the stage's items over its measured time
        expected = row["flops_per_item"] * stages[name]["frames"] / stages[name]["total_ms"] / 1e6
        assert row["gops"] == pytest.approx(expected) and row["fraction_of_peak"] > 0
        # the roofline: the weights read per call, and the larger of the compute and memory bounds
        assert row["weight_mb_per_call"] == pytest.approx(graph["weight_bytes"] / 1e6) and graph["weight_bytes"] > 0
        assert row["bound_by"] in ("compute", "memory")
    step_vs_window = report["stream_step_vs_window"]
    window = report["graphs"]["temporal"]["counted_call"]["items"]
    assert step_vs_window["window_frames"] == window
    assert step_vs_window["bound_ratio"] == pytest.approx(
        report["stages"]["temporal_window"]["bound_ms_per_item"]
        * window
        / report["stages"]["temporal_step"]["bound_ms_per_item"]
    )
    assert report["stages"]["temporal"]["graph"] == "temporal"  # offline: the windowed graph
    whole = report["end_to_end"]
    assert whole["gops"] > 0 and 0 < whole["fraction_of_peak"] < 1 and whole["bound_frames_per_s"] > 0
    machine = bench_document["stamp"]["machine"]
    assert machine["isa"]["arch"] and machine["isa_line"]
    assert bench_document["stamp"]["settings"]["threads_per_graph"]["temporal_stream"] == 1  # --threads 1
