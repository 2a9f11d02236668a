"""Every graph session gets the thread count and spinning policy of edgeaff.runtime.backends.cpu_threads."""

from __future__ import annotations

import pytest

pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

from onnx_bundle import build_bundle

from edgeaff.runtime import BackendOptions, Bundle, OrtRunner, graph_runner, load_bundle
from edgeaff.runtime.backends.cpu_threads import DEFAULT_SPINNING, SERIAL_ROLES, graph_threads
from edgeaff.runtime.limits import usable_cores

ROLES = ("visual", "vggish", "temporal", "temporal_stream")


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Bundle:
    return load_bundle(build_bundle(tmp_path_factory.mktemp("threads"), models=2).path)


def _settings(bundle: Bundle, role: str, options: BackendOptions) -> dict:
    runner, _ = graph_runner(bundle, role, options)
    assert isinstance(runner, OrtRunner)
    with runner:
        return runner.settings


def test_defaults_follow_the_cores_and_the_graph(bundle: Bundle) -> None:
    for role in ROLES:
        expected = 1 if role in SERIAL_ROLES else usable_cores()
        assert graph_threads(role) == expected
        assert _settings(bundle, role, BackendOptions()) == {"threads": expected, "spinning": DEFAULT_SPINNING}


def test_options_override_the_defaults(bundle: Bundle) -> None:
    options = BackendOptions(threads=1, spinning=True)
    for role in ROLES:
        assert _settings(bundle, role, options) == {"threads": 1, "spinning": True}
    runner, _ = graph_runner(bundle, "visual", BackendOptions(spinning=False), threads=1)
    with runner:
        assert isinstance(runner, OrtRunner) and runner.settings == {"threads": 1, "spinning": False}
