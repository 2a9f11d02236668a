"""The torch-free test bundles (``tests/onnx_bundle.py``): real graphs that match their numpy references, a stream
graph exactly consistent with the windowed graph, precision variants and the face detector, built without torch."""

from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import pytest
from onnx_bundle import TinyBundle, build_bundle
from test_dependency_rule import run_without_torch

from edgeaff.runtime.artifacts.bundle import load_bundle, zero_stream_state
from edgeaff.runtime.artifacts.manifest import Precision
from edgeaff.runtime.backends.ort import OrtRunner

STREAM_TOLERANCE = 1e-6  # the brief's bound for stream vs window
TESTS = Path(__file__).resolve().parents[1]


def _audio(rng: np.random.Generator, length: int) -> tuple[np.ndarray, np.ndarray]:
    return rng.normal(-0.1, 0.5, (length, 128)).astype(np.float32), rng.normal(1.0, 6.0, (length, 39)).astype(
        np.float32
    )


def _stream(
    built: TinyBundle, embeddings: np.ndarray, vggish: np.ndarray | None, mfcc: np.ndarray | None, chunks: list[int]
) -> np.ndarray:
    bundle = load_bundle(built.path)
    state = zero_stream_state(bundle)
    outputs, start = [], 0
    with OrtRunner(bundle.graphs["temporal_stream"].file()) as runner:
        for size in chunks:
            feed = {"embeddings": embeddings[None, start : start + size], "state": state}
            if vggish is not None and mfcc is not None:
                feed |= {"vggish": vggish[None, start : start + size], "mfcc": mfcc[None, start : start + size]}
            result = runner.infer(feed)
            state = result["state_out"]
            outputs.append(result["predictions"][0])
            start += size
    assert start == len(embeddings)
    return np.concatenate(outputs)


def _window(
    built: TinyBundle, embeddings: np.ndarray, vggish: np.ndarray | None, mfcc: np.ndarray | None
) -> np.ndarray:
    with OrtRunner(load_bundle(built.path).graphs["temporal"].file()) as runner:
        feed = {"embeddings": embeddings[None]}
        if vggish is not None and mfcc is not None:
            feed |= {"vggish": vggish[None], "mfcc": mfcc[None]}
        return runner.infer(feed)["predictions"][0]


@pytest.fixture(scope="module")
def mixed(tmp_path_factory: pytest.TempPathFactory) -> TinyBundle:
    models = [(0, "valence"), (1, "valence"), (0, "arousal", "unimodal")]
    return build_bundle(tmp_path_factory.mktemp("mixed"), models=models, precisions=("fp32", "fp16", "int8"))


def test_every_graph_computes_its_numpy_reference(mixed: TinyBundle) -> None:
    bundle = load_bundle(mixed.path)
    rng = np.random.default_rng(1)
    frames = rng.integers(0, 256, (6, 48, 48, 3), dtype=np.uint8)
    with OrtRunner(bundle.graphs["visual"].file()) as visual:
        embeddings = visual.infer({"frames": frames})["embeddings"]
    assert embeddings.shape == (6, 3, 8) and np.abs(embeddings - mixed.visual(frames)).max() < 1e-5
    assert embeddings.std() > 0.1  # the crops matter: not a constant graph
    log_mel = rng.normal(-2.0, 2.0, (4, 96, 64)).astype(np.float32)
    with OrtRunner(bundle.graphs["vggish"].file()) as vggish_graph:
        features = vggish_graph.infer({"log_mel": log_mel})["vggish"]
    reference = mixed.vggish(log_mel)
    assert features.shape == (4, 128) and np.abs(features - reference).max() < 1e-5 * np.abs(reference).max()
    length = 40
    emb = rng.normal(0, 0.5, (length, 3, 8)).astype(np.float32)
    vggish, mfcc = _audio(rng, length)
    window = _window(mixed, emb, vggish, mfcc)
    assert window.shape == (length, 3) and np.abs(window - mixed.temporal(emb, vggish, mfcc)).max() < 1e-5
    # The unimodal model ignores audio; the multimodal ones do not.
    other = _window(mixed, emb, vggish + 1.0, mfcc)
    assert np.abs(other[:, 2] - window[:, 2]).max() == 0 and np.abs(other[:, :2] - window[:, :2]).max() > 1e-3


@pytest.mark.parametrize("multimodal", [True, False])
def test_stream_from_zeros_equals_the_window(tmp_path: Path, multimodal: bool) -> None:
    built = build_bundle(tmp_path, models=2, multimodal=multimodal, kernel=5, seed=3)
    rng = np.random.default_rng(2)
    length = 60
    emb = rng.normal(0, 0.5, (length, 2, 8)).astype(np.float32)
    vggish, mfcc = _audio(rng, length) if multimodal else (None, None)
    streamed = _stream(built, emb, vggish, mfcc, [1, 1, 2, 9, 1, 30, 16])
    assert np.abs(streamed - _window(built, emb, vggish, mfcc)).max() <= STREAM_TOLERANCE


def test_a_long_stream_equals_any_window_once_the_receptive_field_is_filled(mixed: TinyBundle) -> None:
    rng = np.random.default_rng(4)
    length, start, field = 80, 30, mixed.kernel
    assert load_bundle(mixed.path).streaming.receptive_field == field
    emb = rng.normal(0, 0.5, (length, 3, 8)).astype(np.float32)
    vggish, mfcc = _audio(rng, length)
    streamed = _stream(mixed, emb, vggish, mfcc, [1] * 10 + [70])
    window = _window(mixed, emb[start:], vggish[start:], mfcc[start:])
    filled = slice(field - 1, None)  # from the window's K-th frame on, both have seen K real frames
    assert np.abs(streamed[start:][filled] - window[filled]).max() <= STREAM_TOLERANCE
    assert np.abs(streamed[start] - window[0]).max() > 1e-4  # before that the window's zero history shows


def test_precision_variants_are_real_and_close(mixed: TinyBundle) -> None:
    bundle = load_bundle(mixed.path)
    assert bundle.precisions == (Precision.FP32, Precision.FP16, Precision.INT8)
    visual = bundle.graphs["visual"]
    assert visual.file("int8", tensorrt=True).name == "visual.int8-trt.onnx"
    assert bundle.graphs["temporal"].file("int8") == bundle.graphs["temporal"].file("fp32")
    frames = np.random.default_rng(5).integers(0, 256, (8, 48, 48, 3), dtype=np.uint8)
    outputs = {}
    for precision in ("fp32", "fp16", "int8"):
        with OrtRunner(visual.file(precision)) as runner:
            outputs[precision] = runner.infer({"frames": frames})["embeddings"]
    assert 0 < np.abs(outputs["fp16"] - outputs["fp32"]).max() < 5e-3
    assert 0 < np.abs(outputs["int8"] - outputs["fp32"]).max() < 0.2


def test_the_face_detector_is_the_exporters_conversion(tmp_path: Path) -> None:
    pytest.importorskip("tflite")
    built = build_bundle(tmp_path, models=1, multimodal=False, face_detector=True)
    bundle = load_bundle(built.path)
    detector = bundle.face_detector
    assert detector is not None and detector.detector_spec is not None
    assert detector.detector_spec["name"] == "blazeface-short-range"
    assert bundle.graphs["face_detector"].file().name == "face_detector.onnx"


def test_the_builder_and_the_bundle_work_where_torch_cannot_be_imported(tmp_path: Path) -> None:
    code = (
        f"sys.path.insert(0, {str(TESTS)!r})\n"
        "from pathlib import Path\n"
        "import numpy as np\n"
        "from onnx_bundle import build_bundle\n"
        "from edgeaff.runtime.artifacts.bundle import load_bundle\n"
        "from edgeaff.runtime.backends.ort import OrtRunner\n"
        f"built = build_bundle(Path({str(tmp_path)!r}), precisions=('fp32', 'fp16', 'int8'))\n"
        "bundle = load_bundle(built.path)\n"
        "frames = np.zeros((2, 48, 48, 3), np.uint8)\n"
        "with OrtRunner(bundle.graphs['visual'].file('int8')) as runner:\n"
        "    print(runner.infer({'frames': frames})['embeddings'].shape)\n"
        "assert not any(m == 'torch' or m.startswith('torch.') for m in sys.modules)\n"
    )
    result = run_without_torch(code)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "(2, 3, 8)"


def _imports(nodes: list[ast.stmt]) -> set[str]:
    """Absolute module names the statements import, at any depth (``import x``, ``from x import y``)."""
    names: set[str] = set()
    for node in (child for statement in nodes for child in ast.walk(statement)):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def _forbidden(names: set[str], *, exporter: bool = False) -> list[str]:
    """torch and training (and, with ``exporter``, the exporter's package) among the module names."""
    prefixes = ("edgeaff.train", "edgeaff.export") if exporter else ("edgeaff.train",)
    return sorted(n for n in names if n.split(".")[0] == "torch" or any(n.startswith(p) for p in prefixes))


# The one module of the torch-free suites that needs torch: its fixture imports torch, training and the exporter
# inside (and skips where torch is absent), so importing the module itself needs none of them.
TORCH_FIXTURE = TESTS / "infer" / "torch_bundle.py"


def test_the_torch_free_suites_never_import_torch_or_training() -> None:
    """What CI's torch-free step runs: ``tests/runtime`` and ``tests/infer`` and the helpers they import from
    ``tests/`` and ``tests/infer/``: no torch or training anywhere in them, except inside the torch fixture; and the
    pipeline tests' modules import no exporter at their top (their bundles come from ``onnx_bundle``)."""
    infer = TESTS / "infer"
    helpers = {p.stem: p for folder in (TESTS, infer) for p in folder.glob("*.py")}
    todo = sorted((TESTS / "runtime").rglob("*.py")) + sorted(infer.rglob("*.py"))
    seen: set[Path] = set()
    offenders = {}
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        body = ast.parse(path.read_text(), filename=str(path)).body
        names = _imports(body)
        top = _imports([s for s in body if isinstance(s, ast.Import | ast.ImportFrom)])
        bad = set(_forbidden(top, exporter=infer in path.parents))
        if path != TORCH_FIXTURE:
            bad.update(_forbidden(names))
        if bad:
            offenders[str(path.relative_to(TESTS))] = sorted(bad)
        todo += [helpers[n] for n in names if n in helpers]
    assert offenders == {}
    helpers_used = {"onnx_bundle", "infer_support", "media_fixtures", "face_scenes", "synthetic_media", "torch_bundle"}
    assert helpers_used <= {p.stem for p in seen}
    # the check sees imports inside functions too: the torch fixture's module does import torch there
    assert "torch" in _imports(ast.parse(TORCH_FIXTURE.read_text()).body)
