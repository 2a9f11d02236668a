"""The ``edgeaff`` command line: the typer app (:mod:`edgeaff.cli.app`) with every command registered on it.

One module per group of commands. Each command imports its part of the package inside the function, so importing
this package, ``edgeaff --help`` and the runtime commands work without torch (tests/test_dependency_rule.py).
"""

from __future__ import annotations

from edgeaff.cli import bench, checkpoints, data, demo, doctor, engines, export, infer, serve, training
from edgeaff.cli.app import app, main

# The order `edgeaff --help` lists them in: data and training first, then export and the device side. Typer lists
# command groups (engine-cache) after the plain commands.
app.command("synth")(data.synth)
app.command("prepare")(data.prepare)
app.command("train")(training.train)
app.command("convert-reference")(checkpoints.convert_reference)
app.command("inspect")(checkpoints.inspect_checkpoint)
app.command("export")(export.export)
app.command("build-engines")(engines.build_engines_command)
app.command("infer")(infer.infer_command)
app.command("bench")(bench.bench_command)
app.command("serve")(serve.serve_command)
app.command("doctor")(doctor.doctor)
app.command("demo")(demo.demo)
app.add_typer(engines.engine_cache_app, name="engine-cache")

__all__ = ["app", "main"]
