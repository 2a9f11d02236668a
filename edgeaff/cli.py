"""The ``edgeaff`` command line. Each command imports its part of the package lazily, so ``edgeaff --help`` and the
runtime commands work without torch."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

import edgeaff
from edgeaff.runtime.errors import EdgeaffError

app = typer.Typer(
    name="edgeaff",
    help="Audio-visual continuous emotion recognition (valence/arousal): train, export, and run on the edge.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
)


def _version_callback(value: bool) -> None:
    if value:
        typer.echo(f"edgeaff {edgeaff.__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", callback=_version_callback, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    """Audio-visual continuous emotion recognition (valence/arousal): train, export, and run on the edge."""


@app.command("convert-reference")
def convert_reference(
    source: Annotated[Path, typer.Argument(help="Reference (sucv/ABAW2) model_state_dict.pth.")],
    model: Annotated[str, typer.Option("--model", help="multimodal (my_2d1ddy) or unimodal (my_2d1d).")],
    dim: Annotated[str, typer.Option("--dim", help="Emotion dimension the model was trained on: valence or arousal.")],
    output: Annotated[Path, typer.Option("-o", "--output", help="Fold checkpoint to write (.safetensors).")],
    mfcc_stats: Annotated[
        tuple[float, float] | None,
        typer.Option(
            "--mfcc-stats",
            metavar="MEAN STD",
            help="Scalar MFCC mean and std the reference normalised training audio with (mean_std_dict.pkl).",
        ),
    ] = None,
    vggish_stats: Annotated[
        tuple[float, float] | None,
        typer.Option("--vggish-stats", metavar="MEAN STD", help="Scalar VGGish mean and std, likewise."),
    ] = None,
    fold: Annotated[int | None, typer.Option("--fold", help="Fold index to record (0-5).")] = None,
    force: Annotated[bool, typer.Option("--force", help="Overwrite OUTPUT if it exists.")] = False,
) -> None:
    """Convert a reference ABAW2 checkpoint into an edgeaff fold checkpoint (fusion variant 'abaw2')."""
    from edgeaff.train.convert import convert_reference_checkpoint

    metadata = convert_reference_checkpoint(
        source,
        output,
        kind=model,
        dimension=dim,
        mfcc_stats=mfcc_stats,
        vggish_stats=vggish_stats,
        fold=fold,
        overwrite=force,
    )
    typer.echo(
        f"wrote {output}: {metadata.model.kind} {metadata.dimension}, fusion {metadata.model.fusion}, "
        f"weights sha256 {metadata.weights_sha256[:12]}"
    )


@app.command("inspect")
def inspect_checkpoint(
    checkpoint: Annotated[Path, typer.Argument(help="An edgeaff fold checkpoint (.safetensors).")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the full metadata as JSON.")] = False,
) -> None:
    """Show what a fold checkpoint contains (no torch needed)."""
    from edgeaff.runtime.checkpoint_header import read_checkpoint_metadata

    metadata = read_checkpoint_metadata(checkpoint)
    if as_json:
        typer.echo(json.dumps(metadata, indent=2, sort_keys=True))
        return
    model = metadata["model"]
    backbone = model["backbone"]
    lines = [
        f"checkpoint   {checkpoint}",
        f"model        {model['kind']}, fusion {model['fusion']}, backbone {backbone['name']}",
        f"dimension    {metadata['dimension']}, fold {metadata['fold']}",
        f"normalised   {json.dumps(metadata['normalization'])}",
        f"metrics      {json.dumps(metadata['metrics'], sort_keys=True)}",
        f"provenance   {json.dumps(metadata['provenance'], sort_keys=True)}",
        f"versions     {json.dumps(metadata['versions'], sort_keys=True)}",
        f"created      {metadata['created']}",
        f"weights      sha256 {metadata['weights_sha256']}",
    ]
    typer.echo("\n".join(lines))


@app.command("train")
def train(
    prepared_dir: Annotated[Path, typer.Argument(help="A dataset written by 'edgeaff prepare'.")],
    output: Annotated[Path, typer.Option("-o", "--output", help="Run directory (checkpoints, logs, plots).")],
    model: Annotated[
        str, typer.Option("--model", help="multimodal, unimodal, or both (comma-separated).")
    ] = "multimodal",
    folds: Annotated[str, typer.Option("--folds", help="Folds to train, e.g. 0-5 or 0,2.")] = "0-5",
    dims: Annotated[
        str, typer.Option("--dims", help="valence, arousal or both (comma-separated).")
    ] = "valence,arousal",
    recipe_name: Annotated[
        str, typer.Option("--recipe", help="paper (the paper's text) or abaw2 (the reference code).")
    ] = "paper",
    backbone: Annotated[str, typer.Option("--backbone", help="ir50 (the paper's), ir-small or ir-tiny.")] = "ir50",
    backbone_weights: Annotated[
        Path | None, typer.Option("--backbone-weights", help="Pretrained backbone (res50_ir_0.887.pth layout).")
    ] = None,
    epochs: Annotated[
        int | None, typer.Option("--epochs", help="At most this many epochs (default: recipe's 100).")
    ] = None,
    finetune: Annotated[
        str,
        typer.Option(
            "--finetune",
            help="recipe: release backbone groups progressively (pretrained backbones); all: train the whole backbone "
            "from the first epoch (small backbones trained from scratch; no shared trunk at export).",
        ),
    ] = "recipe",
    batch_size: Annotated[int | None, typer.Option("--batch-size", help="Override the recipe's batch size.")] = None,
    lr: Annotated[
        float | None,
        typer.Option("--lr", help="Override the recipe's learning rate (1e-5; the minimum LR stays a tenth of it)."),
    ] = None,
    seed: Annotated[int, typer.Option("--seed", help="Seed of initialisation, augmentation and order.")] = 0,
    workers: Annotated[int, typer.Option("--workers", help="Jobs run at the same time on this machine.")] = 1,
    ray: Annotated[
        str | None, typer.Option("--ray", help="Run jobs as Ray tasks: a cluster address, 'auto', or 'local'.")
    ] = None,
    resume: Annotated[bool, typer.Option("--resume", help="Continue an interrupted run in OUTPUT.")] = False,
    threads: Annotated[
        int | None, typer.Option("--threads", help="torch threads per job (results depend on it).")
    ] = None,
    device: Annotated[str, typer.Option("--device", help="cpu or cuda.")] = "cpu",
) -> None:
    """Train the fold × dimension models (the paper's recipe by default); resumable; optionally on Ray."""
    from edgeaff.train.console import TrainingConsole, results_table
    from edgeaff.train.runner import parse_choices, parse_folds, plan_jobs, train_jobs

    jobs = plan_jobs(
        models=parse_choices(model, ("multimodal", "unimodal"), "--model"),
        folds=parse_folds(folds),
        dimensions=parse_choices(dims, ("valence", "arousal"), "--dims"),
        recipe_name=recipe_name,
        backbone=backbone,
        backbone_weights=str(backbone_weights) if backbone_weights else None,
        seed=seed,
        max_epochs=epochs,
        batch_size=batch_size,
        learning_rate=lr,
        finetune=finetune,
        threads=threads,
        device=device,
    )
    if workers < 1:
        raise typer.BadParameter("--workers must be at least 1")
    console = TrainingConsole()

    def finished(job: object, result: dict[str, object]) -> None:
        status = result.get("status")
        console.console.print(f"[bold green]done[/] {getattr(job, 'key', job)}: {status}")

    results = train_jobs(
        jobs,
        prepared_dir,
        output,
        workers=workers,
        ray_address=ray,
        resume=resume,
        progress=console if workers == 1 and ray is None else None,
        on_result=finished,
    )
    console.console.print(results_table(jobs, results))
    failed = [key for key, result in results.items() if result.get("status") == "failed"]
    for key in failed:
        console.console.print(f"[red]failed[/] {key}: {results[key]['error']}")
    typer.echo(
        f"run directory: {output} (runs.json, <model>/fold<k>/<dimension>/checkpoint.safetensors, log.csv, curves.png)"
    )
    if failed:
        raise typer.Exit(1)


@app.command("doctor")
def doctor(
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
    require: Annotated[
        list[str] | None,
        typer.Option(
            "--require",
            metavar="CHECK",
            help="Also fail unless this backend or component is fine (repeatable), e.g. trt, ort-cuda, gstreamer.",
        ),
    ] = None,
) -> None:
    """Report what this machine can run: libraries, GPU, cameras, Jetson power mode, and a verdict per backend.

    Exits 0 when at least one backend is usable (and every --require check passes), 1 otherwise.
    """
    from edgeaff.runtime.doctor import CHECK_NAMES, diagnose, render_text
    from edgeaff.runtime.errors import InvalidInputError

    unknown = [name for name in require or [] if name not in CHECK_NAMES]
    if unknown:
        raise InvalidInputError(
            f"unknown check {', '.join(unknown)} for --require; choose from {', '.join(CHECK_NAMES)}"
        )
    report = diagnose()
    failed = [name for name in require or [] if not report.check(name)]
    if as_json:
        typer.echo(json.dumps({**report.to_dict(), "required_failed": failed}, indent=2, default=str))
    else:
        typer.echo(render_text(report))
        if failed:
            typer.echo(f"required but not fine: {', '.join(failed)}")
    if failed or not report.usable_backends:
        raise typer.Exit(code=1)


@app.command("prepare")
def prepare(
    affwild2_root: Annotated[
        Path, typer.Argument(help="Aff-Wild2 root (annotations/VA_Set, cropped_aligned, videos).")
    ],
    out_dir: Annotated[Path, typer.Argument(help="Where to write the prepared dataset.")],
    vggish_weights: Annotated[
        str | None,
        typer.Option("--vggish-weights", help="VGGish weights: vggish-10086976.pth, or random:SEED for demos/tests."),
    ] = None,
    workers: Annotated[int, typer.Option("--workers", help="Videos processed in parallel.")] = 1,
    mfcc: Annotated[
        str, typer.Option("--mfcc", help="MFCC implementation: opensmile (reference) or numpy.")
    ] = "opensmile",
    subjects: Annotated[
        Path | None, typer.Option("--subjects", help="trial→subject map (CSV trial,subject or JSON) for the folds.")
    ] = None,
    device: Annotated[str, typer.Option("--device", help="Device for VGGish: cpu or cuda.")] = "cpu",
) -> None:
    """Extract faces, MFCC and VGGish features and labels per trial (resumable), then the six folds."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from edgeaff.train.prepare import prepare_dataset

    console = Console(stderr=True)
    with Progress(
        TextColumn("prepare"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[last]}"),
        TimeRemainingColumn(),
        console=console,
    ) as progress:
        task = progress.add_task("prepare", total=None, last="")

        def report(event: str, done: int, total: int, name: str | None) -> None:
            progress.update(task, completed=done, total=total, last=name or "")

        document = prepare_dataset(
            affwild2_root,
            out_dir,
            vggish_weights=vggish_weights,
            workers=workers,
            mfcc_backend=mfcc,
            subjects_file=subjects,
            device=device,
            on_progress=report,
        )
    trials = document["trials"]
    frames = sum(t["length"] for t in trials.values())
    typer.echo(f"prepared {len(trials)} trials ({frames} labelled frames) in {out_dir}: dataset.json, folds.json")
    if document["failed"]:
        for name, reason in document["failed"].items():
            typer.echo(f"failed: {name}: {reason}", err=True)
        raise typer.Exit(1)


@app.command("synth")
def synth(
    out_dir: Annotated[Path, typer.Argument(help="Folder to create: the dataset root (AFFWILD2_ROOT layout).")],
    seed: Annotated[int, typer.Option("--seed", help="Random seed; the same seed gives the same dataset.")] = 0,
    size: Annotated[
        str, typer.Option("--size", help="Preset: small (5 videos x 8 s, for tests) or demo (14 videos x 24 s).")
    ] = "small",
    videos: Annotated[
        int | None, typer.Option("--videos", help="Number of videos (at least 5), instead of the preset's.")
    ] = None,
    seconds: Annotated[
        float | None, typer.Option("--seconds", help="Length of each video in seconds, instead of the preset's.")
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="Replace OUT_DIR if it exists and is not empty.")] = False,
    workers: Annotated[
        int | None,
        typer.Option("--workers", help="Videos rendered in parallel (default: one per CPU core, at most 4)."),
    ] = None,
) -> None:
    """Write a synthetic dataset in the Aff-Wild2 layout (annotations, aligned crops, videos with audio)."""
    import os

    from edgeaff.synth import MANIFEST, generate_dataset

    if workers is None:
        workers = max(1, min(os.cpu_count() or 1, 4))
    summary = generate_dataset(
        out_dir, preset=size, seed=seed, videos=videos, seconds=seconds, force=force, workers=workers
    )
    typer.echo(
        f"wrote {summary.root}: {summary.videos} videos, {summary.trials} trials, {summary.frames} video frames, "
        f"{summary.label_rows} label rows, {summary.jpgs} aligned jpgs, {summary.size_bytes / 1e6:.1f} MB "
        f"in {summary.seconds:.1f} s (preset {summary.preset}, seed {summary.seed}); "
        f"ground truth in {summary.root / MANIFEST}"
    )


@app.command("export")
def export(
    sources: Annotated[
        list[Path], typer.Argument(help="Fold checkpoints (.safetensors) and/or training run directories.")
    ],
    output: Annotated[Path, typer.Option("-o", "--output", help="Bundle directory to write.")],
    fp16: Annotated[bool, typer.Option("--fp16", help="Also write FP16 variants of every graph.")] = False,
    int8: Annotated[
        bool, typer.Option("--int8", help="Also write an INT8 (Q/DQ) visual graph; needs --calib.")
    ] = False,
    calib: Annotated[
        Path | None,
        typer.Option("--calib", help="Prepared data directory: INT8 calibration and accuracy (CCC) checks."),
    ] = None,
    opset: Annotated[int, typer.Option("--opset", help="ONNX opset (at least 17).")] = 18,
    vggish_weights: Annotated[
        str | None,
        typer.Option("--vggish-weights", help="VGGish weights the models' features used: a .pth file or random:SEED."),
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="Replace OUTPUT if it exists.")] = False,
    face_detector: Annotated[
        Path | None,
        typer.Option(
            "--face-detector",
            metavar="TFLITE",
            help="BlazeFace .tflite to ship as the face detector (default: the short-range model edgeaff ships).",
        ),
    ] = None,
) -> None:
    """Export fold checkpoints into a bundle of ONNX graphs (visual, VGGish, temporal, streaming) with parity checks."""
    from edgeaff.runtime.errors import require

    require("torch", extra="export", purpose="edgeaff export")
    require("onnx", extra="export", purpose="edgeaff export")
    require("onnxruntime", extra="export", purpose="edgeaff export")
    from edgeaff.export.exporter import ExportOptions, export_bundle
    from edgeaff.export.summary import summary_table

    options = ExportOptions(
        fp16=fp16,
        int8=int8,
        calib=calib,
        opset=opset,
        vggish_weights=vggish_weights,
        force=force,
        face_detector=face_detector,
    )
    result = export_bundle(sources, output, options=options, log=lambda line: typer.echo(line, err=True))
    typer.echo(summary_table(result.path, result.manifest))


def _show_engine_progress() -> None:
    """Send engine build progress (logger ``edgeaff.engines``) to stderr, one plain line per message."""
    import logging

    logger = logging.getLogger("edgeaff.engines")
    if not logger.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(message)s"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)


@app.command("build-engines")
def build_engines_command(
    bundle: Annotated[Path, typer.Argument(help="Bundle directory written by 'edgeaff export'.")],
    fp16: Annotated[bool, typer.Option("--fp16", help="Build FP16 engines (the bundle's FP16 graphs).")] = False,
    int8: Annotated[bool, typer.Option("--int8", help="Build INT8 engines (the bundle's Q/DQ graphs).")] = False,
    cache: Annotated[
        Path | None,
        typer.Option(
            "--cache",
            metavar="DIR",
            help="Engine cache directory (default: $EDGEAFF_CACHE_DIR/engines or ~/.cache/edgeaff/engines).",
        ),
    ] = None,
    shape: Annotated[
        list[str] | None,
        typer.Option(
            "--shape",
            metavar="[GRAPH.]AXIS=MIN:OPT:MAX",
            help="Range of a dynamic axis (repeatable), e.g. visual.frames=1:8:64; give the runtime the same.",
        ),
    ] = None,
    graph: Annotated[list[str] | None, typer.Option("--graph", help="Only this graph (repeatable).")] = None,
    workspace_mib: Annotated[int, typer.Option("--workspace-mib", help="TensorRT builder workspace limit.")] = 1024,
    device: Annotated[int, typer.Option("--device", help="CUDA device ordinal.")] = 0,
) -> None:
    """Build (or reuse) the TensorRT engines of a bundle on this device; takes minutes per graph on a Jetson."""
    from edgeaff.runtime.bundle import load_bundle
    from edgeaff.runtime.engine_build import TensorRTBuilder
    from edgeaff.runtime.engine_bundle import build_engines, bundle_engine_requests, parse_axis_range
    from edgeaff.runtime.engine_cache import EngineCache
    from edgeaff.runtime.engine_spec import BuildOptions, Precision
    from edgeaff.runtime.errors import InvalidInputError

    if fp16 and int8:
        raise InvalidInputError("choose one of --fp16 and --int8")
    precision = Precision.FP16 if fp16 else Precision.INT8 if int8 else Precision.FP32
    overrides = dict(parse_axis_range(text) for text in shape or [])
    engines = bundle_engine_requests(
        load_bundle(bundle),
        precision,
        overrides=overrides,
        options=BuildOptions(workspace_mib=workspace_mib),
        roles=graph,
    )
    builder = TensorRTBuilder(device)
    engine_cache = EngineCache(cache)
    environment = builder.environment()
    typer.echo(
        f"TensorRT {environment.tensorrt_version} on {environment.device.name} ({environment.device.sm}, "
        f"{environment.device.multiprocessors} SMs); engine cache {engine_cache.directory}"
    )
    _show_engine_progress()
    outcomes = build_engines(
        engines, cache=engine_cache, builder=builder, check=builder.check_loadable, echo=typer.echo
    )
    built = sum(o.built for o in outcomes)
    typer.echo(f"{len(outcomes)} engine(s) ready: {built} built, {len(outcomes) - built} reused")


engine_cache_app = typer.Typer(help="List or clear the TensorRT engine cache.", no_args_is_help=True)
app.add_typer(engine_cache_app, name="engine-cache")


@engine_cache_app.command("list")
def engine_cache_list(
    cache: Annotated[Path | None, typer.Option("--cache", metavar="DIR", help="Engine cache directory.")] = None,
) -> None:
    """List cached engines: graph, precision, TensorRT version, GPU, size, build time, problems."""
    from edgeaff.runtime.engine_cache import EngineCache

    engine_cache = EngineCache(cache)
    entries = engine_cache.entries()
    typer.echo(f"engine cache {engine_cache.directory}: {len(entries)} engine(s)")
    for entry in entries:
        size = f"{entry.size_bytes / 2**20:.1f} MiB"
        if entry.record is None:
            typer.echo(f"  {entry.entry_id}  {size}  PROBLEM: {entry.problem}")
            continue
        fields = entry.record.fields
        typer.echo(
            f"  {entry.entry_id}  TensorRT {fields['tensorrt_version']}  {fields['gpu_name']} "
            f"sm_{str(fields['compute_capability']).replace('.', '')}  {size}  built {entry.record.built_at} "
            f"in {entry.record.build_seconds:.0f} s" + (f"  PROBLEM: {entry.problem}" if entry.problem else "")
        )


@engine_cache_app.command("clear")
def engine_cache_clear(
    cache: Annotated[Path | None, typer.Option("--cache", metavar="DIR", help="Engine cache directory.")] = None,
    stale: Annotated[
        bool, typer.Option("--stale", help="Only engines of another TensorRT version or GPU (needs TensorRT).")
    ] = False,
    timing: Annotated[bool, typer.Option("--timing", help="Also remove the timing caches.")] = False,
    device: Annotated[int, typer.Option("--device", help="CUDA device ordinal (with --stale).")] = 0,
) -> None:
    """Remove cached engines (never one whose build is running)."""
    from edgeaff.runtime.engine_cache import EngineCache, EngineRecord

    engine_cache = EngineCache(cache)
    keep = None
    if stale:
        from edgeaff.runtime.engine_build import TensorRTBuilder

        environment = TensorRTBuilder(device).environment()
        current = {
            "tensorrt_version": environment.tensorrt_version,
            "gpu_name": environment.device.name,
            "compute_capability": "{}.{}".format(*environment.device.compute_capability),
            "multiprocessors": environment.device.multiprocessors,
        }

        def keep(record: EngineRecord) -> bool:
            return all(record.fields.get(name) == value for name, value in current.items())

    report = engine_cache.clear(keep=keep, timing_caches=timing)
    typer.echo(
        f"removed {len(report.removed)} engine(s), {report.bytes_freed / 2**20:.1f} MiB from {engine_cache.directory}"
    )
    if report.busy:
        typer.echo(f"left {len(report.busy)} engine(s) that another process is building: {', '.join(report.busy)}")


@app.command("demo")
def demo(
    out_dir: Annotated[Path, typer.Argument(help="Where the demo writes everything.")] = Path("edgeaff-demo"),
    size: Annotated[str, typer.Option("--size", help="demo (the README's) or small (a quick smoke run).")] = "demo",
) -> None:
    """Run the whole kit on built-in synthetic data: synth → prepare → train → export → infer."""
    from edgeaff.demo import run_demo

    report = run_demo(out_dir, size=size, say=lambda line: typer.echo(line, err=True))
    typer.echo(json.dumps(report, indent=1))


def _register_infer() -> None:
    from edgeaff.infer_cli import infer_command

    app.command("infer")(infer_command)


_register_infer()


def _register_bench() -> None:
    from edgeaff.bench_cli import bench_command

    app.command("bench")(bench_command)


_register_bench()


def main(argv: list[str] | None = None) -> None:
    """Console entry point: user errors become one line on stderr and a non-zero exit code, without a traceback.

    Usage errors (unknown options, missing arguments) are reported by typer itself with exit code 2.
    """
    try:
        app(args=argv, prog_name="edgeaff")
    except EdgeaffError as exc:
        typer.echo(f"error: {exc}", err=True)
        sys.exit(exc.exit_code)


if __name__ == "__main__":
    main()
