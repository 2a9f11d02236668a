"""The ``edgeaff train`` command; its work is in :mod:`edgeaff.train.runner`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from edgeaff.cli import options
from edgeaff.cli.run_options import RayOpt, TorchDeviceOpt


def train(
    prepared_dir: Annotated[Path, typer.Argument(help="A dataset written by 'edgeaff prepare'.")],
    output: Annotated[Path, typer.Option("-o", "--output", help="Run directory (checkpoints, logs, plots).")],
    model: Annotated[
        str, typer.Option("--model", help="multimodal, unimodal, or both as multimodal,unimodal.")
    ] = "multimodal",
    folds: Annotated[str, typer.Option("--folds", help="Folds to train, e.g. 0-5 or 0,2.")] = "0-5",
    dims: Annotated[
        str, typer.Option("--dims", help="valence, arousal, or both as valence,arousal.")
    ] = "valence,arousal",
    recipe_name: Annotated[
        str, typer.Option("--recipe", help="paper (the paper's text) or abaw2 (the reference code).")
    ] = "paper",
    backbone: Annotated[str, typer.Option("--backbone", help="ir50 (the paper's), ir-small or ir-tiny.")] = "ir50",
    backbone_weights: Annotated[
        Path | None, typer.Option("--backbone-weights", help="Pretrained backbone (res50_ir_0.887.pth layout).")
    ] = None,
    epochs: Annotated[
        int | None,
        typer.Option(
            "--epochs", help="At most this many epochs, 1-10000 (default: recipe's 100).", callback=options.epochs
        ),
    ] = None,
    finetune: Annotated[
        str,
        typer.Option(
            "--finetune",
            help="recipe: release backbone groups progressively (pretrained backbones); all: train the whole backbone "
            "from the first epoch (small backbones trained from scratch; no shared trunk at export).",
        ),
    ] = "recipe",
    batch_size: Annotated[
        int | None,
        typer.Option("--batch-size", help="Override the recipe's batch size (1-1024).", callback=options.batch_size),
    ] = None,
    lr: Annotated[
        float | None,
        typer.Option("--lr", help="Override the recipe's learning rate (1e-5; the minimum LR stays a tenth of it)."),
    ] = None,
    seed: Annotated[
        int, typer.Option("--seed", help="Seed of initialisation, augmentation and order.", callback=options.seed)
    ] = 0,
    workers: Annotated[
        int,
        typer.Option(
            "--workers",
            help="Jobs run at the same time on this machine (at most one per core).",
            callback=options.workers,
        ),
    ] = 1,
    ray: RayOpt = None,
    resume: Annotated[bool, typer.Option("--resume", help="Continue an interrupted run in OUTPUT.")] = False,
    threads: Annotated[
        int | None,
        typer.Option(
            "--threads",
            help="torch threads per job, at most 4 per core (results depend on it).",
            callback=options.threads,
        ),
    ] = None,
    device: TorchDeviceOpt = "cpu",
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
