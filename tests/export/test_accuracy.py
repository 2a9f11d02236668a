"""Export's accuracy check reads prepared data through the one reader, windows with the one window rule and
scores with the one CCC (on tiny torch-free bundles, against hand-listed windows)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from onnx_bundle import TinyBundle, build_bundle
from prepared_fixture import write_prepared_dataset

from edgeaff.export import accuracy
from edgeaff.runtime.artifacts.bundle import load_bundle
from edgeaff.runtime.artifacts.prepared import PreparedDataset, load_prepared_dataset
from edgeaff.runtime.backends.ort import OrtRunner
from edgeaff.runtime.errors import InvalidInputError
from edgeaff.runtime.metrics import ccc
from edgeaff.runtime.pipeline import windows

LENGTHS = {"long": 650, "short": 120}
# The reference's windows for 650 frames (300 / hop 200, last window flush with the end), listed by hand.
LONG_WINDOWS = [(0, 300), (200, 500), (350, 650)]


@pytest.fixture(scope="module")
def setting(tmp_path_factory: pytest.TempPathFactory) -> tuple[TinyBundle, PreparedDataset]:
    root = tmp_path_factory.mktemp("accuracy")
    built = build_bundle(root, models=[(0, "arousal"), (0, "valence")], precisions=("fp32", "fp16"))
    rng = np.random.default_rng(7)
    trials = {}
    for name, length in LENGTHS.items():
        arrays = {
            "frame": rng.integers(0, 256, (length, 48, 48, 3), dtype=np.uint8),
            "mfcc": rng.normal(0.0, 5.0, (length, 39)).astype(np.float32),
            "vggish": rng.normal(0.0, 0.5, (length, 128)).astype(np.float32),
            "label": np.clip(np.cumsum(rng.normal(0, 0.05, (length, 2)), axis=0), -1, 1).astype(np.float32),
        }
        trials[name] = ("Validation_Set", arrays)
    write_prepared_dataset(root / "prepared", trials)
    return built, load_prepared_dataset(root / "prepared")


def _expected(built: TinyBundle, dataset: PreparedDataset, trial: str, spans: list[tuple[int, int]]) -> np.ndarray:
    arrays = dataset.arrays(trial)
    with OrtRunner(load_bundle(built.path).graphs["visual"].file()) as visual:
        embeddings = visual.infer({"frames": np.asarray(arrays.frame)})["embeddings"]
    total, count = np.zeros((arrays.length, len(built.models))), np.zeros(arrays.length)
    for start, stop in spans:
        total[start:stop] += built.temporal(embeddings[start:stop], arrays.vggish[start:stop], arrays.mfcc[start:stop])
        count[start:stop] += 1
    return total / count[:, None]


def test_accuracy_uses_the_one_window_rule(setting: tuple[TinyBundle, PreparedDataset]) -> None:
    built, dataset = setting
    assert accuracy.window_starts is windows.window_starts
    bundle = load_bundle(built.path)
    with (
        OrtRunner(bundle.graphs["visual"].file()) as visual,
        OrtRunner(bundle.graphs["temporal"].file()) as temporal,
    ):
        for trial, spans in (("long", LONG_WINDOWS), ("short", [(0, 120)])):
            ours = accuracy.predict_trial(
                visual, temporal, dataset.arrays(trial), window=300, hop=200, frames=None, audio=True
            )
            assert ours.shape == (LENGTHS[trial], 2)
            assert np.abs(ours - _expected(built, dataset, trial, spans)).max() < 1e-5


def test_variants_are_scored_with_the_one_ccc(setting: tuple[TinyBundle, PreparedDataset]) -> None:
    built, dataset = setting
    graphs = load_bundle(built.path).graphs
    paths = {p: accuracy.GraphPaths(graphs["visual"].file(p), graphs["temporal"].file(p)) for p in ("fp32", "fp16")}
    report = accuracy.compare_variants(
        paths,
        dataset,
        ["long", "short"],
        dimensions=["arousal", "valence"],
        window=300,
        hop=200,
        frames_per_trial=None,
        audio=True,
    )
    assert report["frames"] == 770 and report["trials"] == ["long", "short"]
    labels = np.concatenate([np.asarray(dataset.arrays(t).label) for t in ("long", "short")])
    predictions = np.concatenate(
        [_expected(built, dataset, "long", LONG_WINDOWS), _expected(built, dataset, "short", [(0, 120)])]
    )
    # Model 0 predicts arousal (label column 1), model 1 valence (column 0).
    expected = [ccc(predictions[:, 0], labels[:, 1]), ccc(predictions[:, 1], labels[:, 0])]
    assert report["fp32"]["ccc_labels"] == pytest.approx(expected, abs=1e-5)
    assert min(report["fp16"]["ccc_vs_fp32"]) > 0.999 and report["fp16"]["max_abs_vs_fp32"] > 0


def test_unlabelled_trials_are_refused(tmp_path: Path, setting: tuple[TinyBundle, PreparedDataset]) -> None:
    _, labelled = setting
    arrays = labelled.arrays("short")
    write_prepared_dataset(
        tmp_path / "p", {"x": ("Validation_Set", {"frame": arrays.frame, "mfcc": arrays.mfcc, "vggish": arrays.vggish})}
    )
    with pytest.raises(InvalidInputError, match=r"prepared trial 'x' .* has no labels"):
        accuracy.labels_for(load_prepared_dataset(tmp_path / "p"), ["x"], ["valence"], None)
