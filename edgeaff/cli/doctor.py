"""The ``edgeaff doctor`` command; its work is in :mod:`edgeaff.doctor.report`."""

from __future__ import annotations

import json
from typing import Annotated

import typer


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
    from edgeaff.doctor.report import CHECK_NAMES, diagnose, render_text
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
