"""``edgeaff demo``: the whole kit on built-in synthetic data, on a CPU, in a few minutes.

synth (Aff-Wild2 layout) → prepare (faces, MFCC, VGGish with seeded random weights) → train (small backbone, a few
epochs, two folds × two dimensions) → export (ONNX bundle, INT8 variant) → infer (a validation video, torch-free
runtime). Every step writes under one directory and reuses what a previous run finished, so an interrupted demo
continues where it stopped.

The numbers it prints show that the pipeline learns; they are not the paper's results (those need Aff-Wild2 and a
pretrained IR-50).
"""

from __future__ import annotations

import csv
import dataclasses
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from edgeaff.runtime.errors import InvalidInputError
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

Step = Callable[[str], None]


def run_demo(out_dir: str | Path, *, size: str = "demo", say: Step = print) -> dict[str, Any]:
    """Run (or continue) the demo in ``out_dir``; returns what each step produced and how long it took.

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
    results: dict[str, Any] = {}
    timed("train", lambda: results.update(_train(paths["prepared"], paths["run"], settings)))
    timed("export", lambda: _export(paths["run"], paths["bundle"], paths["prepared"]))
    timed("holdout video", lambda: _holdout(paths["holdout"], settings))
    inference: dict[str, Any] = {}
    timed("infer", lambda: inference.update(_infer(paths["holdout"], paths["bundle"], paths["predictions"], say)))
    return {
        "paths": {k: str(v) for k, v in paths.items()},
        "seconds": timings,
        "training": results,
        "inference": inference,
    }


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


def _train(prepared: Path, run: Path, settings: DemoSettings) -> dict[str, Any]:
    from edgeaff.train.runner import plan_jobs, train_jobs

    jobs = plan_jobs(
        models=["multimodal"],
        folds=list(settings.folds),
        dimensions=["valence", "arousal"],
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
    return {key: round(float(r["metrics"]["validation_ccc"]), 4) for key, r in results.items()}


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


def _infer(holdout: Path, bundle: Path, predictions: Path, say: Step) -> dict[str, Any]:
    """``edgeaff infer`` (torch-free runtime) on the held-out video, FP32 and INT8, scored against its labels."""
    from edgeaff.runtime.backends.graphs import BackendOptions
    from edgeaff.runtime.metrics import ccc
    from edgeaff.runtime.pipeline.infer import InferOptions, infer_source

    manifest = json.loads((holdout / "synth.json").read_text())
    video = holdout / manifest["videos"][HOLDOUT_VIDEO]["path"]
    labels = manifest["trials"][HOLDOUT_VIDEO]
    report: dict[str, Any] = {"video": str(video)}
    for precision in ("fp32", "int8"):
        options = InferOptions(backend=BackendOptions(precision=precision), name=f"{HOLDOUT_VIDEO}.{precision}")
        result = infer_source(video, bundle, predictions, options=options, echo=say)
        rows = _read_predictions(result.paths["csv"])
        frames = min(len(rows["valence"]), len(labels["valence"]))
        report[precision] = {
            "csv": str(result.paths["csv"]),
            "frames": len(rows["valence"]),
            "frames_with_face": int(sum(rows["face"])),
            "ccc": {dim: round(ccc(rows[dim][:frames], np.asarray(labels[dim][:frames])), 4) for dim in DIMENSIONS},
            "frames_per_second": round(float(result.summary["frames_per_second"]), 1),
        }
    return report


def _read_predictions(path: Path) -> dict[str, np.ndarray]:
    """The per-frame CSV of ``edgeaff infer`` as columns (``face`` as 0/1)."""
    with path.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    columns = {dim: np.asarray([float(row[dim]) for row in rows]) for dim in DIMENSIONS}
    columns["face"] = np.asarray([int(row["face"]) for row in rows])
    return columns
