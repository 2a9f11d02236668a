"""The ``edgeaff demo`` command; its work is in :mod:`edgeaff.demo`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer


def demo(
    out_dir: Annotated[Path, typer.Argument(help="Where the demo writes everything.")] = Path("edgeaff-demo"),
    size: Annotated[str, typer.Option("--size", help="demo (the README's) or small (a quick smoke run).")] = "demo",
) -> None:
    """Run the whole kit on built-in synthetic data: synth → prepare → train → export → infer."""
    from edgeaff.demo import run_demo

    report = run_demo(out_dir, size=size, say=lambda line: typer.echo(line, err=True))
    typer.echo(json.dumps(report, indent=1))
