"""INT8 VGGish calibrated on real log-mel examples, and what happens when the raw audio is not at hand.

A small synthetic Aff-Wild2 tree (speech-like voices, ``edgeaff synth``) is prepared with the seeded VGGish the tiny
models record, then two multimodal models (``paper`` and ``abaw2``) are exported with ``--int8``. The log-mel examples
re-computed from the raw audio must reproduce the prepared VGGish features through the FP32 graph; the INT8 VGGish
forms are calibrated on them, measured in the CCC comparison, and picked by the runtime under ``int8``.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from builders import VGGISH_SOURCE, save_models, tiny_models
from export_support import run_cli

from edgeaff.export import audio_examples, int8_variants
from edgeaff.export.calibration import split_trials
from edgeaff.runtime import BackendOptions, graph_runner, load_bundle
from edgeaff.runtime.artifacts.prepared import load_prepared_dataset
from edgeaff.runtime.backends.ort import OrtRunner
from edgeaff.runtime.cpu import CpuInfo
from edgeaff.train.prepare import prepare_dataset

pytestmark = pytest.mark.slow  # synthesises, prepares and exports a multimodal bundle with INT8 VGGish (minutes)

VNNI_CPU = CpuInfo("test", "x86_64", frozenset({"avx2", "avx512_vnni"}))
AVX2_CPU = CpuInfo("test", "x86_64", frozenset({"avx2", "fma"}))


@pytest.fixture(scope="module")
def prepared(tmp_path_factory: pytest.TempPathFactory) -> Path:
    raw = tmp_path_factory.mktemp("synth") / "affwild2"
    command = [sys.executable, "-m", "edgeaff.cli", "synth", str(raw), "--size", "small", "--seconds", "4"]
    subprocess.run([*command, "--seed", "5", "--workers", "1"], check=True, capture_output=True, timeout=600)
    out = tmp_path_factory.mktemp("prepared") / "prepared"
    prepare_dataset(raw, out, vggish_weights=VGGISH_SOURCE)
    return out


@pytest.fixture(scope="module")
def bundle_path(prepared: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    models = tiny_models([("multimodal", "paper"), ("multimodal", "abaw2")], seed=21)
    checkpoints = save_models(models, tmp_path_factory.mktemp("ckpt"), [(0, "valence"), (0, "arousal")])
    output = tmp_path_factory.mktemp("bundle") / "bundle"
    run_cli(["export", *map(str, checkpoints), "-o", str(output), "--int8", "--calib", str(prepared)])
    return output


def test_log_mel_examples_reproduce_the_prepared_features(prepared: Path, bundle_path: Path) -> None:
    dataset = load_prepared_dataset(prepared)
    _, evaluation = split_trials(dataset)
    found, why = audio_examples.locate_trials(dataset, evaluation)
    assert why is None
    name = evaluation[0]
    examples = audio_examples.trial_examples(dataset, name, found[name])
    assert examples.shape == (dataset.trials[name].length, 96, 64)
    with OrtRunner(load_bundle(bundle_path).graphs["vggish"].file()) as runner:
        ours = runner.infer({"log_mel": examples[:24]})["vggish"]
    stored = np.asarray(dataset.arrays(name).vggish[:24])
    assert np.abs(ours - stored).max() <= 1e-3 * np.abs(stored).max()


def test_vggish_is_quantised_in_every_form_and_measured(bundle_path: Path) -> None:
    bundle = load_bundle(bundle_path)
    manifest = bundle.manifest
    # No 7-bit VGGish (it cost too much CCC): AVX2 CPUs without VNNI run VGGish in FP32.
    assert set(bundle.graphs["vggish"].variants) == {"fp32", "int8", "int8_trt"}
    assert manifest.precision_recipes["int8_avx2"]["quantized_graphs"] == ["visual"]
    for form in ("int8", "int8_trt"):
        recipe = manifest.precision_recipes[form]
        assert recipe["quantized_graphs"] == ["visual", "vggish"] and "vggish_note" not in recipe
        assert recipe["graphs"]["vggish"]["calibration_examples"] > 0
    for form in ("int8", "int8_avx2", "int8_trt"):
        assert len(manifest.parity["ccc"][form]["ccc_vs_fp32"]) == 2
    assert "raw audio" in manifest.parity["ccc"]["audio_features"]
    _, choice = graph_runner(bundle, "vggish", BackendOptions(precision="int8"), cpu=VNNI_CPU)
    assert choice.file == "vggish.int8.onnx" and choice.note is None
    _, choice = graph_runner(bundle, "vggish", BackendOptions(precision="int8"), cpu=AVX2_CPU)
    assert choice.file == "vggish.onnx" and choice.note is not None and "no 7-bit INT8 form" in choice.note


def test_int8_vggish_stays_close_to_fp32_on_real_examples(prepared: Path, bundle_path: Path) -> None:
    dataset = load_prepared_dataset(prepared)
    name = split_trials(dataset)[1][0]
    found, _ = audio_examples.locate_trials(dataset, [name])
    examples = audio_examples.trial_examples(dataset, name, found[name])[::4]
    graphs = load_bundle(bundle_path).graphs["vggish"]
    outputs = {}
    for key in ("fp32", "int8", "int8_trt"):
        with OrtRunner(graphs.variants[key].path) as runner:
            outputs[key] = runner.infer({"log_mel": examples})["vggish"]
    for key in ("int8", "int8_trt"):
        cosine = (outputs[key] * outputs["fp32"]).sum(-1) / (
            np.linalg.norm(outputs[key], axis=-1) * np.linalg.norm(outputs["fp32"], axis=-1)
        )
        assert cosine.min() > 0.98, key


def test_audio_that_no_longer_matches_the_prepared_features_is_refused(prepared: Path, bundle_path: Path) -> None:
    dataset = load_prepared_dataset(prepared)
    first = split_trials(dataset)[0][0]
    second = next(n for n, t in dataset.trials.items() if t.video != dataset.trials[first].video)  # other audio
    found, _ = audio_examples.locate_trials(dataset, [first, second])
    vggish = load_bundle(bundle_path).graphs["vggish"].file()
    own = audio_examples.trial_examples(dataset, first, found[first])
    assert int8_variants.check_examples(vggish, dataset, first, own) is None
    other = audio_examples.trial_examples(dataset, second, found[second])
    why = int8_variants.check_examples(vggish, dataset, first, other)
    assert why is not None and "do not give the prepared VGGish features" in why


def test_without_the_raw_audio_vggish_stays_fp32_and_says_why(prepared: Path, tmp_path: Path) -> None:
    moved = tmp_path / "prepared"
    shutil.copytree(prepared, moved)
    document = json.loads((moved / "dataset.json").read_text())
    document["settings"]["source_root"] = str(tmp_path / "gone")
    (moved / "dataset.json").write_text(json.dumps(document))
    dataset = load_prepared_dataset(moved)
    calibration, _ = split_trials(dataset)
    batches, why = int8_variants.vggish_calibration(dataset, calibration, tmp_path / "unused.onnx")
    assert batches == [] and why is not None and "is not on this machine" in why
    del document["settings"]["source_root"]
    (moved / "dataset.json").write_text(json.dumps(document))
    _, why = audio_examples.locate_trials(load_prepared_dataset(moved), calibration)
    assert why is not None and "records no source_root" in why
