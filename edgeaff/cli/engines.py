"""The ``edgeaff build-engines`` and ``edgeaff engine-cache list|clear`` commands: TensorRT engines on this device."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from edgeaff.cli import options


def _show_engine_progress() -> None:
    """Send engine build progress (logger ``edgeaff.engines``) to stderr, one plain line per message."""
    import logging

    logger = logging.getLogger("edgeaff.engines")
    if not logger.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(message)s"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)


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
    workspace_mib: Annotated[
        int,
        typer.Option(
            "--workspace-mib",
            help="TensorRT builder workspace limit (1-1048576).",
            callback=options.int_range(1, 1 << 20),
        ),
    ] = 1024,
    device: Annotated[int, typer.Option("--device", help="CUDA device ordinal.", callback=options.device_index)] = 0,
) -> None:
    """Build (or reuse) the TensorRT engines of a bundle on this device; takes minutes per graph on a Jetson."""
    from edgeaff.runtime.artifacts.bundle import load_bundle
    from edgeaff.runtime.artifacts.manifest import Precision
    from edgeaff.runtime.engines.build import TensorRTBuilder
    from edgeaff.runtime.engines.bundle import build_engines, bundle_engine_requests, parse_axis_range
    from edgeaff.runtime.engines.cache import EngineCache
    from edgeaff.runtime.engines.spec import BuildOptions
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


@engine_cache_app.command("list")
def engine_cache_list(
    cache: Annotated[Path | None, typer.Option("--cache", metavar="DIR", help="Engine cache directory.")] = None,
) -> None:
    """List cached engines: graph, precision, TensorRT version, GPU, size, build time, problems."""
    from edgeaff.runtime.engines.cache import EngineCache

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
    device: Annotated[
        int, typer.Option("--device", help="CUDA device ordinal (with --stale).", callback=options.device_index)
    ] = 0,
) -> None:
    """Remove cached engines (never one whose build is running, never a file that is not a cache entry)."""
    from edgeaff.runtime.engines.cache import EngineCache, EngineRecord

    engine_cache = EngineCache(cache)
    keep = None
    if stale:
        from edgeaff.runtime.engines.build import TensorRTBuilder

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
    left = [*report.unrecognised, *report.other_files]
    if left:
        shown = ", ".join(left[:5]) + (", ..." if len(left) > 5 else "")
        typer.echo(
            f"left {len(left)} name(s) that are not engine cache entries (no valid sidecar, or not a cache file): "
            f"{shown}"
        )
