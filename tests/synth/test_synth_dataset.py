"""``edgeaff synth``: the small preset has the Aff-Wild2 layout and irregularities, and its labels are learnable.

One small dataset is generated per module (about 10-25 s on 2 cores); every video is decoded once with PyAV.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest
from PIL import Image

from edgeaff.synth import MANIFEST, generate_dataset, subject_of_trial

SEED = 11
SAMPLE_STEP = 8  # keep every 8th decoded frame for the image checks
ARCFACE = np.array([[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366], [41.5493, 92.3655], [70.7299, 92.2041]])


@dataclass
class Probe:
    """What PyAV reads from one video file."""

    fps: float
    frames: int
    size: tuple[int, int]
    audio_rate: int
    audio_channels: int
    audio_seconds: float
    mono16k: np.ndarray
    sampled: dict[int, np.ndarray] = field(default_factory=dict)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    root = tmp_path_factory.mktemp("synth") / "affwild2"
    summary = generate_dataset(root, preset="small", seed=SEED)
    assert summary.root == root and summary.videos == 5 and summary.trials == 6
    manifest = json.loads((root / MANIFEST).read_text())
    return root, manifest


@pytest.fixture(scope="module")
def probes(dataset: tuple[Path, dict[str, Any]]) -> dict[str, Probe]:
    root, manifest = dataset
    result = {}
    for name, video in manifest["videos"].items():
        with av.open(str(root / video["path"])) as container:
            stream = container.streams.video[0]
            fps = float(stream.average_rate)
            size = (stream.codec_context.width, stream.codec_context.height)
            sampled, count = {}, 0
            for frame in container.decode(video=0):
                if count % SAMPLE_STEP == 0:
                    sampled[count] = frame.to_ndarray(format="rgb24")
                count += 1
        with av.open(str(root / video["path"])) as container:
            audio = container.streams.audio[0]
            rate, channels = audio.codec_context.sample_rate, audio.codec_context.channels
            native = sum(frame.samples for frame in container.decode(audio=0))
        with av.open(str(root / video["path"])) as container:
            resampler = av.AudioResampler(format="s16", layout="mono", rate=16000)
            chunks = [
                out.to_ndarray().ravel() for frame in container.decode(audio=0) for out in resampler.resample(frame)
            ]
            chunks += [out.to_ndarray().ravel() for out in resampler.resample(None)]
        mono = np.concatenate(chunks).astype(np.float64) / 32768.0
        result[name] = Probe(fps, count, size, rate, channels, native / rate, mono, sampled)
    return result


def _labelled_rows(trial: dict[str, Any]) -> list[int]:
    skip = set(trial["unlabeled_rows"]) | set(trial["missing_jpgs"])
    return [row for row in range(trial["label_rows"]) if row not in skip]


def _corr(a: Any, b: Any) -> float:
    return float(np.corrcoef(np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64))[0, 1])


# ---------------------------------------------------------------------------------------------------------- layout


def test_layout_is_the_affwild2_distribution(dataset: tuple[Path, dict[str, Any]]) -> None:
    root, manifest = dataset
    assert sorted(path.name for path in root.iterdir()) == sorted(
        ["annotations", "cropped_aligned", "raw_video", "batch1", "batch2", MANIFEST, "subjects.csv"]
    )
    assert sorted(path.name for path in (root / "annotations").iterdir()) == ["VA_Set"]
    train = sorted(path.stem for path in (root / "annotations/VA_Set/Train_Set").glob("*.txt"))
    validation = sorted(path.stem for path in (root / "annotations/VA_Set/Validation_Set").glob("*.txt"))
    assert train == ["duo02_a_left", "duo02_a_right", "subj01_a", "subj01_b"]
    assert validation == ["subj03_a", "subj04_a"]
    assert sorted(path.name for path in (root / "cropped_aligned").iterdir()) == sorted(train + validation)
    videos = sorted(str(path.relative_to(root)) for path in root.rglob("*") if path.suffix in (".mp4", ".avi"))
    assert videos == [
        "batch1/subj01_b.mp4",
        "batch2/duo02_a.mp4",
        "raw_video/subj01_a.mp4",
        "raw_video/subj03_a.avi",
        "raw_video/subj04_a.mp4",
    ]
    assert sorted(manifest["trials"]) == sorted(train + validation)
    for name, trial in manifest["trials"].items():
        folder = "Train_Set" if name in train else "Validation_Set"
        assert trial["partition"] == folder


def test_label_files_have_the_header_rows_and_minus_five_rows_the_manifest_says(
    dataset: tuple[Path, dict[str, Any]],
) -> None:
    root, manifest = dataset
    patterns = {}
    for name, trial in manifest["trials"].items():
        lines = (root / "annotations/VA_Set" / trial["partition"] / f"{name}.txt").read_text().splitlines()
        assert lines[0] == "valence,arousal"
        rows = [line.split(",") for line in lines[1:]]
        assert len(rows) == trial["label_rows"]
        half = {row: column for row, column in trial["half_unlabeled_rows"]}
        for index, (valence_text, arousal_text) in enumerate(rows):
            for column, text in (("valence", valence_text), ("arousal", arousal_text)):
                if text == "-5":
                    assert index in trial["unlabeled_rows"] and half.get(index, column) == column
                    continue
                assert index not in trial["unlabeled_rows"] or (index in half and half[index] != column)
                decimals = len(text.split(".")[1])
                assert 3 <= decimals <= 6 and decimals == trial["decimals"]
                value = float(text)
                assert -1.0 <= value <= 1.0
                assert value == trial[column][index]  # synth.json holds exactly the written clean values
        patterns[name] = (trial["unlabeled_rows"], trial["half_unlabeled_rows"])
    # a middle run and scattered rows, one with only valence and one with only arousal at -5
    run = patterns["subj01_b"][0]
    assert len(run) >= 10 and run == list(range(run[0], run[0] + len(run)))
    assert run[0] >= 60 and run[-1] < 180
    scattered, half = patterns["subj01_a"]
    assert 3 <= len(scattered) <= 5 and sorted(column for _, column in half) == ["arousal", "valence"]
    assert all(patterns[name][0] == [] for name in ("duo02_a_left", "duo02_a_right", "subj03_a"))


def test_every_labelled_frame_has_its_jpg_except_the_one_missing(dataset: tuple[Path, dict[str, Any]]) -> None:
    root, manifest = dataset
    missing = {name: trial["missing_jpgs"] for name, trial in manifest["trials"].items() if trial["missing_jpgs"]}
    assert list(missing) == ["duo02_a_left"] and len(missing["duo02_a_left"]) == 1
    row = missing["duo02_a_left"][0]
    assert row not in manifest["trials"]["duo02_a_left"]["unlabeled_rows"]
    assert not (root / f"cropped_aligned/duo02_a_left/{row + 1:05d}.jpg").exists()
    for name, trial in manifest["trials"].items():
        expected = {f"{index + 1:05d}.jpg" for index in range(trial["label_rows"])} - {
            f"{index + 1:05d}.jpg" for index in trial["missing_jpgs"]
        }
        assert {path.name for path in (root / "cropped_aligned" / name).iterdir()} == expected
        with Image.open(root / "cropped_aligned" / name / "00001.jpg") as image:
            assert image.size == (112, 112) and image.mode == "RGB" and image.format == "JPEG"


def test_videos_probe_as_planned_with_audio_of_the_same_duration(
    dataset: tuple[Path, dict[str, Any]], probes: dict[str, Probe]
) -> None:
    _, manifest = dataset
    for name, video in manifest["videos"].items():
        probe = probes[name]
        assert probe.fps == video["fps"] == (25 if name == "subj01_b" else 30)
        assert probe.frames == video["frames"]
        assert probe.size == tuple(video["size"])
        assert (probe.audio_rate, probe.audio_channels) == (video["audio"]["sample_rate"], video["audio"]["channels"])
        duration = probe.frames / probe.fps
        assert abs(probe.audio_seconds - duration) < 0.03, (name, probe.audio_seconds, duration)
        assert abs(len(probe.mono16k) / 16000 - duration) < 0.03
        assert np.sqrt(np.mean(probe.mono16k**2)) > 0.01  # the voice is there, not just the noise floor
    # label rows = video frames, except subj03_a whose video has one frame more (Aff-Wild2 quirk)
    for name, trial in manifest["trials"].items():
        frames = probes[trial["video"]].frames
        assert trial["label_rows"] == (frames - 1 if name == "subj03_a" else frames)
    assert {video["audio"]["sample_rate"] for video in manifest["videos"].values()} == {16000, 44100, 48000}


def test_two_subject_video_has_left_and_right_trials_sharing_it(
    dataset: tuple[Path, dict[str, Any]], probes: dict[str, Probe]
) -> None:
    _, manifest = dataset
    left, right = manifest["trials"]["duo02_a_left"], manifest["trials"]["duo02_a_right"]
    assert left["video"] == right["video"] == "duo02_a"
    assert manifest["videos"]["duo02_a"]["trials"] == ["duo02_a_left", "duo02_a_right"]
    assert (left["subject"], right["subject"]) == ("duo02_left", "duo02_right")
    width = probes["duo02_a"].size[0]
    left_x = np.array(left["landmarks"])[:, 0::2]
    right_x = np.array(right["landmarks"])[:, 0::2]
    assert left_x.max() < width / 2 < right_x.min()
    assert left["valence"] != right["valence"]


def test_subject_rule_groups_takes_and_keeps_sides_apart(dataset: tuple[Path, dict[str, Any]]) -> None:
    _, manifest = dataset
    assert subject_of_trial("subj07_a") == subject_of_trial("subj07_b") == "subj07"
    assert subject_of_trial("duo03_a_left") == "duo03_left" != subject_of_trial("duo03_a_right")
    assert subject_of_trial("12-24-1920x1080") == "12-24-1920x1080"
    assert subject_of_trial("video59_right") == "video59_right"
    assert subject_of_trial("video10_1") == "video10_1"
    for name, trial in manifest["trials"].items():
        assert trial["subject"] == subject_of_trial(name)
    assert manifest["trials"]["subj01_a"]["subject"] == manifest["trials"]["subj01_b"]["subject"]
    # the same subject is the same person: same photograph and mirroring in both takes
    assert manifest["trials"]["subj01_a"]["identity"] == manifest["trials"]["subj01_b"]["identity"]
    # subjects.csv is the map `edgeaff prepare --subjects` reads
    root, _ = dataset
    from edgeaff.train.affwild2 import load_subject_map

    assert load_subject_map(root / "subjects.csv") == {name: t["subject"] for name, t in manifest["trials"].items()}


# ------------------------------------------------------------------------------------------------ faces and crops


def _similarity_lstsq(points: np.ndarray, template: np.ndarray) -> np.ndarray:
    """Least-squares similarity by a linear solve of x' = a x - b y + tx, y' = b x + a y + ty (independent of the
    SVD-based fit the generator uses)."""
    rows = []
    rhs = []
    for (x, y), (u, v) in zip(points, template, strict=True):
        rows += [[x, -y, 1.0, 0.0], [y, x, 0.0, 1.0]]
        rhs += [u, v]
    a, b, tx, ty = np.linalg.lstsq(np.array(rows), np.array(rhs), rcond=None)[0]
    return np.array([[a, -b, tx], [b, a, ty]])


def test_aligned_jpgs_are_the_template_crop_of_the_face_in_the_video(
    dataset: tuple[Path, dict[str, Any]], probes: dict[str, Probe]
) -> None:
    """Re-crop decoded video frames with OpenCV at the manifest's landmarks: the jpgs match (both are lossy, so
    the tolerance is a mean absolute difference of 6 grey levels), and a crop shifted by 3 px does not."""
    cv2 = pytest.importorskip("cv2")
    root, manifest = dataset
    errors, shifted_errors = [], []
    for name, trial in manifest["trials"].items():
        for index, frame in probes[trial["video"]].sampled.items():
            if index >= trial["label_rows"] or index in trial["missing_jpgs"]:
                continue
            points = np.array(trial["landmarks"][index]).reshape(5, 2)
            matrix = _similarity_lstsq(points, ARCFACE)
            crop = cv2.warpAffine(frame, matrix, (112, 112), flags=cv2.INTER_LINEAR)
            shifted = cv2.warpAffine(frame, matrix + np.array([[0, 0, 3.0], [0, 0, 0]]), (112, 112))
            with Image.open(root / "cropped_aligned" / name / f"{index + 1:05d}.jpg") as image:
                jpg = np.asarray(image.convert("RGB"), dtype=np.float64)
            errors.append(np.abs(jpg - crop).mean())
            shifted_errors.append(np.abs(jpg - shifted).mean())
    assert len(errors) > 100
    assert float(np.mean(errors)) < 6.0, np.mean(errors)
    assert float(np.mean(shifted_errors)) > 1.5 * float(np.mean(errors))


def test_faces_in_the_videos_are_found_by_a_real_face_detector(
    dataset: tuple[Path, dict[str, Any]], probes: dict[str, Probe]
) -> None:
    """OpenCV's Haar frontal-face cascade (a detector trained on real photographs) finds every face: a detection
    box contains all five landmarks in at least 95 % of the sampled frames."""
    cv2 = pytest.importorskip("cv2")
    if not hasattr(cv2, "CascadeClassifier") or not cv2.data.haarcascades:
        pytest.skip("this OpenCV build ships no Haar cascades")
    cascade = cv2.CascadeClassifier(cv2.data.haarcascades + "haarcascade_frontalface_default.xml")
    _, manifest = dataset
    found = total = 0
    for name, trial in manifest["trials"].items():
        for index, frame in probes[trial["video"]].sampled.items():
            if index >= trial["label_rows"] or index % (3 * SAMPLE_STEP):
                continue
            gray = cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)
            boxes = cascade.detectMultiScale(gray, scaleFactor=1.1, minNeighbors=5, minSize=(48, 48))
            points = np.array(trial["landmarks"][index]).reshape(5, 2)
            found += any(
                x <= points[:, 0].min()
                and points[:, 0].max() <= x + w
                and y <= points[:, 1].min() <= points[:, 1].max() <= y + h
                for x, y, w, h in boxes
            )
            total += 1
        assert total, name
    assert found >= 0.95 * total, (found, total)


def _mouth_corner_height(gray: np.ndarray) -> float:
    """Minus the mean row of the darkest line near each template mouth corner (higher corners -> larger value)."""
    rows = [84 + int(np.argmin(gray[84:100, x - 3 : x + 4].mean(axis=1))) for x in (42, 70)]
    return -float(np.mean(rows))


def _gray(root: Path, trial: str, row: int) -> np.ndarray:
    with Image.open(root / "cropped_aligned" / trial / f"{row + 1:05d}.jpg") as image:
        return np.asarray(image.convert("L"), dtype=np.float64)


def test_valence_is_visible_in_the_mouth_and_arousal_is_not(dataset: tuple[Path, dict[str, Any]]) -> None:
    """Mouth-corner height follows valence in every trial (measured on this seed: r = 0.94-0.97 per trial).

    Arousal barely shows: pooled over trials (each statistic centred per trial), mouth-corner height and crop
    brightness correlate with arousal at r = -0.05 and -0.06 on this seed. Per-trial correlations of two smooth
    curves over 8 s swing widely by chance, hence the pooling.
    """
    root, manifest = dataset
    pooled: dict[str, list[float]] = {"height": [], "brightness": [], "arousal": []}
    for name, trial in manifest["trials"].items():
        rows = _labelled_rows(trial)
        grays = [_gray(root, name, row) for row in rows]
        heights = np.array([_mouth_corner_height(gray) for gray in grays])
        brightness = np.array([gray.mean() for gray in grays])
        assert _corr(heights, np.array(trial["valence"])[rows]) > 0.85, name
        pooled["height"] += list(heights - heights.mean())
        pooled["brightness"] += list(brightness - brightness.mean())
        pooled["arousal"] += list(np.array(trial["arousal"])[rows])
    assert abs(_corr(pooled["height"], pooled["arousal"])) < 0.3
    assert abs(_corr(pooled["brightness"], pooled["arousal"])) < 0.3


def _loudness_and_pitch(signal: np.ndarray, frames: int, fps: float) -> tuple[np.ndarray, np.ndarray]:
    """Per video frame: log energy (dB) and median log2 pitch (autocorrelation, 80-400 Hz) over 1 s around it."""
    length, hop = 400, 160
    count = (len(signal) - length) // hop + 1
    windows = np.lib.stride_tricks.sliding_window_view(signal, length)[::hop][:count]
    energy = (windows**2).mean(axis=1)
    spectrum = np.fft.rfft(windows * np.hanning(length), 1024)
    autocorrelation = np.fft.irfft(np.abs(spectrum) ** 2)[:, :length]
    lags = 40 + np.argmax(autocorrelation[:, 40:200], axis=1)
    voiced = (autocorrelation[np.arange(count), lags] > 0.5 * autocorrelation[:, 0]) & (
        energy > np.percentile(energy, 40)
    )
    log_pitch = np.log2(16000.0 / lags)
    times = np.arange(count) * 0.01
    loudness, pitch = np.zeros(frames), np.full(frames, np.nan)
    for index in range(frames):
        near = np.abs(times - index / fps) <= 0.5
        loudness[index] = 10.0 * np.log10(energy[near].mean() + 1e-12)
        if (near & voiced).sum() > 3:
            pitch[index] = np.median(log_pitch[near & voiced])
    return loudness, pitch


def test_arousal_is_audible_in_loudness_and_pitch(
    dataset: tuple[Path, dict[str, Any]], probes: dict[str, Probe]
) -> None:
    """Measured on this seed, one-person videos: loudness vs arousal r = 0.83-0.99, pitch vs arousal r = 0.99,
    loudness vs valence |r| <= 0.16 (the two-person video mixes both voices and is left out: 0.68/0.77)."""
    _, manifest = dataset
    for name, trial in manifest["trials"].items():
        if trial["side"] is not None:
            continue
        probe = probes[trial["video"]]
        loudness, pitch = _loudness_and_pitch(probe.mono16k, probe.frames, probe.fps)
        rows = [row for row in range(trial["label_rows"]) if row not in trial["unlabeled_rows"]]
        arousal = np.array(trial["arousal"])[rows]
        valence = np.array(trial["valence"])[rows]
        voiced = ~np.isnan(pitch[rows])
        assert voiced.mean() > 0.9, name
        assert _corr(loudness[rows], arousal) > 0.7, name
        assert _corr(pitch[rows][voiced], arousal[voiced]) > 0.85, name
        assert abs(_corr(loudness[rows], valence)) < 0.45, name
