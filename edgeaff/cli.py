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
