"""`edgeaff prepare` on a synthetic raw tree it has not seen: exact rows, alignments, resume, bad input."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from process_tools import alive, children, wait_for

from edgeaff.runtime.audio.logmel import log_mel
from edgeaff.runtime.audio.mfcc_toolkit import mfcc39_opensmile
from edgeaff.runtime.errors import InvalidInputError
from edgeaff.runtime.io.audio_track import decode_audio
from edgeaff.runtime.io.media import probe_media
from edgeaff.runtime.limits import usable_cores
from edgeaff.train.prepare import prepare_dataset
from edgeaff.train.vggish import load_vggish

WEIGHTS = "random:3"


@pytest.fixture(scope="module")
def raw(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("synth") / "affwild2"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "edgeaff.cli",
            "synth",
            str(root),
            "--size",
            "small",
            "--seconds",
            "3",
            "--seed",
            "11",
            "--workers",
            "1",
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )
    return root


@pytest.fixture(scope="module")
def prepared(raw: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("prepared") / "out"
    prepare_dataset(raw, out, vggish_weights=WEIGHTS)
    return out


def _labelled_rows(annotation: Path) -> tuple[np.ndarray, np.ndarray]:
    table = np.loadtxt(annotation, delimiter=",", skiprows=1, ndmin=2)
    keep = np.flatnonzero((table[:, 0] != -5) & (table[:, 1] != -5))
    return keep, table[keep].astype(np.float32)


def _video(raw: Path, trial: str) -> Path:
    name = trial.removesuffix("_left").removesuffix("_right")
    return next(p for p in raw.glob(f"*/{name}.*") if p.suffix in (".mp4", ".avi", ".mkv", ".webm"))


def test_prepare_writes_exactly_the_reference_rows_and_alignment(raw: Path, prepared: Path) -> None:
    truth = json.loads((raw / "synth.json").read_text())
    dataset = json.loads((prepared / "dataset.json").read_text())
    assert sorted(dataset["trials"]) == sorted(truth["trials"])
    assert dataset["feature_spec"]["vggish"]["weights_source"] == WEIGHTS
    vggish, _ = load_vggish(WEIGHTS)
    checked = {"left_right": False, "fps25": False, "missing_jpg": False, "minus5": False}
    for trial, info in dataset["trials"].items():
        annotation = next(raw.glob(f"annotations/VA_Set/*/{trial}.txt"))
        keep, labels = _labelled_rows(annotation)
        directory = prepared / trial
        assert info["length"] == len(keep)
        np.testing.assert_array_equal(np.load(directory / "label.npy"), labels)
        # Faces: jpg i+1 of every labelled row i, Pillow bicubic 48×48, black when the jpg is missing.
        frames = np.load(directory / "frame.npy")
        missing = set(
            json.loads(truth["trials"][trial]["missing_jpgs"])
            if isinstance(truth["trials"][trial]["missing_jpgs"], str)
            else truth["trials"][trial]["missing_jpgs"]
        )
        for position, row in enumerate(keep[:: max(1, len(keep) // 7)]):
            jpg = raw / "cropped_aligned" / trial / f"{row + 1:05d}.jpg"
            index = int(np.flatnonzero(keep == row)[0])
            if jpg.exists():
                with Image.open(jpg) as image:
                    expected = np.asarray(image.convert("RGB").resize((48, 48), Image.Resampling.BICUBIC))
                np.testing.assert_array_equal(frames[index], expected)
            else:
                assert frames[index].max() == 0
            del position
        for row in missing:
            if row in set(keep.tolist()):  # rows in synth.json are 0-based label rows
                assert frames[int(np.flatnonzero(keep == row)[0])].max() == 0
                checked["missing_jpg"] = True
        # Audio: MFCC row round(i / fps / 0.01) and VGGish example i (start round(i·100/fps)), clamped.
        video = _video(raw, trial)
        fps = probe_media(video).fps
        assert fps == pytest.approx(info["fps"])
        audio = decode_audio(video)
        mfcc_all = mfcc39_opensmile(audio)
        mfcc_rows = np.minimum([round(int(i) / fps / 0.01) for i in keep], len(mfcc_all) - 1)
        np.testing.assert_array_equal(np.load(directory / "mfcc.npy"), mfcc_all[mfcc_rows])
        mel = log_mel(audio)
        count = 1 + int(np.floor((len(mel) - 96) / (100 / fps)))
        sample = keep[:: max(1, len(keep) // 5)]
        starts = [round((1 / fps) * 100 * min(int(i), count - 1)) for i in sample]
        examples = np.stack([mel[s : s + 96] for s in starts]).astype(np.float32)
        with torch.no_grad():
            expected_vggish = vggish(torch.from_numpy(examples)).numpy()
        stored = np.load(directory / "vggish.npy")[[int(np.flatnonzero(keep == i)[0]) for i in sample]]
        # float32 results depend slightly on the batch a row was computed in (≈1e-6 relative); a misaligned example
        # would differ by O(1).
        np.testing.assert_allclose(stored, expected_vggish, rtol=1e-5, atol=1e-4)
        checked["left_right"] |= trial.endswith(("_left", "_right"))
        checked["fps25"] |= fps == 25
        checked["minus5"] |= len(keep) < info["annotation_rows"]
    assert all(checked.values()), checked
    folds = json.loads((prepared / "folds.json").read_text())
    assert len(folds["folds"]) == 6


def test_prepared_folders_and_files_get_the_umask_modes(prepared: Path) -> None:
    import stat

    from edgeaff.runtime.files import current_umask

    mask = current_umask()
    trial = next(p for p in prepared.iterdir() if (p / "trial.json").is_file())
    assert stat.S_IMODE(trial.stat().st_mode) == 0o777 & ~mask  # built in a mkdtemp folder (0700) and renamed
    assert {stat.S_IMODE(p.stat().st_mode) for p in trial.iterdir()} == {0o666 & ~mask}
    assert stat.S_IMODE((prepared / "dataset.json").stat().st_mode) == 0o666 & ~mask


def test_kill_and_rerun_gives_the_uninterrupted_result(raw: Path, prepared: Path, tmp_path: Path) -> None:
    out = tmp_path / "killed"
    command = [sys.executable, "-m", "edgeaff.cli", "prepare", str(raw), str(out), "--vggish-weights", WEIGHTS]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while process.poll() is None and time.time() < deadline:
        if out.exists() and any((p / "trial.json").exists() for p in out.iterdir() if not p.name.startswith(".")):
            break
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    finished = [p.name for p in out.iterdir() if (p / "trial.json").exists()]
    assert finished and not (out / "dataset.json").exists()
    subprocess.run(command, check=True, capture_output=True, timeout=600)
    assert not [p for p in out.iterdir() if p.name.startswith(".tmp-")]
    for trial in json.loads((prepared / "dataset.json").read_text())["trials"]:
        for name in ("frame", "mfcc", "vggish", "label"):
            assert np.array_equal(np.load(out / trial / f"{name}.npy"), np.load(prepared / trial / f"{name}.npy"))
    a, b = (json.loads((d / "dataset.json").read_text()) for d in (out, prepared))
    assert a["trials"] == b["trials"] and a["feature_spec"] == b["feature_spec"]


@pytest.mark.skipif(usable_cores() < 2, reason="--workers 2 needs two cores")
def test_sigkill_of_a_parallel_prepare_leaves_no_worker_and_a_rerun_finishes(raw: Path, tmp_path: Path) -> None:
    out = tmp_path / "parallel"
    command = [sys.executable, "-m", "edgeaff.cli", "prepare", str(raw), str(out), "--vggish-weights", WEIGHTS]
    process = subprocess.Popen([*command, "--workers", "2"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        started = wait_for(
            lambda: (
                (out.is_dir() and any((p / "trial.json").exists() for p in out.iterdir())) or process.poll() is not None
            ),
            300,
        )
        assert started and process.poll() is None, "prepare finished before it could be killed"
        workers = children(process.pid)
        assert len(workers) >= 2
        process.send_signal(signal.SIGKILL)
        process.wait()
        # Without the parent-death signal the workers go on writing trials into `out` and then idle for good.
        assert wait_for(lambda: not any(alive(pid) for pid in workers), 15), [p for p in workers if alive(p)]
    finally:
        process.kill()
        process.wait()
    foreign = out / ".tmp-notes"  # named like a work folder, but not made by edgeaff: a rerun must keep it
    foreign.mkdir()
    result = subprocess.run([*command, "--workers", "2"], capture_output=True, text=True, timeout=600, check=False)
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    assert sorted(p.name for p in out.iterdir() if p.name.startswith(".")) == [".tmp-notes"]
    truth = json.loads((raw / "synth.json").read_text())
    assert sorted(json.loads((out / "dataset.json").read_text())["trials"]) == sorted(truth["trials"])


def test_a_trial_finished_by_another_process_is_kept(tmp_path: Path) -> None:
    from edgeaff.train.prepare import _publish_trial

    done = tmp_path / "t1"
    done.mkdir()
    (done / "trial.json").write_text("{}")
    built = tmp_path / ".tmp-t1-x"
    built.mkdir()
    (built / "trial.json").write_text('{"again": 1}')
    _publish_trial(built, done)  # a killed run's orphan finished it first: same arrays, keep that one
    assert not built.exists() and (done / "trial.json").read_text() == "{}"
    other = tmp_path / "t2"
    other.mkdir()
    (other / "mine.txt").write_text("x")
    built.mkdir()
    (built / "trial.json").write_text("{}")
    with pytest.raises(InvalidInputError, match="is not a prepared trial"):
        _publish_trial(built, other)
    assert (other / "mine.txt").read_text() == "x"


def test_bad_trials_are_reported_and_skipped(raw: Path, tmp_path: Path) -> None:
    broken = tmp_path / "broken"
    shutil.copytree(raw, broken)
    video = _video(broken, "subj03_a")
    video.write_bytes(video.read_bytes()[:2000])  # truncated
    orphan = broken / "annotations/VA_Set/Train_Set/ghost.txt"
    orphan.write_text("valence,arousal\n0.1,0.2\n")
    document = prepare_dataset(broken, tmp_path / "out", vggish_weights=WEIGHTS)
    assert "subj03_a" in document["failed"] and "ghost" in document["failed"]
    assert "no video" in document["failed"]["ghost"]
    assert "subj01_a" in document["trials"]
    assert not (tmp_path / "out" / "subj03_a").exists()


def test_options_are_validated(raw: Path, prepared: Path, tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError, match=r"vggish-10086976\.pth"):
        prepare_dataset(raw, tmp_path / "o", vggish_weights=None)
    with pytest.raises(InvalidInputError, match="opensmile, numpy"):
        prepare_dataset(raw, tmp_path / "o", vggish_weights=WEIGHTS, mfcc_backend="librosa")
    with pytest.raises(InvalidInputError, match="does not look like Aff-Wild2"):
        prepare_dataset(tmp_path, tmp_path / "o", vggish_weights=WEIGHTS)
    with pytest.raises(InvalidInputError, match="other settings"):
        prepare_dataset(raw, prepared, vggish_weights="random:4")


@pytest.mark.slow
def test_prepare_on_ray_local_gives_the_files_of_one_local_worker(raw: Path, prepared: Path, tmp_path: Path) -> None:
    pytest.importorskip("ray")
    out = tmp_path / "ray"
    # One Ray actor with this machine's cores, as `--workers 1` (VGGish's sums depend on the thread count).
    command = [sys.executable, "-m", "edgeaff.cli", "prepare", str(raw), str(out), "--vggish-weights", WEIGHTS]
    result = subprocess.run([*command, "--ray", "local", "--workers", "1"], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    files = sorted(p.relative_to(prepared) for p in prepared.rglob("*") if p.is_file())
    assert sorted(p.relative_to(out) for p in out.rglob("*") if p.is_file()) == files
    assert len([f for f in files if f.name == "vggish.npy"]) == len(
        json.loads((raw / "synth.json").read_text())["trials"]
    )
    for name in files:
        assert (out / name).read_bytes() == (prepared / name).read_bytes(), name
    again = subprocess.run([*command, "--ray", "local"], capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr  # resumable: nothing left to do, the same files
    for name in files:
        assert (out / name).read_bytes() == (prepared / name).read_bytes(), name
    with pytest.raises(InvalidInputError, match="--device cuda:1 with --ray"):
        prepare_dataset(raw, tmp_path / "x", vggish_weights=WEIGHTS, ray_address="local", device="cuda:1")
    with pytest.raises(InvalidInputError, match="--ray 'nowhere'"):
        prepare_dataset(raw, tmp_path / "x", vggish_weights=WEIGHTS, ray_address="nowhere")
