"""design.md §2: the runtime and the CLI entry work where torch cannot be imported; runtime never imports train."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

from torch_block import BLOCK_TORCH

import edgeaff

PACKAGE = Path(edgeaff.__file__).parent


def run_without_torch(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", BLOCK_TORCH + code], capture_output=True, text=True, timeout=300, check=False
    )


def test_torch_is_really_blocked_in_the_subprocess() -> None:
    result = run_without_torch("import torch")
    assert result.returncode != 0 and "torch is blocked" in result.stderr


def test_every_runtime_module_imports_without_torch() -> None:
    code = (
        "import pkgutil, importlib, edgeaff.runtime as rt\n"
        "names = [m.name for m in pkgutil.walk_packages(rt.__path__, 'edgeaff.runtime.')]\n"
        "for name in names: importlib.import_module(name)\n"
        "import edgeaff.cli\n"
        "assert not any(m == 'torch' or m.startswith('torch.') for m in sys.modules)\n"
        "assert not any(m.startswith(('edgeaff.train', 'edgeaff.export')) for m in sys.modules)\n"
        "print(len(names))\n"
    )
    result = run_without_torch(code)
    assert result.returncode == 0, result.stderr
    assert int(result.stdout.strip()) >= 3


def test_cli_help_works_without_torch() -> None:
    result = run_without_torch("from edgeaff.cli import main\nmain(['--help'])")
    assert result.returncode == 0, result.stderr
    assert "convert-reference" in result.stdout


def test_training_commands_name_the_extra_without_torch(tmp_path: Path) -> None:
    result = run_without_torch(
        "from edgeaff.cli import main\n"
        f"main(['convert-reference', 'x.pth', '--model', 'unimodal', '--dim', 'valence', '-o', r'{tmp_path}/o'])"
    )
    assert result.returncode == 3
    assert "edgeaff[train]" in result.stderr and "Traceback" not in result.stderr


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def test_runtime_sources_never_import_torch_train_or_export() -> None:
    offenders = {}
    for path in sorted((PACKAGE / "runtime").rglob("*.py")):
        bad = {
            name
            for name in _imports(path)
            if name == "torch" or name.startswith(("torch.", "edgeaff.train", "edgeaff.export", "edgeaff.cli"))
        }
        if bad:
            offenders[str(path.relative_to(PACKAGE))] = sorted(bad)
    assert offenders == {}
