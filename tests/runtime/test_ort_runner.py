"""The ONNX Runtime runner honours the runner contract."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edgeaff.runtime.errors import EdgeaffError, InvalidInputError

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

from onnx import TensorProto, helper  # noqa: E402

from edgeaff.runtime.backends.ort import OrtRunner  # noqa: E402


@pytest.fixture
def affine_graph(tmp_path: Path) -> Path:
    """y = x * 2 + b with x (N, 3) float32 and a fixed b."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 3])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 3])
    two = helper.make_tensor("two", TensorProto.FLOAT, [], [2.0])
    bias = helper.make_tensor("b", TensorProto.FLOAT, [3], [0.5, -1.0, 3.0])
    graph = helper.make_graph(
        [helper.make_node("Mul", ["x", "two"], ["x2"]), helper.make_node("Add", ["x2", "b"], ["y"])],
        "affine",
        [x],
        [y],
        initializer=[two, bias],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    path = tmp_path / "affine.onnx"
    onnx.save(model, path)
    return path


def test_runner_computes_and_describes(affine_graph: Path) -> None:
    with OrtRunner(affine_graph, threads=1) as runner:
        assert [s.name for s in runner.inputs] == ["x"]
        assert runner.inputs[0].shape == (None, 3)
        x = np.arange(6, dtype=np.float32).reshape(2, 3)
        out = runner.infer({"x": x})
    np.testing.assert_array_equal(out["y"], x * 2 + np.array([0.5, -1.0, 3.0], dtype=np.float32))


def test_runner_checks_its_feed(affine_graph: Path) -> None:
    with OrtRunner(affine_graph) as runner:
        with pytest.raises(InvalidInputError, match="must be float32"):
            runner.infer({"x": np.zeros((2, 3), dtype=np.float64)})
        with pytest.raises(InvalidInputError, match="axis 1"):
            runner.infer({"x": np.zeros((2, 4), dtype=np.float32)})
        with pytest.raises(InvalidInputError, match="missing"):
            runner.infer({})
    with pytest.raises(RuntimeError, match="with"):
        runner.infer({"x": np.zeros((1, 3), dtype=np.float32)})


def test_runner_refuses_unavailable_providers_and_bad_files(affine_graph: Path, tmp_path: Path) -> None:
    import onnxruntime as ort

    if "CUDAExecutionProvider" not in ort.get_available_providers():
        with pytest.raises(EdgeaffError, match="CUDAExecutionProvider"), OrtRunner(affine_graph, backend="ort-cuda"):
            pass
    with pytest.raises(InvalidInputError, match="choose one of"):
        OrtRunner(affine_graph, backend="ort-gpu")
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(affine_graph.read_bytes()[:40])
    with pytest.raises(EdgeaffError, match="cannot load"), OrtRunner(broken):
        pass
    with pytest.raises(InvalidInputError, match="not found"), OrtRunner(tmp_path / "absent.onnx"):
        pass


def test_threads_and_spinning_reach_the_session(affine_graph: Path) -> None:
    for threads, spinning in ((1, False), (2, True)):
        with OrtRunner(affine_graph, threads=threads, spinning=spinning) as runner:
            assert runner.settings == {"threads": threads, "spinning": spinning}
    with OrtRunner(affine_graph) as runner:  # nothing asked: ONNX Runtime's own defaults, reported as such
        assert runner.settings == {"threads": None, "spinning": None}
    with pytest.raises(RuntimeError, match="not open"):
        _ = runner.settings


def _config_entry(runner: OrtRunner, key: str) -> str | None:
    try:
        return str(runner._session.get_session_options().get_session_config_entry(key))
    except RuntimeError:  # never set
        return None


def test_spinning_stops_when_a_run_ends(affine_graph: Path) -> None:
    from edgeaff.runtime.backends.ort import SPINNING_STOP_KEY

    with OrtRunner(affine_graph, threads=2, spinning=True) as runner:
        assert _config_entry(runner, SPINNING_STOP_KEY) == "1"
    for spinning in (False, None):  # nothing spins, or ONNX Runtime's own default is left untouched
        with OrtRunner(affine_graph, threads=2, spinning=spinning) as runner:
            assert _config_entry(runner, SPINNING_STOP_KEY) is None
