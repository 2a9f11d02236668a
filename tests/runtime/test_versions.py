"""The one version report: what it records and that it never imports what it reports."""

from __future__ import annotations

import importlib.metadata
import platform

import numpy as np
import pytest
from test_dependency_rule import run_without_torch

import edgeaff
from edgeaff.runtime.versions import EXPORT_LIBRARIES, LIBRARIES, RUNTIME_LIBRARIES, versions


def test_versions_reports_edgeaff_python_numpy_and_installed_libraries() -> None:
    found = versions()
    assert found["edgeaff"] == edgeaff.__version__
    assert found["python"] == platform.python_version() and found["numpy"] == np.__version__
    assert found["onnxruntime"] == importlib.metadata.version("onnxruntime")
    assert set(found) <= {"edgeaff", "python", "numpy", *RUNTIME_LIBRARIES}
    assert "torch" not in found  # the runtime report names what the runtime uses


def test_absent_libraries_are_left_out_and_unknown_ones_are_a_bug(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(LIBRARIES, "onnx", ("no-such-distribution-for-edgeaff",))
    assert "onnx" not in versions(EXPORT_LIBRARIES)
    with pytest.raises(KeyError):
        versions(["not-a-library"])


def test_versions_imports_nothing_it_reports() -> None:
    code = (
        "from edgeaff.runtime.versions import LIBRARIES, versions\n"
        "found = versions(LIBRARIES)\n"
        "print(sorted(found))\n"
        "assert 'onnxruntime' not in sys.modules and 'torch' not in sys.modules\n"
    )
    result = run_without_torch(code)
    assert result.returncode == 0, result.stderr
