"""``edgeaff demo``: the whole kit on built-in synthetic data, on a CPU, in a few minutes.

synth (Aff-Wild2 layout) → prepare (faces, MFCC, VGGish with seeded random weights) → train (small backbone, a few
epochs, two folds × two dimensions) → export (ONNX bundle, INT8 variant) → infer (a validation video, torch-free
runtime). Every step writes under one directory and reuses what a previous run finished, so an interrupted demo
continues where it stopped.

It ends with :class:`DemoReport`: the steps and their times, each model's validation CCC, the held-out video's CCC
at FP32 and INT8, and where everything went. The report is also written to ``demo-report.json``, and
``holdout-predictions.png`` plots the held-out video's predictions against its labels.

The numbers show that the pipeline learns; they are not the paper's results (those need Aff-Wild2 and a
pretrained IR-50).
"""

from __future__ import annotations

import csv
import dataclasses
import json
import math
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from edgeaff.runtime.errors import InvalidInputError
from edgeaff.runtime.files import atomic_output
from edgeaff.runtime.limits import usable_cores


@dataclasses.dataclass(frozen=True)
class DemoSettings:
    """Sizes of the demo (``demo``: the README's; ``small``: the CI smoke test)."""

    synth_preset: str
    seconds: float | None
    folds: tuple[int, ...]
    epochs: int
    backbone: str = "ir-tiny"
    learning_rate: float = 1e-3
    batch_size: int = 4
    vggish_weights: str = "random:0"
    seed: int = 0
    holdout_seconds: float = 12.0


DEMO_SIZES = {
    "demo": DemoSettings(synth_preset="demo", seconds=None, folds=(0, 1), epochs=5, holdout_seconds=12.0),
    "small": DemoSettings(synth_preset="small", seconds=4.0, folds=(0,), epochs=1, holdout_seconds=4.0),
}

DIMENSIONS = ("valence", "arousal")

HOLDOUT_VIDEO = "subj04_a"
"""The held-out video the demo infers on: one face, AAC audio, constant frame rate (see ``edgeaff.synth.plan``)."""

PRECISIONS = ("fp32", "int8")
"""The bundle variants the demo runs on the held-out video."""

REPORT_FILE = "demo-report.json"
PLOT_FILE = "holdout-predictions.png"

Step = Callable[[str], None]


@dataclasses.dataclass(frozen=True)
class ModelScore:
    """One trained network and its CCC on its fold's validation split (``None`` if training recorded none)."""

    model: str
    fold: int
    dimension: str
    validation_ccc: float | None


@dataclasses.dataclass(frozen=True)
class HoldoutScore:
    """The bundle at one precision on the held-out video, scored against the video's labels."""

    precision: str
    frames: int
    frames_with_face: int
    ccc: Mapping[str, float]
    frames_per_second: float
    csv: str


@dataclasses.dataclass(frozen=True)
class DemoReport:
    """What the demo did and found.

    Attributes:
        size: the demo size (``demo`` or ``small``).
        seconds: wall-clock seconds of each step, in the order they ran (a step that a previous run finished takes
            almost none).
        models: the trained networks.
        holdout_video: the held-out video's file.
        holdout: its scores per precision.
        paths: where each artefact is (``raw``, ``prepared``, ``run``, ``bundle``, ``holdout``, ``predictions``,
            ``plot``, ``report``).
    """

    size: str
    seconds: Mapping[str, float]
    models: tuple[ModelScore, ...]
    holdout_video: str
    holdout: tuple[HoldoutScore, ...]
    paths: Mapping[str, str]

    def to_dict(self) -> dict[str, Any]:
        """The report as JSON-ready data (a CCC that is not a number becomes ``null``)."""
        return _finite_or_none(dataclasses.asdict(self))


def _finite_or_none(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {key: _finite_or_none(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_finite_or_none(item) for item in value]
    return value


def run_demo(out_dir: str | Path, *, size: str = "demo", say: Step = print) -> DemoReport:
    """Run (or continue) the demo in ``out_dir``; returns what each step produced and how long it took.

    Besides the steps' own outputs it writes ``demo-report.json`` (the report) and ``holdout-predictions.png``.

    Raises:
        InvalidInputError: an unknown size, or an ``out_dir`` that holds something else.
    """
    if size not in DEMO_SIZES:
        raise InvalidInputError(f"unknown demo size '{size}'; choose one of {', '.join(DEMO_SIZES)}")
    settings = DEMO_SIZES[size]
    root = Path(out_dir)
    marker = root / "demo.json"
    if root.exists() and any(root.iterdir()) and not marker.exists():
        raise InvalidInputError(f"{root} is not empty and holds no earlier demo; choose another directory")
    root.mkdir(parents=True, exist_ok=True)
    marker.write_text(json.dumps({"size": size, "settings": dataclasses.asdict(settings)}, indent=1))
    paths = {
        "raw": root / "affwild2",
        "prepared": root / "prepared",
        "run": root / "run",
        "bundle": root / "bundle",
        "holdout": root / "holdout",
        "predictions": root / "predictions",
        "plot": root / PLOT_FILE,
        "report": root / REPORT_FILE,
    }
    timings: dict[str, float] = {}

    def timed(name: str, action: Callable[[], None]) -> None:
        say(f"[demo] {name} …")
        started = time.perf_counter()
        action()
        timings[name] = round(time.perf_counter() - started, 1)
        say(f"[demo] {name} done in {timings[name]:.1f} s")

    timed("synth", lambda: _synth(paths["raw"], settings))
    timed("prepare", lambda: _prepare(paths["raw"], paths["prepared"], settings))
    models: list[ModelScore] = []
    timed("train", lambda: models.extend(_train(paths["prepared"], paths["run"], settings)))
    timed("export", lambda: _export(paths["run"], paths["bundle"], paths["prepared"]))
    timed("holdout video", lambda: _holdout(paths["holdout"], settings))
    holdout: list[HoldoutScore] = []
    timed(
        "infer",
        lambda: holdout.extend(_infer(paths["holdout"], paths["bundle"], paths["predictions"], paths["plot"], say)),
    )
    report = DemoReport(
        size=size,
        seconds=timings,
        models=tuple(models),
        holdout_video=str(_holdout_video(paths["holdout"])[0]),
        holdout=tuple(holdout),
        paths={key: str(value) for key, value in paths.items()},
    )
    with atomic_output(paths["report"]) as tmp:
        tmp.write_text(json.dumps(report.to_dict(), indent=1, allow_nan=False) + "\n")
    return report


def _synth(raw: Path, settings: DemoSettings) -> None:
    if (raw / "synth.json").is_file():
        return
    from edgeaff.synth import generate_dataset

    generate_dataset(
        raw, preset=settings.synth_preset, seconds=settings.seconds, seed=settings.seed, workers=min(2, usable_cores())
    )


def _prepare(raw: Path, prepared: Path, settings: DemoSettings) -> None:
    from edgeaff.train.prepare import prepare_dataset

    document = prepare_dataset(
        raw, prepared, vggish_weights=settings.vggish_weights, subjects_file=raw / "subjects.csv"
    )
    if document["failed"]:
        raise InvalidInputError(f"the demo data could not be prepared: {document['failed']}")


def _train(prepared: Path, run: Path, settings: DemoSettings) -> list[ModelScore]:
    from edgeaff.train.runner import plan_jobs, train_jobs

    jobs = plan_jobs(
        models=["multimodal"],
        folds=list(settings.folds),
        dimensions=list(DIMENSIONS),
        recipe_name="paper",
        backbone=settings.backbone,
        backbone_weights=None,
        seed=settings.seed,
        max_epochs=settings.epochs,
        batch_size=settings.batch_size,
        threads=None,
        device="cpu",
        learning_rate=settings.learning_rate,
    )
    results = train_jobs(jobs, prepared, run, resume=True)
    failed = {key: r["error"] for key, r in results.items() if r.get("status") == "failed"}
    if failed:
        raise InvalidInputError(f"demo training failed: {failed}")
    scores = []
    for job in jobs:
        value = results[job.key]["metrics"].get("validation_ccc")
        ccc = None if value is None else round(float(value), 4)
        scores.append(ModelScore(model=job.model, fold=job.fold, dimension=job.dimension, validation_ccc=ccc))
    return scores


def _export(run: Path, bundle: Path, prepared: Path) -> None:
    if (bundle / "manifest.json").is_file():
        return
    from edgeaff.export.exporter import ExportOptions, export_bundle

    export_bundle([run], bundle, options=ExportOptions(int8=True, calib=prepared))


def _holdout(holdout: Path, settings: DemoSettings) -> None:
    """A second synthetic dataset from another seed: its videos were seen by no model of the demo."""
    if (holdout / "synth.json").is_file():
        return
    from edgeaff.synth import generate_dataset

    generate_dataset(
        holdout,
        preset="small",
        seconds=settings.holdout_seconds,
        seed=settings.seed + 1,
        workers=min(2, usable_cores()),
    )


def _holdout_video(holdout: Path) -> tuple[Path, dict[str, np.ndarray]]:
    """The held-out video's file and its per-frame labels by dimension."""
    manifest = json.loads((holdout / "synth.json").read_text())
    labels = manifest["trials"][HOLDOUT_VIDEO]
    return holdout / manifest["videos"][HOLDOUT_VIDEO]["path"], {dim: np.asarray(labels[dim]) for dim in DIMENSIONS}


def _infer(holdout: Path, bundle: Path, predictions: Path, plot: Path, say: Step) -> list[HoldoutScore]:
    """``edgeaff infer`` (torch-free runtime) on the held-out video, FP32 and INT8, scored against its labels and
    plotted over them."""
    from edgeaff.runtime import Pipeline, write_results
    from edgeaff.runtime.metrics import ccc

    video, labels = _holdout_video(holdout)
    scores = []
    traces: dict[str, dict[str, np.ndarray]] = {}
    time_s = np.zeros(0)
    for precision in PRECISIONS:
        with Pipeline(bundle, precision=precision, on_note=say) as pipeline:
            result = write_results(pipeline.run(video), predictions, name=f"{HOLDOUT_VIDEO}.{precision}", echo=say)
        rows = _read_predictions(result.paths["csv"])
        frames = min(len(rows["valence"]), len(labels["valence"]))
        time_s = rows["time_s"][:frames]
        traces[precision] = {dim: rows[dim][:frames] for dim in DIMENSIONS}
        scores.append(
            HoldoutScore(
                precision=precision,
                frames=len(rows["valence"]),
                frames_with_face=int(sum(rows["face"])),
                ccc={dim: round(ccc(rows[dim][:frames], labels[dim][:frames]), 4) for dim in DIMENSIONS},
                frames_per_second=round(float(result.summary["frames_per_second"]), 1),
                csv=str(result.paths["csv"]),
            )
        )
    plot_holdout(
        plot,
        time_s,
        {dim: values[: len(time_s)] for dim, values in labels.items()},
        traces,
        title=f"held-out video {HOLDOUT_VIDEO} (seen by no model): predictions and labels",
    )
    return scores


def plot_holdout(
    path: Path,
    time_s: np.ndarray,
    labels: Mapping[str, np.ndarray],
    predictions: Mapping[str, Mapping[str, np.ndarray]],
    *,
    title: str,
) -> None:
    """A PNG with one panel per dimension: the labels and each precision's predictions over time, and their CCC.

    Args:
        path: the PNG to write (atomically).
        time_s: the frames' times in seconds.
        labels: per dimension, one label per frame.
        predictions: per precision (``fp32``, ``int8``), per dimension, one value per frame.
        title: the figure's title.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from edgeaff.runtime.metrics import ccc

    dimensions = list(labels)
    figure, axes = plt.subplots(
        len(dimensions), 1, figsize=(9, 0.6 + 2.6 * len(dimensions)), squeeze=False, sharex=True
    )
    styles = {"fp32": {"color": "tab:blue"}, "int8": {"color": "tab:orange", "linestyle": "--"}}
    for row, dimension in enumerate(dimensions):
        ax = axes[row][0]
        ax.plot(time_s, labels[dimension], color="black", linewidth=1.6, label="label")
        scores = []
        for precision, values in predictions.items():
            style = styles.get(precision, {})
            ax.plot(time_s, values[dimension], linewidth=1.2, label=precision.upper(), **style)
            scores.append(f"{precision.upper()} {ccc(values[dimension], labels[dimension]):.3f}")
        ax.set_title(f"{dimension}: CCC {', '.join(scores)}", fontsize=9, loc="left")
        ax.set_ylabel(dimension)
        ax.set_ylim(-1.05, 1.05)
        ax.grid(alpha=0.3)
    axes[-1][0].set_xlabel("time (s)")
    handles, names = axes[0][0].get_legend_handles_labels()
    figure.suptitle(title, fontsize=10, x=0.01, ha="left")
    figure.legend(handles, names, loc="upper right", ncol=len(names), fontsize=8, frameon=False)
    figure.tight_layout(rect=(0, 0, 1, 0.97))
    with atomic_output(path) as tmp:
        figure.savefig(tmp, format="png", dpi=90)
    plt.close(figure)


def _read_predictions(path: Path) -> dict[str, np.ndarray]:
    """The per-frame CSV of ``edgeaff infer`` as columns (``face`` as 0/1)."""
    with path.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    columns = {name: np.asarray([float(row[name]) for row in rows]) for name in ("time_s", *DIMENSIONS)}
    columns["face"] = np.asarray([int(row["face"]) for row in rows])
    return columns
