"""The ``edgeaff bench`` command (registered in :mod:`edgeaff.cli`); its work is in :mod:`edgeaff.bench`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from edgeaff.cli.run_options import (
    BackendOpt,
    BundleOpt,
    DetectEveryOpt,
    DeviceOpt,
    EngineCacheOpt,
    FaceDetectorOpt,
    FacesOpt,
    MaxFacesOpt,
    PrecisionOpt,
    ThreadsOpt,
    backend_options,
)


def bench_command(
    bundle: BundleOpt,
    source: Annotated[
        str | None,
        typer.Option(
            "--source",
            metavar="VIDEO",
            help="Video (or folder of faces) to run end to end; omit to time the network stages on synthetic inputs.",
        ),
    ] = None,
    backend: BackendOpt = "ort-cpu",
    precision: PrecisionOpt = "fp32",
    mode: Annotated[str, typer.Option("--mode", help="offline (windows) or stream (per-frame updates).")] = "offline",
    duration: Annotated[
        float | None,
        typer.Option("--duration", metavar="S", help="Seconds of timed work per measurement (default 5)."),
    ] = None,
    iterations: Annotated[
        int | None,
        typer.Option(
            "--iterations",
            metavar="N",
            help="Timed repetitions per measurement instead of a duration: passes over "
            "the source, calls of a stage, pairs of a comparison.",
        ),
    ] = None,
    pairs: Annotated[
        int | None,
        typer.Option(
            "--pairs",
            metavar="N",
            help="Timed calls of each isolated stage and pairs of each side-by-side "
            "comparison (default: the --iterations / --duration budget).",
        ),
    ] = None,
    warmup: Annotated[
        int, typer.Option("--warmup", metavar="N", help="Untimed repetitions first (pipeline: passes over 64 frames).")
    ] = 2,
    threads: ThreadsOpt = None,
    batch: Annotated[
        int | None,
        typer.Option(
            "--batch",
            help="Face crops per visual graph call (default: the runtime's: measured for this machine offline, the "
            "frames waiting in stream mode; 16 for the isolated stages).",
        ),
    ] = None,
    face_detector: FaceDetectorOpt = "dnn",
    detect_every: DetectEveryOpt = 10,
    faces: FacesOpt = None,
    max_faces: MaxFacesOpt = None,
    no_compare: Annotated[
        bool, typer.Option("--no-compare", help="Skip the side-by-side comparisons (stream vs window, precisions).")
    ] = False,
    no_peak: Annotated[
        bool,
        typer.Option(
            "--no-peak",
            help="Skip measuring the machine's practical peak (GEMM and convolution per precision, a few seconds) and "
            "the fractions of it.",
        ),
    ] = False,
    engine_cache: EngineCacheOpt = None,
    device: DeviceOpt = None,
    json_out: Annotated[
        Path | None, typer.Option("--json", metavar="OUT.json", help="Write the results as JSON.")
    ] = None,
    markdown_out: Annotated[
        Path | None, typer.Option("--markdown", metavar="OUT.md", help="Write the results as Markdown tables.")
    ] = None,
) -> None:
    """Time a bundle per stage and end to end (p50/p90/p99, frames/s, × real time) and side by side, against the
    machine's measured peak (GOP/s and fraction of peak per graph; torch-free)."""
    from edgeaff.bench.report import print_tables, write_json, write_markdown
    from edgeaff.bench.run import BenchOptions, run_bench
    from edgeaff.bench.stats import Repeats
    from edgeaff.runtime import DetectorKind, InvalidInputError, Mode

    if duration is not None and iterations is not None:
        raise InvalidInputError("give --duration or --iterations, not both")
    repeats = Repeats(iterations=iterations, duration_s=duration if duration is not None else 5.0, warmup=warmup)
    pair_repeats = None if pairs is None else Repeats(iterations=pairs, warmup=warmup)
    options = BenchOptions(
        source=source,
        backend=backend_options(
            backend=backend, precision=precision, threads=threads, device=device, engine_cache=engine_cache
        ),
        mode=Mode.parse(mode),
        repeats=repeats,
        pair_repeats=pair_repeats,
        visual_batch=batch,
        face_detector=DetectorKind.parse(face_detector),
        detect_every=detect_every,
        faces=faces,
        max_faces=max_faces,
        compare=not no_compare,
        peak=not no_peak,
    )
    document = run_bench(bundle, options=options, echo=lambda line: typer.echo(line, err=True))
    print_tables(document)
    if json_out is not None:
        typer.echo(f"wrote {write_json(document, json_out)}", err=True)
    if markdown_out is not None:
        typer.echo(f"wrote {write_markdown(document, markdown_out)}", err=True)
