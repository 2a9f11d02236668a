"""design.md §2: the runtime and the CLI entry work where torch cannot be imported.

Which package may import which (runtime never imports torch, train or export) is the import-linter contracts'
job: see ``[tool.importlinter]`` in pyproject.toml and ``test_architecture.py``.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from torch_block import BLOCK_TORCH


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
