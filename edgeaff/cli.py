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
) -> None:
    """Export fold checkpoints into a bundle of ONNX graphs (visual, VGGish, temporal, streaming) with parity checks."""
    from edgeaff.runtime.errors import require

    require("torch", extra="export", purpose="edgeaff export")
    require("onnx", extra="export", purpose="edgeaff export")
    require("onnxruntime", extra="export", purpose="edgeaff export")
    from edgeaff.export.exporter import ExportOptions, export_bundle
    from edgeaff.export.summary import summary_table

    options = ExportOptions(fp16=fp16, int8=int8, calib=calib, opset=opset, vggish_weights=vggish_weights, force=force)
    result = export_bundle(sources, output, options=options, log=lambda line: typer.echo(line, err=True))
    typer.echo(summary_table(result.path, result.manifest))


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
