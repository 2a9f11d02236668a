"""The ``edgeaff demo`` command; its work is in :mod:`edgeaff.demo`, and this module shows its report."""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console, Group
from rich.table import Table

if TYPE_CHECKING:
    from edgeaff.demo import DemoReport

ARTEFACTS = {
    "raw": "dataset (Aff-Wild2 layout)",
    "prepared": "prepared features",
    "run": "training run",
    "bundle": "ONNX bundle",
    "holdout": "held-out dataset",
    "predictions": "predictions (CSV)",
    "plot": "plot (PNG)",
    "report": "this report (JSON)",
}
"""The artefacts the summary lists, in this order, with what each is."""


def demo(
    out_dir: Annotated[Path, typer.Argument(help="Where the demo writes everything.")] = Path("edgeaff-demo"),
    size: Annotated[str, typer.Option("--size", help="demo (the README's) or small (a quick smoke run).")] = "demo",
) -> None:
    """Run the whole kit on built-in synthetic data: synth → prepare → train → export → infer."""
    from edgeaff.demo import run_demo

    report = run_demo(out_dir, size=size, say=lambda line: typer.echo(line, err=True))
    Console().print(summary(report))


def _ccc(value: float | None) -> str:
    return "n/a" if value is None or not math.isfinite(value) else f"{value:.3f}"


def summary(report: DemoReport) -> Group:
    """The demo's report as tables: steps and their times, models, held-out scores, where the artefacts are."""
    steps = Table(title="Steps", title_justify="left")
    steps.add_column("step")
    steps.add_column("seconds", justify="right")
    for name, seconds in report.seconds.items():
        steps.add_row(name, f"{seconds:.1f}")
    steps.add_section()
    steps.add_row("total", f"{sum(report.seconds.values()):.1f}")

    dimensions = list(dict.fromkeys(model_score.dimension for model_score in report.models))
    models = Table(title="Models (validation CCC)", title_justify="left")
    models.add_column("model")
    models.add_column("fold", justify="right")
    for dimension in dimensions:
        models.add_column(dimension, justify="right")
    by_fold: dict[tuple[str, int], dict[str, float | None]] = {}
    for model_score in report.models:
        by_fold.setdefault((model_score.model, model_score.fold), {})[model_score.dimension] = (
            model_score.validation_ccc
        )
    for (model, fold), values in by_fold.items():
        models.add_row(model, str(fold), *(_ccc(values.get(dimension)) for dimension in dimensions))

    holdout = Table(
        title=f"Held-out video {Path(report.holdout_video).name} (CCC against its labels)",
        caption="a video from another synthetic dataset, seen by no model",
        title_justify="left",
        caption_justify="left",
    )
    holdout.add_column("precision")
    scored = list(dict.fromkeys(dimension for score in report.holdout for dimension in score.ccc))
    for dimension in scored:
        holdout.add_column(dimension, justify="right")
    holdout.add_column("frames", justify="right")
    holdout.add_column("with a face", justify="right")
    holdout.add_column("frames/s", justify="right")
    for score in report.holdout:
        holdout.add_row(
            score.precision.upper(),
            *(_ccc(score.ccc.get(dimension)) for dimension in scored),
            str(score.frames),
            str(score.frames_with_face),
            f"{score.frames_per_second:.1f}",
        )

    artefacts = Table(title="Artefacts", title_justify="left")
    artefacts.add_column("what")
    artefacts.add_column("where", overflow="fold")
    for key, what in ARTEFACTS.items():
        if key in report.paths:
            artefacts.add_row(what, report.paths[key])
    return Group(steps, models, holdout, artefacts)
