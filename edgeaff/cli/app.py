"""The ``edgeaff`` typer app, its ``--version`` option and the console entry point :func:`main`.

The commands live in the sibling modules and are registered on the app by :mod:`edgeaff.cli`.
"""

from __future__ import annotations

import sys
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


def main(argv: list[str] | None = None) -> None:
    """Console entry point: user errors become one line on stderr and a non-zero exit code, without a traceback.

    Usage errors (unknown options, missing arguments) are reported by typer itself with exit code 2.
    """
    try:
        app(args=argv, prog_name="edgeaff")
    except EdgeaffError as exc:
        typer.echo(f"error: {exc}", err=True)
        sys.exit(exc.exit_code)
