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
