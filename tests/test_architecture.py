"""design.md §2: no import cycle anywhere in edgeaff, and the import-linter contracts in pyproject.toml bite.

The contracts themselves run in CI (`lint-imports`); these tests prove that each one fails on a planted import
(in a copy of the package) and passes on the package as it is.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import grimp
import networkx
import pytest

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

REPO = Path(__file__).resolve().parents[1]

KNOWN_CYCLES: frozenset[frozenset[str]] = frozenset()
"""Import cycles that exist today and are being removed; a cycle not listed here fails the test, and so does a
listed cycle that no longer exists (delete its entry)."""


def import_graph() -> tuple[networkx.DiGraph, grimp.ImportGraph]:
    """Every module of edgeaff and its direct imports of other edgeaff modules (TYPE_CHECKING imports excluded)."""
    imports = grimp.build_graph("edgeaff", exclude_type_checking_imports=True, cache_dir=None)
    graph = networkx.DiGraph()
    graph.add_nodes_from(imports.modules)
    for module in imports.modules:
        graph.add_edges_from((module, imported) for imported in imports.find_modules_directly_imported_by(module))
    return graph, imports


def cycles(graph: networkx.DiGraph) -> set[frozenset[str]]:
    """The strongly connected components of more than one module: each is one or more import cycles."""
    return {frozenset(component) for component in networkx.strongly_connected_components(graph) if len(component) > 1}


def describe(components: set[frozenset[str]], graph: networkx.DiGraph, imports: grimp.ImportGraph | None) -> str:
    """The imports inside each component, with their line numbers, one per line."""
    lines = []
    for component in sorted(components, key=sorted):
        lines.append(f"cycle among {', '.join(sorted(component))}:")
        for importer, imported in sorted(graph.subgraph(component).edges):
            details = imports.get_import_details(importer=importer, imported=imported) if imports else []
            where = ", ".join(f"line {detail['line_number']}" for detail in details)
            lines.append(f"  {importer} -> {imported}" + (f" ({where})" if where else ""))
    return "\n".join(lines)


def test_no_import_cycle_in_edgeaff() -> None:
    graph, imports = import_graph()
    assert graph.number_of_nodes() > 100  # the whole package was read, not an empty stand-in
    found = cycles(graph)
    new = found - KNOWN_CYCLES
    gone = KNOWN_CYCLES - found
    print(describe(found, graph, imports))
    assert not new, "import cycles:\n" + describe(new, graph, imports)
    assert not gone, "these known cycles are gone; delete them from KNOWN_CYCLES:\n" + "\n".join(
        ", ".join(sorted(component)) for component in gone
    )


def test_the_cycle_check_finds_a_planted_cycle() -> None:
    graph, _ = import_graph()
    assert graph.has_edge("edgeaff.runtime.spec", "edgeaff.runtime.errors")
    graph.add_edge("edgeaff.runtime.errors", "edgeaff.runtime.spec")
    planted = cycles(graph) - KNOWN_CYCLES
    assert planted == {frozenset({"edgeaff.runtime.errors", "edgeaff.runtime.spec"})}
    assert "edgeaff.runtime.errors -> edgeaff.runtime.spec" in describe(planted, graph, None)


# -- the import-linter contracts ---------------------------------------------------------------------------------

CONTRACT_IDS = {
    contract["name"]: contract["id"]
    for contract in tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"]
}
_VERDICT = re.compile(r"^(?P<name>.+) (?P<verdict>KEPT|BROKEN)(?: \(\d+ ignored imports?\))?$")


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The package's Python files and pyproject.toml, copied (import-linter reads only these)."""
    root = tmp_path_factory.mktemp("pristine")
    shutil.copytree(
        REPO / "edgeaff",
        root / "edgeaff",
        ignore=lambda folder, names: (
            [name for name in names if not name.endswith(".py") and not (Path(folder) / name).is_dir()]
            + ["__pycache__"]
        ),
    )
    shutil.copy2(REPO / "pyproject.toml", root / "pyproject.toml")
    return root


def lint_imports(root: Path) -> tuple[int, dict[str, str], str]:
    """Run ``lint-imports`` on the copy at ``root``: exit status, verdict per contract id, full output."""
    env = {**os.environ, "PYTHONPATH": str(root), "COLUMNS": "400"}
    result = subprocess.run(
        [sys.executable, "-c", "from importlinter.cli import lint_imports_command; lint_imports_command()",
         "--no-cache", "--no-logo", str(root / "pyproject.toml")],
        cwd=root, env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    output = result.stdout + result.stderr
    verdicts = {}
    for line in output.splitlines():
        match = _VERDICT.match(line.strip())
        if match and match["name"] in CONTRACT_IDS:
            verdicts[CONTRACT_IDS[match["name"]]] = match["verdict"]
    return result.returncode, verdicts, output


def test_every_contract_is_kept_by_the_package_as_it_is(pristine: Path) -> None:
    code, verdicts, output = lint_imports(pristine)
    assert code == 0, output
    assert verdicts == dict.fromkeys(CONTRACT_IDS.values(), "KEPT"), output


PLANTS = {
    "torch in the runtime": ("runtime/io/media.py", "import torch", {"torch-free"}),
    # train reads the manifest schema's enums, so the chain also climbs the runtime's own layers
    "train in the runtime": ("runtime/metrics.py", "import edgeaff.train.model",
                             {"torch-free", "packages", "acyclic", "runtime-layers"}),
    "export in bench": ("bench/stats.py", "from edgeaff.export import manifest", {"torch-free", "packages"}),
    "torch in doctor": ("doctor/probes.py", "import torch.nn", {"torch-free"}),
    "synth reaching up to doctor": ("synth/plan.py", "from edgeaff.doctor import probes", {"packages"}),
    "io reaching up to pipeline": ("runtime/io/media.py", "import edgeaff.runtime.pipeline.windows",
                                   {"runtime-layers", "acyclic"}),
    "io and audio are independent": ("runtime/io/media.py", "from edgeaff.runtime.audio import signal",
                                     {"runtime-layers"}),
    "bench past the public API": ("bench/stats.py", "from edgeaff.runtime.pipeline import timing",
                                  {"bench-public-api"}),
    "serve past the public API": ("serve/hub.py", "from edgeaff.runtime.io import sources", {"serve-public-api"}),
    "serve reaching up to the cli": ("serve/hub.py", "import edgeaff.cli.app", {"packages", "acyclic"}),
    "torch in serve": ("serve/feed.py", "import torch", {"torch-free"}),
    "batch past the public API": ("batch/index.py", "from edgeaff.runtime.sinks import results",
                                  {"bench-public-api"}),
    "torch in batch": ("batch/discover.py", "import torch", {"torch-free"}),
    "batch reaching up to the cli": ("batch/index.py", "import edgeaff.cli.infer", {"packages", "acyclic"}),
    "a cycle between siblings": ("runtime/errors.py", "import edgeaff.runtime.spec", {"acyclic"}),
    "a package in no layer": ("newpart/__init__.py", "import edgeaff.runtime", {"packages"}),
}  # fmt: skip


@pytest.mark.parametrize("plant", sorted(PLANTS))
def test_a_planted_import_breaks_exactly_its_contracts(plant: str, pristine: Path, tmp_path: Path) -> None:
    relative, statement, broken = PLANTS[plant]
    root = tmp_path / "copy"
    shutil.copytree(pristine, root)
    target = root / "edgeaff" / relative
    target.parent.mkdir(parents=True, exist_ok=True)
    with target.open("a") as handle:
        handle.write(f"\n{statement}  # planted\n")
    code, verdicts, output = lint_imports(root)
    assert code == 1, output
    assert {contract for contract, verdict in verdicts.items() if verdict == "BROKEN"} == broken, output
    assert set(verdicts) == set(CONTRACT_IDS.values()), output
