"""The machine's measured peak (edgeaff.bench.peak) and the fractions of it (edgeaff.bench.efficiency)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

from edgeaff.bench.efficiency import GraphCount, bound_ms, efficiency, peak_for  # noqa: E402
from edgeaff.bench.flops import GraphFlops, count_flops  # noqa: E402
from edgeaff.bench.peak import (  # noqa: E402
    CPU_CONV,
    CPU_MATMUL,
    GEMV_CHAIN,
    GEMV_WIDTH,
    Peak,
    Peaks,
    conv_graph,
    matmul_graph,
    measure_peaks,
    weight_bytes,
)
from edgeaff.runtime import BackendOptions, OrtRunner  # noqa: E402


def _run(model: onnx.ModelProto, feed: dict[str, np.ndarray], tmp_path: Path) -> np.ndarray:
    path = tmp_path / "g.onnx"
    onnx.save(model, path)
    with OrtRunner(path, threads=1) as runner:
        return next(iter(runner.infer(feed).values()))


def test_the_peak_graphs_compute_what_they_say(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    model = matmul_graph("u8s8", 6, 32, 5)
    x = rng.integers(0, 256, (6, 32)).astype(np.uint8)
    weight = onnx.numpy_helper.to_array(model.graph.initializer[0]).astype(np.int64)
    expected = (x.astype(np.int64) - 128) @ weight  # zero points: 128 for the activations, 0 for the weights
    np.testing.assert_array_equal(_run(model, {"x": x}, tmp_path), expected)
    chained = matmul_graph("fp32", 4, 8, 8, chain=3)
    weights = [onnx.numpy_helper.to_array(t) for t in chained.graph.initializer]
    a = rng.normal(size=(4, 8)).astype(np.float32)
    np.testing.assert_allclose(_run(chained, {"x": a}, tmp_path), a @ weights[0] @ weights[1] @ weights[2], rtol=1e-5)
    quantised = _run(matmul_graph("qdq", 4, 8, 8, chain=2), {"x": a}, tmp_path)
    assert quantised.shape == (4, 8) and np.all(np.isfinite(quantised))
    assert _run(conv_graph("u8s8", 1, 8, 6, 2), {"x": np.full((1, 8, 6, 6), 130, np.uint8)}, tmp_path).shape == (
        1, 8, 6, 6,
    )  # fmt: skip


def test_peak_graph_flops_equal_the_hand_count() -> None:
    m, k, n = CPU_MATMUL
    batch, channels, size, layers = CPU_CONV
    conv = 2 * batch * channels * size * size * channels * 9 * layers
    for form in ("fp32", "u8s8"):
        assert count_flops(matmul_graph(form, m, k, n)).total == 2 * m * k * n
        assert count_flops(conv_graph(form, batch, channels, size, layers)).total == conv
    assert count_flops(matmul_graph("qdq", 8, 16, 16, chain=4)).by_precision == {"int8": 4 * 2 * 8 * 16 * 16}
    assert count_flops(conv_graph("fp16", 1, 4, 5, 2)).by_precision == {"fp16": 2 * 2 * 4 * 25 * 4 * 9}


def test_measured_peaks_are_sane_and_stamped() -> None:
    peaks = measure_peaks(BackendOptions(threads=1, spinning=False), seconds=0.05)
    assert peaks.engine == "onnxruntime-cpu" and peaks.threads == 1 and peaks.spinning is False
    assert peaks.timing == "wall" and not peaks.skipped
    names = {entry.name: entry for entry in peaks.entries}
    assert set(names) == {"fp32_matmul", "fp32_conv", "int8_matmul", "int8_conv", "fp32_gemv"}
    gemv = names["fp32_gemv"]
    # the bandwidth peak reads 4 bytes per weight and does 2 FLOPs with it: its GB/s are twice its GOP/s
    assert gemv.weight_bytes == 4 * GEMV_WIDTH * GEMV_WIDTH * GEMV_CHAIN and gemv.gbs == pytest.approx(2 * gemv.gops)
    assert peaks.bandwidth_gbs == gemv.gbs and 0.1 < gemv.gbs < 10_000
    assert all(entry.gbs is None and entry.weight_bytes == 0 for entry in peaks.entries if entry is not gemv)
    m, k, n = CPU_MATMUL
    assert names["int8_matmul"].flops_per_call == 2 * m * k * n and names["int8_matmul"].form == "MatMulInteger U8S8"
    assert names["int8_conv"].form == "QLinearConv U8S8" and names["fp32_conv"].form == "Conv float32"
    for entry in peaks.entries:
        assert entry.calls >= 8
        # one core does between 0.1 GOP/s and 20 TOP/s on anything this runs on; the fastest call beats the mean
        assert 0.1 < entry.mean_gops <= entry.gops < 20_000, entry
    document = peaks.to_dict()
    assert document["bandwidth_gbs"] == gemv.gbs
    assert document["by_precision_gops"] == {  # compute peaks only
        "fp32": max(names["fp32_matmul"].gops, names["fp32_conv"].gops),
        "int8": max(names["int8_matmul"].gops, names["int8_conv"].gops),
    }


def _peaks() -> Peaks:
    def peak(precision: str, op: str, gops: float) -> Peak:
        return Peak(f"{precision}_{op}", precision, op, "", gops, gops / 2, 1, 8, "")

    entries = (peak("fp32", "matmul", 100.0), peak("fp32", "conv", 50.0), peak("int8", "conv", 400.0))
    return Peaks("onnxruntime-cpu", 2, False, entries, {})


def test_bound_holds_each_kind_against_its_own_peak() -> None:
    peaks = _peaks()
    assert peak_for(peaks, "fp32", "conv") == (50.0, None)
    assert peak_for(peaks, "int8", "matmul")[0] == 400.0  # no INT8 GEMM peak: the best INT8 one stands in
    assert peak_for(peaks, "fp16", "conv")[0] == 50.0  # FP16 on ONNX Runtime's CPU: held against FP32
    split = {("int8", "conv"): 4e9, ("fp32", "conv"): 1e9, ("fp32", "matmul"): 2e9}
    bound, notes = bound_ms(split, 3, peaks)
    # 3 items: 12 GOP at 400 GOP/s + 3 GOP at 50 + 6 GOP at 100 = 30 + 60 + 60 ms
    assert bound == pytest.approx(150.0) and notes == []


def test_stage_and_end_to_end_fractions() -> None:
    empty = GraphFlops(0, {}, {}, (), {}, (), {})
    counts = {
        "visual": GraphCount("visual", "visual.int8.onnx", "face crop", 5e9, {("int8", "conv"): 4e9,
                             ("fp32", "matmul"): 1e9}, empty, 1),
        "temporal": GraphCount("temporal", "temporal.onnx", "frame", 1e8, {("fp32", "conv"): 1e8}, empty, 300),
    }  # fmt: skip
    stages = {
        "visual": {"where": "pipeline", "frames": 100, "total_ms": 5000.0},
        "temporal": {"where": "pipeline", "frames": 100, "total_ms": 400.0},
        "temporal_window": {"where": "isolated", "frames": 300, "total_ms": 600.0},
        "read": {"where": "pipeline", "frames": 100, "total_ms": 300.0},
    }
    report = efficiency(
        counts=counts, stages=stages, peaks=_peaks(), offline=True, end_to_end={"frames": 100, "wall_s": 10.0}
    )
    visual = report["stages"]["visual"]
    # 500 GFLOP in 5 s = 100 GOP/s; at the peaks 400 GOP / 400 + 100 GOP / 100 = 2 s → 40% of peak
    assert visual["gops"] == pytest.approx(100.0) and visual["fraction_of_peak"] == pytest.approx(0.4)
    assert visual["peak_gops"] == pytest.approx(250.0) and visual["bound_ms_per_item"] == pytest.approx(20.0)
    temporal = report["stages"]["temporal"]
    # 10 GFLOP in 0.4 s = 25 GOP/s; at the FP32 convolution peak (50 GOP/s) 0.2 s → 50%
    assert temporal["gops"] == pytest.approx(25.0) and temporal["fraction_of_peak"] == pytest.approx(0.5)
    assert report["stages"]["temporal_window"]["where"] == "isolated" and "read" not in report["stages"]
    whole = report["end_to_end"]
    # pipeline graph stages only: 510 GFLOP over 10 s; bound 2000 + 200 ms → 22%, 100 frames in 2.2 s
    assert whole["gops"] == pytest.approx(51.0) and whole["fraction_of_peak"] == pytest.approx(0.22)
    assert whole["bound_frames_per_s"] == pytest.approx(100 / 2.2) and whole["graph_flops_per_frame"] == 5.1e9
    # all at the INT8 peaks (400 GOP/s for both kinds here): 510 GOP / 400 = 1.275 s
    assert whole["int8_bound_frames_per_s"] == pytest.approx(100 / 1.275)
    assert whole["fraction_of_int8_bound"] == pytest.approx(1.275 / 10.0)
    stream = efficiency(counts=counts, stages=stages, peaks=None, offline=False, end_to_end=None)
    assert "temporal" not in stream["stages"] and stream["stages"]["visual"]["fraction_of_peak"] is None


def test_weight_bytes_are_the_initialisers_bytes() -> None:
    helper = onnx.helper
    weights = [
        onnx.numpy_helper.from_array(np.zeros((3, 4), np.float32), "w"),
        onnx.numpy_helper.from_array(np.zeros(5, np.int8), "q"),
        onnx.numpy_helper.from_array(np.zeros((2, 2), np.float16), "h"),
    ]
    graph = helper.make_graph(
        [helper.make_node("Identity", ["x"], ["y"])], "g", [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT,
        (1,))], [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, (1,))], initializer=weights,
    )  # fmt: skip
    assert weight_bytes(helper.make_model(graph)) == 3 * 4 * 4 + 5 * 1 + 4 * 2
    assert weight_bytes(matmul_graph("fp32", 1, 16, 8, chain=3)) == 4 * (16 * 8 + 8 * 8 + 8 * 8)


def test_a_graph_called_per_frame_is_held_against_the_bandwidth() -> None:
    empty = GraphFlops(0, {}, {}, (), {}, (), {})
    gemv = Peak("fp32_gemv", "fp32", "gemv", "", 12.5, 10.0, 1, 8, "", weight_bytes=1, gbs=25.0)
    peaks = Peaks("onnxruntime-cpu", 2, False, (*_peaks().entries, gemv), {})
    assert peaks.by_precision()["fp32"] == 100.0 and peaks.bandwidth_gbs == 25.0
    counts = {
        "temporal_stream": GraphCount("temporal_stream", "temporal_stream.onnx", "frame", 2.5e7,
                                      {("fp32", "matmul"): 2.5e7}, empty, 1, weight_bytes=50_000_000),
        "temporal": GraphCount("temporal", "temporal.onnx", "frame of a window", 1e8, {("fp32", "conv"): 1e8}, empty,
                               300, weight_bytes=50_000_000),
    }  # fmt: skip
    stages = {
        "temporal_step": {"where": "isolated", "count": 10, "frames": 10, "total_ms": 50.0},
        "temporal_window": {"where": "isolated", "count": 2, "frames": 600, "total_ms": 1500.0},
    }
    report = efficiency(counts=counts, stages=stages, peaks=peaks, offline=True, end_to_end=None)
    step, window = report["stages"]["temporal_step"], report["stages"]["temporal_window"]
    # 10 calls × 50 MB at 25 GB/s = 20 ms, longer than 250 MFLOP at 100 GOP/s (2.5 ms): memory-bound, 20 / 50 ms
    assert step["bound_by"] == "memory" and step["fraction_of_peak"] == pytest.approx(0.4)
    assert step["weight_gbs"] == pytest.approx(10.0) and step["weight_mb_per_call"] == pytest.approx(50.0)
    assert step["bound_ms_per_item"] == pytest.approx(2.0)
    # 2 windows: 60 GFLOP at the FP32 convolution peak (50 GOP/s) = 1200 ms against 4 ms of weights: compute-bound
    assert window["bound_by"] == "compute" and window["fraction_of_peak"] == pytest.approx(1200 / 1500)
    ratio = report["stream_step_vs_window"]
    assert ratio["window_bound_ms"] == pytest.approx(600.0) and ratio["step_bound_ms"] == pytest.approx(2.0)
    assert ratio["bound_ratio"] == pytest.approx(300.0) and ratio["window_frames"] == 300
    without = efficiency(counts=counts, stages=stages, peaks=_peaks(), offline=True, end_to_end=None)
    assert without["stages"]["temporal_step"]["bound_by"] == "compute"  # no bandwidth measured: arithmetic only


def test_the_int8_bound_reads_every_weight_as_one_byte() -> None:
    empty = GraphFlops(0, {}, {}, (), {}, (), {})
    gemv = Peak("fp32_gemv", "fp32", "gemv", "", 12.5, 10.0, 1, 8, "", weight_bytes=1, gbs=25.0)
    peaks = Peaks("onnxruntime-cpu", 2, False, (*_peaks().entries, gemv), {})
    step = GraphCount("temporal_stream", "temporal_stream.onnx", "frame", 2.5e7, {("fp32", "matmul"): 2.5e7}, empty, 1,
                      weight_bytes=40_000_000, int8_weight_bytes=17_500_000)  # fmt: skip
    stages = {"temporal": {"where": "pipeline", "count": 10, "frames": 10, "total_ms": 50.0}}
    report = efficiency(
        counts={"temporal_stream": step}, stages=stages, peaks=peaks, offline=False,
        end_to_end={"frames": 10, "wall_s": 0.1},
    )  # fmt: skip
    whole = report["end_to_end"]
    # FP32: 10 calls × 40 MB at 25 GB/s = 16 ms (the 250 MFLOP take 2.5 ms). The graph holds 10 M weights already in
    # int8 and 7.5 M in float32: as int8 17.5 MB a call, 7 ms, longer than the 250 MFLOP at the INT8 peak (0.625 ms)
    assert whole["bound_frames_per_s"] == pytest.approx(10 / 0.016)
    assert whole["int8_bound_frames_per_s"] == pytest.approx(10 / 0.007)


def test_int8_weight_bytes_count_one_byte_a_weight() -> None:
    model = matmul_graph("fp32", 1, 16, 8, chain=2)
    assert weight_bytes(model, as_int8=True) == 16 * 8 + 8 * 8 and weight_bytes(model) == 4 * (16 * 8 + 8 * 8)
