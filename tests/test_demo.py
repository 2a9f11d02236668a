"""`edgeaff demo`'s ending: the summary tables, the JSON report and the held-out plot (on made-up figures and
synthetic traces, so that no model is trained here)."""

from __future__ import annotations

import io
import json
import math
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from rich.console import Console
from typer.testing import CliRunner

import edgeaff.demo
from edgeaff.cli import app
from edgeaff.cli.demo import summary
from edgeaff.demo import DemoReport, HoldoutScore, ModelScore, plot_holdout


def make_report(tmp_path: Path) -> DemoReport:
    return DemoReport(
        size="demo",
        seconds={"synth": 41.2, "prepare": 122.5, "train": 480.0, "export": 61.3, "holdout video": 7.1, "infer": 30.4},
        models=(
            ModelScore("multimodal", 0, "valence", 0.6123),
            ModelScore("multimodal", 0, "arousal", 0.4331),
            ModelScore("multimodal", 1, "valence", 0.5877),
            ModelScore("multimodal", 1, "arousal", None),
        ),
        holdout_video=str(tmp_path / "holdout" / "raw_video" / "subj04_a.mp4"),
        holdout=(
            HoldoutScore("fp32", 360, 355, {"valence": 0.5214, "arousal": 0.4802}, 45.6, "p/subj04_a.fp32.csv"),
            HoldoutScore("int8", 360, 355, {"valence": 0.5199, "arousal": math.nan}, 52.3, "p/subj04_a.int8.csv"),
        ),
        paths={
            "bundle": str(tmp_path / "bundle"),
            "plot": str(tmp_path / "holdout-predictions.png"),
            "report": str(tmp_path / "demo-report.json"),
        },
    )


def table_rows(text: str) -> list[list[str]]:
    """The body rows of rich's box tables, as stripped cells."""
    return [
        [cell.strip() for cell in line.strip("│ ").split("│")] for line in text.splitlines() if line.startswith("│")
    ]


def render(report: DemoReport) -> str:
    out = io.StringIO()
    Console(file=out, width=120, color_system=None).print(summary(report))
    return out.getvalue()


def test_the_summary_tables_show_the_report(tmp_path: Path) -> None:
    text = render(make_report(tmp_path))
    rows = table_rows(text)
    assert ["prepare", "122.5"] in rows and ["infer", "30.4"] in rows
    assert ["total", "742.5"] in rows  # 41.2 + 122.5 + 480.0 + 61.3 + 7.1 + 30.4
    assert ["multimodal", "0", "0.612", "0.433"] in rows
    assert ["multimodal", "1", "0.588", "n/a"] in rows  # a model without a validation CCC
    assert ["FP32", "0.521", "0.480", "360", "355", "45.6"] in rows
    assert ["INT8", "0.520", "n/a", "360", "355", "52.3"] in rows  # a CCC that is not a number
    assert "Held-out video subj04_a.mp4" in text
    assert ["ONNX bundle", str(tmp_path / "bundle")] in rows
    assert ["plot (PNG)", str(tmp_path / "holdout-predictions.png")] in rows


def test_the_report_as_json_has_no_nan(tmp_path: Path) -> None:
    document = json.loads(json.dumps(make_report(tmp_path).to_dict(), allow_nan=False))
    assert document["holdout"][1]["ccc"] == {"valence": 0.5199, "arousal": None}
    assert document["models"][3] == {"model": "multimodal", "fold": 1, "dimension": "arousal", "validation_ccc": None}
    assert document["seconds"]["train"] == 480.0


def test_the_command_ends_with_the_tables_not_a_json_dump(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    report = make_report(tmp_path)
    calls = []

    def fake_run_demo(out_dir: Path, *, size: str, say: object) -> DemoReport:
        calls.append((Path(out_dir), size))
        return report

    monkeypatch.setattr(edgeaff.demo, "run_demo", fake_run_demo)
    result = CliRunner().invoke(app, ["demo", str(tmp_path / "out"), "--size", "small"])
    assert result.exit_code == 0, result.output
    assert calls == [(tmp_path / "out", "small")]
    assert ["FP32", "0.521", "0.480", "360", "355", "45.6"] in table_rows(result.stdout)
    assert '"holdout"' not in result.stdout and "{" not in result.stdout


def test_run_demo_writes_its_report_beside_the_artefacts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    expected = make_report(tmp_path)
    for step in ("_synth", "_prepare", "_export", "_holdout"):
        monkeypatch.setattr(edgeaff.demo, step, lambda *args: None)
    monkeypatch.setattr(edgeaff.demo, "_train", lambda *args: list(expected.models))
    monkeypatch.setattr(edgeaff.demo, "_infer", lambda *args: list(expected.holdout))
    monkeypatch.setattr(edgeaff.demo, "_holdout_video", lambda holdout: (Path(expected.holdout_video), {}))
    said: list[str] = []

    report = edgeaff.demo.run_demo(tmp_path / "out", size="small", say=said.append)
    assert report.models == expected.models and report.holdout == expected.holdout
    assert list(report.seconds) == ["synth", "prepare", "train", "export", "holdout video", "infer"]
    assert report.paths["report"] == str(tmp_path / "out" / "demo-report.json")
    assert report.paths["plot"] == str(tmp_path / "out" / "holdout-predictions.png")
    assert json.loads((tmp_path / "out" / "demo-report.json").read_text()) == report.to_dict()
    assert [line for line in said if line.startswith("[demo] infer done")]


# -- the plot --------------------------------------------------------------------------------------------------

BLACK, BLUE, ORANGE = (0, 0, 0), (0x1F, 0x77, 0xB4), (0xFF, 0x7F, 0x0E)  # label, FP32, INT8 (matplotlib's tab:)


def near(pixels: np.ndarray, colour: tuple[int, int, int], tolerance: int = 40) -> np.ndarray:
    return np.abs(pixels.astype(int) - np.asarray(colour)).max(axis=-1) <= tolerance


def panels(pixels: np.ndarray) -> list[tuple[int, int, int, int]]:
    """The inside (top, bottom, left, right) of each axes frame: rows and columns of long black lines (spines)."""
    black = near(pixels, BLACK, 60)
    rows = np.flatnonzero(black.sum(axis=1) > 0.5 * pixels.shape[1])
    columns = np.flatnonzero(black.sum(axis=0) > 0.25 * pixels.shape[0])
    edges = [int(r) for i, r in enumerate(rows) if i == 0 or r - rows[i - 1] > 1]  # first row of each spine
    left, right = int(columns.min()), int(columns.max())
    assert len(edges) % 2 == 0, edges
    return [(edges[i] + 3, edges[i + 1] - 3, left + 3, right - 3) for i in range(0, len(edges), 2)]


def test_the_holdout_plot_draws_the_labels_and_both_precisions(tmp_path: Path) -> None:
    t = np.arange(250) / 25.0
    labels = {"valence": 0.5 + 0.3 * np.sin(t), "arousal": 0.5 + 0.3 * np.cos(t)}  # upper half of each panel
    fp32 = {dim: values - 1.0 for dim, values in labels.items()}  # lower half
    int8 = {dim: values + 0.02 for dim, values in fp32.items()}
    path = tmp_path / "plot.png"
    plot_holdout(path, t, labels, {"fp32": fp32, "int8": int8}, title="test")

    with Image.open(path) as image:
        assert image.format == "PNG"
        pixels = np.asarray(image.convert("RGB"))
    assert pixels.shape[0] > 300 and pixels.shape[1] > 600
    assert pixels.std() > 20  # not blank
    boxes = panels(pixels)
    assert len(boxes) == 2  # one panel per dimension
    for top, bottom, left, right in boxes:
        inside = pixels[top:bottom, left:right]
        middle = (bottom - top) // 2  # y = 0: the panels span [-1.05, 1.05]
        for colour, upper in ((BLACK, True), (BLUE, False), (ORANGE, False)):
            ys, xs = np.nonzero(near(inside, colour))
            assert xs.size > 100, colour
            assert np.ptp(xs) > 0.8 * inside.shape[1], colour  # a trace across the panel, not a legend sample
            assert (ys < middle).all() if upper else (ys > middle).all(), colour


def test_the_plot_check_sees_a_missing_trace(tmp_path: Path) -> None:
    t = np.arange(100) / 25.0
    path = tmp_path / "labels-only.png"
    plot_holdout(path, t, {"valence": np.sin(t) / 2}, {}, title="labels only")
    pixels = np.asarray(Image.open(path).convert("RGB"))
    (top, bottom, left, right), *_ = panels(pixels)
    inside = pixels[top:bottom, left:right]
    assert near(inside, BLACK).sum() > 100
    assert near(inside, BLUE).sum() == 0 and near(inside, ORANGE).sum() == 0
