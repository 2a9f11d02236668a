"""The ``edgeaff convert-reference`` and ``edgeaff inspect`` commands: fold checkpoints in and out."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from edgeaff.cli import options


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
    fold: Annotated[
        int | None, typer.Option("--fold", help="Fold index to record (0-5).", callback=options.int_range(0, 5))
    ] = None,
    force: Annotated[
        bool, typer.Option("--force", help="Overwrite OUTPUT if it is an edgeaff fold checkpoint.")
    ] = False,
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


def inspect_checkpoint(
    checkpoint: Annotated[Path, typer.Argument(help="An edgeaff fold checkpoint (.safetensors).")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the full metadata as JSON.")] = False,
) -> None:
    """Show what a fold checkpoint contains (no torch needed)."""
    from edgeaff.runtime.artifacts.checkpoint_header import read_checkpoint_metadata

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
