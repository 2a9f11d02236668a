"""The ``edgeaff export`` command; its work is in :mod:`edgeaff.export.exporter`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


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
