"""``edgeaff synth``: determinism, atomic output, the command line, and the label and voice generators."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from edgeaff.cli import main
from edgeaff.runtime.errors import InvalidInputError
from edgeaff.synth import dataset as dataset_module
from edgeaff.synth import generate_dataset
from edgeaff.synth.labels import TrialLabels, label_file_text, valence_arousal
from edgeaff.synth.plan import plan_videos
from edgeaff.synth.voice import LOUDNESS_DB, PITCH_OCTAVES, SAMPLE_RATE, Voice, speak


def _files(root: Path) -> dict[str, bytes]:
    return {str(path.relative_to(root)): path.read_bytes() for path in sorted(root.rglob("*")) if path.is_file()}


def test_same_seed_gives_byte_identical_files_and_another_seed_does_not(tmp_path: Path) -> None:
    first = _files(generate_dataset(tmp_path / "a", seed=5, seconds=2.0).root)
    second = _files(generate_dataset(tmp_path / "b", seed=5, seconds=2.0, workers=2).root)  # in worker processes
    other = _files(generate_dataset(tmp_path / "c", seed=6, seconds=2.0).root)
    assert first.keys() == second.keys()
    different = [name for name in first if first[name] != second[name]]
    assert different == []  # annotations, jpgs, synth.json and the mp4/avi files themselves
    assert any(name.endswith(".mp4") for name in first) and any(name.endswith(".avi") for name in first)
    labels = "annotations/VA_Set/Train_Set/subj01_a.txt"
    assert first[labels] != other[labels]


def test_non_empty_folder_is_refused_and_force_replaces_only_a_synthetic_dataset(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "data"
    target.mkdir()
    (target / "keep.txt").write_text("mine")
    for extra in ([], ["--force"]):
        with pytest.raises(SystemExit) as exit_info:
            main(["synth", str(target), "--seconds", "2", *extra])
        assert exit_info.value.code == 2
        error = capsys.readouterr().err
        assert "not empty" in error or "not a synthetic dataset" in error
        assert error.count("error: ") == 1 and "Traceback" not in error
        assert [path.name for path in target.iterdir()] == ["keep.txt"]  # --force deletes nothing it did not make

    (target / "keep.txt").unlink()
    umask = os.umask(0o022)
    try:
        for seed in ("0", "1"):  # the second run replaces the first dataset
            with pytest.raises(SystemExit) as exit_info:
                main(["synth", str(target), "--seconds", "2", "--seed", seed, "--force", "--workers", "1"])
            assert exit_info.value.code == 0
    finally:
        os.umask(umask)
    out = capsys.readouterr().out
    assert "5 videos, 6 trials" in out and "synth.json" in out
    assert json.loads((target / "synth.json").read_text())["seed"] == 1
    assert sorted(path.name for path in tmp_path.iterdir()) == ["data"]  # no temporary folders left behind
    # Readable by other accounts: the umask's 0755/0644, not mkdtemp's 0700.
    modes = {stat.S_IMODE(p.stat().st_mode) for p in [target, *target.rglob("*")] if p.is_dir()}
    assert modes == {0o755}
    assert {stat.S_IMODE(p.stat().st_mode) for p in target.rglob("*") if p.is_file()} == {0o644}


def test_a_killed_generation_is_cleaned_up_by_the_next_run(tmp_path: Path) -> None:
    target = tmp_path / "data"
    code = (
        "import os\n"
        "from edgeaff.synth import dataset\n"
        "def render(*args, **kwargs):\n"
        "    os.kill(os.getpid(), 9)\n"
        "dataset.render_video = render\n"
        f"dataset.generate_dataset({str(target)!r}, seconds=2.0)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == -9
    left = [p for p in tmp_path.iterdir() if p.name.startswith(".data.partial-")]
    assert len(left) == 1
    foreign = tmp_path / ".data.partial-mine"
    foreign.mkdir()
    generate_dataset(target, seconds=2.0, seed=0)
    assert sorted(p.name for p in tmp_path.iterdir()) == [".data.partial-mine", "data"]


def test_a_failed_generation_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []

    def failing_render(*args: object, **kwargs: object) -> None:
        calls.append(1)
        raise RuntimeError("disk full")

    monkeypatch.setattr(dataset_module, "render_video", failing_render)
    with pytest.raises(RuntimeError, match="disk full"):
        generate_dataset(tmp_path / "data", seconds=2.0)
    assert calls and list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--size", "huge"], "unknown preset 'huge'; choose one of: small, demo"),
        (["--videos", "4"], "--videos must be at least 5"),
        (["--seconds", "0.5"], "--seconds must be between 2 and 600"),
        (["--workers", "0"], "--workers must be between 1 and"),
        (["--workers", "100000"], "one per core at most"),
        (["--seed", "-1"], "--seed must be between 0 and 4294967295"),
        (["--videos", "1000"], "--videos must be at most 200"),
    ],
)
def test_bad_options_are_one_line_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], options: list[str], message: str
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["synth", str(tmp_path / "x"), *options])
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


def test_synth_needs_no_torch() -> None:
    blocker = (
        "import sys\n"
        "class _Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name == 'torch' or name.startswith('torch.'):\n"
        "            raise ImportError('torch is blocked')\n"
        "sys.meta_path.insert(0, _Block())\n"
        "import edgeaff.synth, edgeaff.synth.render\n"
        "from edgeaff.cli import main\n"
        "assert not any(m.startswith(('torch', 'edgeaff.train')) for m in sys.modules)\n"
        "main(['synth', '--help'])\n"
    )
    result = subprocess.run([sys.executable, "-c", blocker], capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    assert "--seed" in result.stdout


def test_plans_validate_sizes() -> None:
    with pytest.raises(InvalidInputError, match="even"):
        plan_videos(seed=0, videos=5, seconds=4.0, frame_size=(321, 240))
    demo = plan_videos(seed=0, videos=14, seconds=4.0)
    assert len(demo) == 14 and len({plan.name for plan in demo}) == 14
    partitions = {trial.subject: trial.partition for plan in demo for trial in plan.trials}
    for plan in demo:  # a subject never appears in both partitions
        assert all(partitions[trial.subject] == trial.partition for trial in plan.trials)


# ----------------------------------------------------------------------------------------------------- labels


def test_valence_and_arousal_are_smooth_bounded_and_uncorrelated() -> None:
    for seed in range(20):
        valence, arousal = valence_arousal(np.random.default_rng(seed), 600, 30.0)
        for curve in (valence, arousal):
            assert curve.min() >= -1.0 and curve.max() <= 1.0
            assert curve.max() - curve.min() > 0.5  # each trial sweeps a good part of the range
            assert np.abs(np.diff(curve)).max() < 0.06  # at most ~1.8 per second at 30 fps: smooth
        assert abs(np.corrcoef(valence, arousal)[0, 1]) < 1e-9


def test_label_file_writes_minus_five_per_column() -> None:
    labels = TrialLabels(
        valence=np.array([0.5, -0.25, 0.125, 1.0]),
        arousal=np.array([-0.5, 0.0, 0.75, -1.0]),
        decimals=3,
        unlabeled_rows=(1, 2, 3),
        half_unlabeled=((2, "valence"), (3, "arousal")),
    )
    assert label_file_text(labels) == "valence,arousal\n0.500,-0.500\n-5,-5\n-5,0.750\n1.000,-5\n"


# ------------------------------------------------------------------------------------------------------ voice


def _sounding_rms_db(signal: np.ndarray) -> float:
    """RMS in dB over the 20 ms blocks that are within 10 dB of the loudest (the sounding parts of syllables)."""
    blocks = signal[: len(signal) // 320 * 320].reshape(-1, 320).astype(np.float64)
    power = (blocks**2).mean(axis=1)
    loud = power > power.max() / 10.0
    return 10.0 * float(np.log10(power[loud].mean()))


def _pitch_hz(signal: np.ndarray) -> float:
    """Median F0 by the autocorrelation peak (60-500 Hz) over loud 40 ms blocks."""
    blocks = signal[: len(signal) // 640 * 640].reshape(-1, 640).astype(np.float64)
    power = (blocks**2).mean(axis=1)
    estimates = []
    for block in blocks[power > power.max() / 10.0]:
        autocorrelation = np.correlate(block, block, mode="full")[639:]
        lag = 32 + int(np.argmax(autocorrelation[32:267]))
        estimates.append(SAMPLE_RATE / lag)
    return float(np.median(estimates))


def test_voice_gets_louder_and_higher_with_arousal_by_the_stated_amounts() -> None:
    """Constant arousal -0.5 vs +0.5: level rises by LOUDNESS_DB[1] dB (12 dB, within 2 dB: syllable shapes and
    vowels differ) and pitch by 2^PITCH_OCTAVES (within 4 %), both measured independently from the waveform."""
    voice = Voice(f0_hz=180.0, formant_factor=1.0)
    samples = 6 * SAMPLE_RATE
    low = speak(np.random.default_rng(0), np.full(180, -0.5), 30.0, samples, voice)
    high = speak(np.random.default_rng(0), np.full(180, 0.5), 30.0, samples, voice)
    assert low.dtype == np.float32 and low.shape == (samples,)
    rise = _sounding_rms_db(high) - _sounding_rms_db(low)
    assert abs(rise - LOUDNESS_DB[1]) < 2.0, rise
    ratio = _pitch_hz(high) / _pitch_hz(low)
    assert abs(ratio / 2.0**PITCH_OCTAVES - 1.0) < 0.04, ratio
    # absolute pitch: the speaker's F0 scaled by 2^(0.55·a), raised by up to 6 % by the rise-fall inside syllables
    assert 1.0 <= _pitch_hz(low) / (180.0 * 2.0 ** (-0.5 * PITCH_OCTAVES)) <= 1.08
