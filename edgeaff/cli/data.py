"""The ``edgeaff synth`` and ``edgeaff prepare`` commands: datasets for training."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from edgeaff.cli import options
from edgeaff.cli.run_options import RayOpt, TorchDeviceOpt


def synth(
    out_dir: Annotated[Path, typer.Argument(help="Folder to create: the dataset root (AFFWILD2_ROOT layout).")],
    seed: Annotated[
        int, typer.Option("--seed", help="Random seed; the same seed gives the same dataset.", callback=options.seed)
    ] = 0,
    size: Annotated[
        str, typer.Option("--size", help="Preset: small (5 videos x 8 s, for tests) or demo (14 videos x 24 s).")
    ] = "small",
    videos: Annotated[
        int | None, typer.Option("--videos", help="Number of videos (5-200), instead of the preset's.")
    ] = None,
    seconds: Annotated[
        float | None,
        typer.Option("--seconds", help="Length of each video in seconds (2-600), instead of the preset's."),
    ] = None,
    force: Annotated[
        bool, typer.Option("--force", help="Replace OUT_DIR if it holds an earlier synthetic dataset.")
    ] = False,
    workers: Annotated[
        int | None,
        typer.Option(
            "--workers",
            help="Videos rendered in parallel, at most one per core (default: one per core, at most 4).",
            callback=options.workers,
        ),
    ] = None,
) -> None:
    """Write a synthetic dataset in the Aff-Wild2 layout (annotations, aligned crops, videos with audio)."""
    from edgeaff.runtime.limits import usable_cores
    from edgeaff.synth import MANIFEST, generate_dataset

    if workers is None:
        workers = min(usable_cores(), 4)
    summary = generate_dataset(
        out_dir, preset=size, seed=seed, videos=videos, seconds=seconds, force=force, workers=workers
    )
    typer.echo(
        f"wrote {summary.root}: {summary.videos} videos, {summary.trials} trials, {summary.frames} video frames, "
        f"{summary.label_rows} label rows, {summary.jpgs} aligned jpgs, {summary.size_bytes / 1e6:.1f} MB "
        f"in {summary.seconds:.1f} s (preset {summary.preset}, seed {summary.seed}); "
        f"ground truth in {summary.root / MANIFEST}"
    )


def prepare(
    affwild2_root: Annotated[
        Path, typer.Argument(help="Aff-Wild2 root (annotations/VA_Set, cropped_aligned, videos).")
    ],
    out_dir: Annotated[Path, typer.Argument(help="Where to write the prepared dataset.")],
    vggish_weights: Annotated[
        str | None,
        typer.Option("--vggish-weights", help="VGGish weights: vggish-10086976.pth, or random:SEED for demos/tests."),
    ] = None,
    workers: Annotated[
        int | None,
        typer.Option(
            "--workers",
            help="Videos processed in parallel, at most one per core (default 1); with --ray, the number of Ray "
            "workers (default: one per 4 of the cluster's CPUs, or per GPU with --device cuda).",
        ),
    ] = None,
    ray: RayOpt = None,
    mfcc: Annotated[
        str, typer.Option("--mfcc", help="MFCC implementation: opensmile (reference) or numpy.")
    ] = "opensmile",
    subjects: Annotated[
        Path | None, typer.Option("--subjects", help="trial→subject map (CSV trial,subject or JSON) for the folds.")
    ] = None,
    device: TorchDeviceOpt = "cpu",
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
            ray_address=ray,
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
