"""Run the benchmark scenarios of ``scenarios.toml`` and write the result tables for this device.

Builds what the scenarios need in ``--work`` (reused by later runs): the synthetic dataset (``edgeaff synth`` +
``edgeaff prepare``), random-weight fold checkpoints and their bundles. Then, each in its own process:

* ``[[bench]]``: ``edgeaff bench`` (torch-free) on the synthetic video, with the machine's measured peak and each
  graph's fraction of it;
* ``[[live]]``: ``live_speed.py``, the video replayed at its frame rate as a live source, stream mode;
* ``[[reference]]``: ``reference_speed.py``, the runtime against reference-style PyTorch;
* ``[[shared_trunk]]``: the bundle's shared-trunk visual graph against one with a whole backbone per model;
* ``[ceilings]``: ``jetson_ceilings.py``, FLOPs and Jetson ceilings.

Results go to ``benchmarks/results/<device>/<name>.json`` and ``.md``; ``README.md`` there lists the targets and
where each stands, and the speed section of the repository's ``README.md`` is regenerated from them
(``readme_speed.py``; ``--no-readme`` leaves it alone).

Usage::

    python benchmarks/run_scenarios.py [--device cpu-2core] [--work /tmp/edgeaff-bench-work] [--only NAME ...]
        [--threads N] [--index-only] [--no-readme]

``--threads`` defaults to the runtime's choice (every core for the large graphs, one for the face detector, the
streaming step's measured once per machine and bundle); give a number to pin every graph to it.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib


HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))

import assets  # noqa: E402  (the sibling module, importable once HERE is on the path)
import readme_speed  # noqa: E402
import results_index  # noqa: E402


def _environment() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    return env


def _run(command: list[str], log: Path) -> None:
    """Run a benchmark process, teeing its output into ``log``; stop on failure."""
    print("$", " ".join(command), flush=True)
    started = time.perf_counter()
    with log.open("w") as handle:
        process = subprocess.run(
            command, cwd=REPO, env=_environment(), stdout=handle, stderr=subprocess.STDOUT, check=False
        )
    print(f"  took {time.perf_counter() - started:.0f} s (log: {log})", flush=True)
    if process.returncode != 0:
        print(log.read_text()[-4000:])
        raise SystemExit(f"{command[0]} {' '.join(command[1:4])} ... failed with exit code {process.returncode}")


class Workspace:
    """The dataset, checkpoints and bundles of the scenarios, built on first use and cached in ``work``."""

    def __init__(self, config: dict[str, Any], work: Path) -> None:
        self.config, self.work = config, work
        dataset = config["dataset"]
        self.root, self.prepared = assets.synthetic_dataset(work, videos=dataset["videos"], seconds=dataset["seconds"])
        self.source = self.root / dataset["source"]
        self.trial = assets.trimmed_trial(
            self.prepared, dataset["reference_trial"], dataset["reference_frames"], work / "trials"
        )

    def checkpoints(self, name: str) -> list[Path]:
        """The fold checkpoints of bundle ``name`` (built with random weights when missing)."""
        spec = self.config["bundles"][name]
        entries = assets.fold_entries(spec["folds"], spec.get("dimensions", assets.DIMENSIONS))
        directory = self.work / "checkpoints" / name
        paths = [directory / f"fold{f}_{d}_multimodal.safetensors" for f, d in entries]
        if not all(p.is_file() for p in paths):
            models = assets.build_models(len(entries), backbone=spec["backbone"])
            paths = assets.save_models(models, directory, entries)
        return paths

    def bundle(self, name: str) -> Path:
        """Bundle ``name`` (exported when missing or out of date)."""
        spec = self.config["bundles"][name]
        int8 = bool(spec.get("int8"))
        return assets.export(
            self.checkpoints(name), self.work / "bundles" / name, fp16=bool(spec.get("fp16")), int8=int8,
            calib=self.prepared if int8 else None,
        )  # fmt: skip


def _threads(threads: int | None) -> list[str]:
    return [] if threads is None else ["--threads", str(threads)]


def run_bench(space: Workspace, scenario: dict[str, Any], out: Path, threads: int | None) -> None:
    """One ``edgeaff bench`` scenario."""
    bundle = space.bundle(scenario["bundle"])
    command = [sys.executable, "-m", "edgeaff.cli", "bench", "--bundle", str(bundle), "--source", str(space.source)]
    command += ["--precision", scenario.get("precision", "fp32"), "--mode", scenario.get("mode", "offline")]
    command += ["--iterations", str(scenario.get("iterations", 1)), "--warmup", str(scenario.get("warmup", 1))]
    command += ["--pairs", str(scenario.get("pairs", 10)), *_threads(threads)]
    command += ["--detect-every", str(scenario.get("detect_every", 10))]
    if "batch" in scenario:
        command += ["--batch", str(scenario["batch"])]
    if not scenario.get("compare", True):
        command.append("--no-compare")
    name = scenario["name"]
    command += ["--json", str(out / f"{name}.json"), "--markdown", str(out / f"{name}.md")]
    _run(command, out / "logs" / f"{name}.log")


def run_live(space: Workspace, scenario: dict[str, Any], out: Path, threads: int | None) -> None:
    """One live replay in stream mode (``live_speed.py``)."""
    name = scenario["name"]
    command = [sys.executable, str(HERE / "live_speed.py"), "--bundle", str(space.bundle(scenario["bundle"]))]
    command += ["--source", str(space.source), "--precision", scenario.get("precision", "int8"), *_threads(threads)]
    command += ["--speed", str(scenario.get("speed", 1.0)), "--warmup", str(scenario.get("warmup", 60))]
    command += ["--json", str(out / f"{name}.json"), "--markdown", str(out / f"{name}.md")]
    _run(command, out / "logs" / f"{name}.log")


def run_reference(space: Workspace, scenario: dict[str, Any], out: Path, threads: int | None) -> None:
    """One runtime-vs-PyTorch scenario."""
    bundle = space.bundle(scenario["bundle"])
    name = scenario["name"]
    command = [sys.executable, str(HERE / "reference_speed.py"), *map(str, space.checkpoints(scenario["bundle"]))]
    command += ["--bundle", str(bundle), "--trial", str(space.trial), "--pairs", str(scenario.get("pairs", 3))]
    command += [*_threads(threads), "--json", str(out / f"{name}.json"), "--markdown", str(out / f"{name}.md")]
    _run(command, out / "logs" / f"{name}.log")


def run_shared_trunk(space: Workspace, scenario: dict[str, Any], out: Path, threads: int | None) -> None:
    """Shared trunk + tails against one whole backbone per model, same crops, same outputs."""
    command = [sys.executable, str(HERE / "shared_trunk_speed.py"), *map(str, space.checkpoints(scenario["bundle"]))]
    command += ["--bundle", str(space.bundle(scenario["bundle"])), "--trial", str(space.trial)]
    command += ["--batch", str(scenario.get("batch", 16)), "--pairs", str(scenario.get("pairs", 5))]
    command += ["--work", str(space.work / "per-fold"), *_threads(threads)]
    name = scenario["name"]
    command += ["--json", str(out / f"{name}.json"), "--markdown", str(out / f"{name}.md")]
    _run(command, out / "logs" / f"{name}.log")


def run_ceilings(space: Workspace, scenario: dict[str, Any], out: Path) -> None:
    """FLOPs and Jetson ceilings."""
    name = scenario["name"]
    command = [sys.executable, str(HERE / "jetson_ceilings.py"), *map(str, space.checkpoints(scenario["bundle"]))]
    command += ["--bundle", str(space.bundle(scenario["bundle"]))]
    command += ["--json", str(out / f"{name}.json"), "--markdown", str(out / f"{name}.md")]
    _run(command, out / "logs" / f"{name}.log")


def main() -> int:
    """Parse arguments, build, run, index."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scenarios", type=Path, default=HERE / "scenarios.toml")
    parser.add_argument("--device", default="cpu-2core", help="results folder name for this machine")
    parser.add_argument("--work", type=Path, default=Path("/tmp/edgeaff-bench-work"))
    parser.add_argument("--only", nargs="*", help="scenario names to run (default: all)")
    parser.add_argument("--threads", type=int, default=None, help="threads per graph (default: the runtime's)")
    parser.add_argument("--index-only", action="store_true", help="only rewrite the READMEs from the results there")
    parser.add_argument("--no-readme", action="store_true", help="leave the repository's README.md alone")
    args = parser.parse_args()
    config = tomllib.loads(args.scenarios.read_text())
    out = HERE / "results" / args.device
    (out / "logs").mkdir(parents=True, exist_ok=True)
    if not args.index_only:
        wanted = set(args.only or [])

        def chosen(scenario: dict[str, Any]) -> bool:
            return not wanted or scenario["name"] in wanted

        space = Workspace(config, args.work)
        for scenario in filter(chosen, config.get("bench", [])):
            run_bench(space, scenario, out, args.threads)
        for scenario in filter(chosen, config.get("live", [])):
            run_live(space, scenario, out, args.threads)
        for scenario in filter(chosen, config.get("reference", [])):
            run_reference(space, scenario, out, args.threads)
        for scenario in filter(chosen, config.get("shared_trunk", [])):
            run_shared_trunk(space, scenario, out, args.threads)
        ceilings = config.get("ceilings")
        if ceilings and chosen(ceilings):
            run_ceilings(space, ceilings, out)
        (out / "scenarios.json").write_text(json.dumps(config, indent=2) + "\n")
    results_index.write_index(out, args.device)
    print(f"wrote {out / 'README.md'}")
    if not args.no_readme:
        changed = readme_speed.update_readme(REPO / "README.md", readme_speed.render_section(out, args.device))
        print(f"{'updated' if changed else 'unchanged'}: the speed section of {REPO / 'README.md'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
