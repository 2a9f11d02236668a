"""`edgeaff train`: windows, determinism, resume after SIGKILL, Ray == local, frozen trunks, learning."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from prepared_fixture import make_prepared

from edgeaff.runtime.artifacts.checkpoint_header import read_checkpoint_metadata
from edgeaff.runtime.artifacts.prepared import load_prepared_dataset
from edgeaff.train import load_checkpoint
from edgeaff.train.data import WindowDataset
from edgeaff.train.folds import load_folds
from edgeaff.train.runner import plan_jobs, train_jobs

TINY = {"backbone": "ir-tiny", "batch_size": 2, "threads": 1, "learning_rate": 1e-3}


@pytest.fixture(scope="module")
def prepared(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Small: one window per trial, six training trials in fold 0 — for the mechanics tests."""
    return make_prepared(tmp_path_factory.mktemp("prepared"), subjects=8, length=150, seed=3)


@pytest.fixture(scope="module")
def learnable(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_prepared(tmp_path_factory.mktemp("learnable"), subjects=12, length=330, seed=4)


def jobs(models=("multimodal",), folds=(0,), dims=("valence",), epochs=3, recipe_name="paper", seed=0):
    return plan_jobs(
        models=list(models),
        folds=list(folds),
        dimensions=list(dims),
        recipe_name=recipe_name,
        backbone=TINY["backbone"],
        backbone_weights=None,
        seed=seed,
        max_epochs=epochs,
        batch_size=TINY["batch_size"],
        threads=TINY["threads"],
        device="cpu",
        learning_rate=TINY["learning_rate"],
    )


def test_windows_padding_crop_and_normalisation(prepared: Path) -> None:
    dataset = load_prepared_dataset(prepared)
    fold = load_folds(dataset)[0]
    assert fold.normalization is not None
    train = WindowDataset(
        dataset, fold.train, dimension="arousal", normalization=fold.normalization, train=True, seed=5
    )
    val = WindowDataset(dataset, fold.validation, dimension="arousal", normalization=fold.normalization, train=False)
    for ref in train.windows:
        assert ref.valid == min(300, dataset.trials[ref.trial].length - ref.start)
    item = val[0]
    ref = val.windows[0]
    arrays = dataset.arrays(ref.trial)
    assert item["frames"].shape == (300, 3, 40, 40)
    # Centre crop 4..44 and (x/255 - 0.5)/0.5 scaling.
    expected = (arrays.frame[ref.start, 4:44, 4:44].astype(np.float32) / 255 - 0.5) / 0.5
    np.testing.assert_allclose(item["frames"][0].numpy().transpose(1, 2, 0), expected, atol=1e-6)
    stats = fold.normalization
    np.testing.assert_allclose(
        item["mfcc"][0].numpy(), (arrays.mfcc[ref.start] - stats.mfcc.mean) / stats.mfcc.std, rtol=1e-5, atol=1e-5
    )
    assert item["mask"][: ref.valid].all() and not item["mask"][ref.valid :].any()
    if ref.valid < 300:  # padding: black frames → -1, zero audio → -mean/std, label 0
        assert torch.all(item["frames"][ref.valid :] == -1)
        assert torch.allclose(item["vggish"][ref.valid :], torch.tensor(-stats.vggish.mean / stats.vggish.std))
        assert torch.all(item["label"][ref.valid :] == 0)
    # Training: one crop offset and one flip decision per window, reproducible for (seed, epoch, index).
    train.set_epoch(2)
    a, b = train[1], train[1]
    assert torch.equal(a["frames"], b["frames"])
    train.set_epoch(3)
    offsets = set()
    for epoch in range(12):
        train.set_epoch(epoch)
        offsets.add(train[1]["frames"][0, 0, 0, 0].item())
    assert len(offsets) > 2  # the crop/flip draws change with the epoch


def _weights_and_metrics(run_dir: Path, key: str) -> tuple[str, dict]:
    meta = read_checkpoint_metadata(run_dir / key / "checkpoint.safetensors")
    return meta["weights_sha256"], meta["metrics"]


def test_resume_after_sigkill_gives_the_same_result(prepared: Path, tmp_path: Path) -> None:
    base = [
        sys.executable,
        "-m",
        "edgeaff.cli",
        "train",
        str(prepared),
        "--folds",
        "0",
        "--dims",
        "arousal",
        "--model",
        "multimodal",
        "--backbone",
        "ir-tiny",
        "--epochs",
        "4",
        "--batch-size",
        "2",
        "--threads",
        "1",
        "--lr",
        "1e-3",
    ]
    reference_dir, killed_dir = tmp_path / "uninterrupted", tmp_path / "killed"
    subprocess.run([*base, "-o", str(reference_dir)], check=True, capture_output=True, timeout=600)
    process = subprocess.Popen([*base, "-o", str(killed_dir)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    state = killed_dir / "multimodal/fold0/arousal/state.pt"
    deadline = time.time() + 300
    while not state.exists() and process.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    time.sleep(0.3)  # now inside the second epoch
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert state.exists(), "the run finished before it could be killed"
    assert not (killed_dir / "multimodal/fold0/arousal/checkpoint.safetensors").exists()
    refused = subprocess.run([*base, "-o", str(killed_dir)], capture_output=True, text=True, timeout=600)
    assert refused.returncode != 0 and "--resume" in refused.stderr
    subprocess.run([*base, "-o", str(killed_dir), "--resume"], check=True, capture_output=True, timeout=600)
    key = "multimodal/fold0/arousal"
    assert _weights_and_metrics(killed_dir, key) == _weights_and_metrics(reference_dir, key)
    log_a = (reference_dir / key / "log.csv").read_text().splitlines()
    log_b = (killed_dir / key / "log.csv").read_text().splitlines()
    assert [r.rsplit(",", 1)[0] for r in log_a] == [r.rsplit(",", 1)[0] for r in log_b]  # all but seconds
    assert len(log_b) == 5  # header + 4 epochs, nothing duplicated
    runs = json.loads((killed_dir / "runs.json").read_text())
    assert runs["runs"][0]["status"] == "finished"
    # A finished job is not retrained.
    mtime = (killed_dir / key / "checkpoint.safetensors").stat().st_mtime_ns
    subprocess.run([*base, "-o", str(killed_dir), "--resume"], check=True, capture_output=True, timeout=600)
    assert (killed_dir / key / "checkpoint.safetensors").stat().st_mtime_ns == mtime


def test_ray_run_equals_local_run(prepared: Path, tmp_path: Path) -> None:
    ray = pytest.importorskip("ray")
    planned = jobs(folds=(0, 1), dims=("valence",), epochs=2)
    local = train_jobs(planned, prepared, tmp_path / "local")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        remote = train_jobs(planned, prepared, tmp_path / "ray", ray_address="auto")
    finally:
        ray.shutdown()
    for job in planned:
        assert remote[job.key]["status"] == "finished"
        assert remote[job.key]["weights_sha256"] == local[job.key]["weights_sha256"]
        assert remote[job.key]["metrics"] == local[job.key]["metrics"]


def _trunk(state: dict[str, torch.Tensor], groups: list[list[str]]) -> dict[str, torch.Tensor]:
    tuned = [f"backbone.{prefix}" for group in groups for prefix in group]
    return {
        k: v for k, v in state.items() if k.startswith("backbone.") and not any(k.startswith(t + ".") for t in tuned)
    }


def test_paper_recipe_keeps_identical_frozen_trunks_and_abaw2_does_not(prepared: Path, tmp_path: Path) -> None:
    paper = jobs(folds=(0, 1), dims=("valence",), epochs=1)
    abaw2 = jobs(folds=(0,), dims=("valence",), epochs=1, recipe_name="abaw2")
    train_jobs(paper, prepared, tmp_path / "paper")
    train_jobs(abaw2, prepared, tmp_path / "abaw2")
    models = [load_checkpoint(tmp_path / "paper" / job.key / "checkpoint.safetensors")[0] for job in paper]
    groups = models[0].backbone.finetune_groups()
    trunk_a, trunk_b = (_trunk(m.state_dict(), groups) for m in models)
    assert trunk_a.keys() == trunk_b.keys() and len(trunk_a) > 10
    assert all(torch.equal(trunk_a[k], trunk_b[k]) for k in trunk_a)
    abaw2_model, meta = load_checkpoint(tmp_path / "abaw2" / abaw2[0].key / "checkpoint.safetensors")
    assert meta.model.fusion == "abaw2"
    trunk_c = _trunk(abaw2_model.state_dict(), groups)
    drifted = [k for k in trunk_c if k.endswith("running_mean") and not torch.equal(trunk_c[k], trunk_a[k])]
    assert drifted  # frozen BatchNorm layers ran in train mode and updated their statistics


def test_failed_jobs_are_reported_and_options_validated(prepared: Path, tmp_path: Path) -> None:
    from edgeaff.runtime.errors import InvalidInputError
    from edgeaff.train.runner import parse_choices, parse_folds

    assert parse_folds("0-2,5") == [0, 1, 2, 5]
    with pytest.raises(InvalidInputError, match="folds are 0-5"):
        parse_folds("0-6")
    with pytest.raises(InvalidInputError, match="valence, arousal"):
        parse_choices("valence,dominance", ("valence", "arousal"), "--dims")
    with pytest.raises(InvalidInputError, match="not a prepared dataset"):
        train_jobs(jobs(), tmp_path, tmp_path / "out")
    with pytest.raises(InvalidInputError, match="file not found"):
        plan_jobs(
            models=["unimodal"],
            folds=[0],
            dimensions=["valence"],
            recipe_name="paper",
            backbone="ir-tiny",
            backbone_weights=str(tmp_path / "absent.pth"),
            seed=0,
            max_epochs=1,
            batch_size=1,
            threads=1,
            device="cpu",
        )


@pytest.mark.slow
def test_models_learn_and_audio_helps_arousal(learnable: Path, tmp_path: Path) -> None:
    """Valence is drawn in the faces and arousal mostly in the audio features of the fixture."""
    planned = jobs(models=("multimodal", "unimodal"), dims=("valence", "arousal"), epochs=4)
    results = train_jobs(planned, learnable, tmp_path / "run", workers=2)  # one thread per job: both cores
    score = {key: r["metrics"]["validation_ccc"] for key, r in results.items()}
    assert score["multimodal/fold0/valence"] > 0.4
    assert score["multimodal/fold0/arousal"] > 0.4
    assert score["multimodal/fold0/arousal"] > score["unimodal/fold0/arousal"] + 0.1
