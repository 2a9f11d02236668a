"""README.md's speed section generated from result documents (benchmarks/readme_speed.py)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

import readme_speed  # a script next to the other benchmarks, importable once that folder is on the path


def _stamp(load: float) -> dict[str, Any]:
    return {
        "device": "CPU Test Xeon, 2 cores, no GPU",
        "date": "2026-12-05T01:00:00+00:00",
        "machine": {"isa_line": "x86_64: AVX2, AVX-512, VNNI; INT8 dot product: avx512_vnni"},
        "versions": {"onnxruntime": "1.32.0"},
        "load_average": {"before": [load, 1.0, 1.0], "after": [load + 0.5, 1.0, 1.0]},
        "settings": {"batches": {"visual": 32}},
    }


def _ensemble(fps: float, load: float) -> dict[str, Any]:
    return {
        "stamp": _stamp(load),
        "end_to_end": {"frames_per_s": fps, "x_real_time": fps / 30.0},
        "peaks": {
            "engine": "onnxruntime",
            "threads": 2,
            "entries": [
                {"name": "fp32_matmul", "gops": 190.4},
                {"name": "fp32_conv", "gops": 211.0},
                {"name": "int8_matmul", "gops": 777.2},
                {"name": "int8_conv", "gops": 552.0},
            ],
        },
        "efficiency": {
            "end_to_end": {
                "gops": 321.0,
                "fraction_of_peak": 0.41,
                "int8_bound_frames_per_s": 25.0,
                "fraction_of_int8_bound": 0.62,
                "graph_flops_per_frame": 24.9e9,
            },
            "stages": {"visual": {"gops": 527.0, "fraction_of_peak": 0.58}},
        },
        "comparisons": [{"name": "visual_int8_vs_fp32", "ratio": 2.91}],
    }


def _live() -> dict[str, Any]:
    return {
        "stamp": _stamp(0.7),
        "live": {
            "source_fps": 30.0,
            "frames_released": 600,
            "frames_predicted": 600,
            "dropped_frames": 0,
            "predicted_per_s": 29.9,
            "keeps_up": True,
            "audio_lookahead_ms": 975.0,
            "latency_ms": {"p50_ms": 1010.0, "p90_ms": 1030.0, "p99_ms": 1090.0},
            "latency_beyond_lookahead_ms": {"p50_ms": 35.0, "p90_ms": 55.0, "p99_ms": 115.0},
        },
    }


@pytest.fixture
def results(tmp_path: Path) -> Path:
    folder = tmp_path / "results"
    folder.mkdir()
    (folder / "ensemble12-ir50-int8-offline.json").write_text(json.dumps(_ensemble(15.5, 0.9)))
    (folder / f"{readme_speed.LIVE}.json").write_text(json.dumps(_live()))
    return folder


def test_the_section_states_the_machine_and_every_number_from_the_documents(results: Path) -> None:
    section = readme_speed.render_section(results, "cpu-test")
    assert max(len(line) for line in section.splitlines() if not line.startswith("|")) <= 120
    flat = " ".join(section.split())  # prose is wrapped at 120 columns
    assert section.startswith(readme_speed.BEGIN) and section.rstrip().endswith(readme_speed.END)
    assert "CPU Test Xeon, 2 cores" in flat and "AVX-512, VNNI" in flat  # which machine the figures hold for
    assert "1-minute load average 0.7-1.4" in flat  # the lowest and highest load of the runs present
    assert "FP32 190 GFLOP/s on a GEMM" in flat and "INT8 777 GOP/s" in flat
    assert "| 15.5 | 0.52 | 321 | 41% | 25.0 |" in flat
    assert "does not run the paper's 12-network IR-50 ensemble in real time** (0.52× real time" in flat
    assert "62% of the INT8 bound of 25.0 frames/s" in flat and "**not met**" in flat  # below 70%
    assert "visual graph 527 GOP/s (58% of peak)" in flat
    assert "p50 1010 ms / p99 1090 ms" in flat and "p50 35 / p99 115 ms" in flat
    assert "| same, FP32, offline | not run |" in flat  # what has no document says so


def test_the_readme_changes_between_the_markers_only(results: Path, tmp_path: Path) -> None:
    readme = tmp_path / "README.md"
    readme.write_text(f"# Title\n\nbefore\n\n{readme_speed.BEGIN}\nold figures\n{readme_speed.END}\n\n## After\n")
    section = readme_speed.render_section(results, "cpu-test")
    assert readme_speed.update_readme(readme, section) is True
    text = readme.read_text()
    assert text.startswith("# Title\n\nbefore\n\n") and text.endswith(f"{readme_speed.END}\n\n## After\n")
    assert "old figures" not in text and "15.5" in text
    assert readme_speed.update_readme(readme, section) is False  # already up to date
