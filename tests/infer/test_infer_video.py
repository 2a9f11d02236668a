"""``edgeaff infer`` end to end on videos it has not seen, in a process where torch cannot be imported."""

from __future__ import annotations

import json
from pathlib import Path

import av
import numpy as np
import pytest
from infer_support import FACE_VIDEO_FRAMES, HIDDEN, TinyBundle, read_csv, run_without_torch
from media_fixtures import face_frames, speech, write_media
from PIL import Image

from edgeaff.runtime.pipeline.ensemble import ccc_centering

pytestmark = pytest.mark.slow  # end to end through the pipeline on the tiny bundle

# Rows are written with 6 decimals (results) and 9 significant digits (raw per-model values).
CSV_TOLERANCE = 2e-6


@pytest.fixture(scope="module")
def offline_run(tiny_bundle: TinyBundle, face_video: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("offline")
    args = ["infer", str(face_video), "--bundle", str(tiny_bundle.path), "-o", str(out), "--per-model"]
    result = run_without_torch([*args, "--plot", "--overlay"])
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    return out


def _decoded_times(path: Path) -> list[float]:
    with av.open(str(path)) as container:
        return [float(frame.time) for frame in container.decode(video=0)]


def test_one_row_per_decoded_frame_with_the_containers_times(offline_run: Path, face_video: Path) -> None:
    header, rows = read_csv(offline_run / "astronaut.csv")
    assert header == ["frame", "time_s", "valence", "arousal", "face", "audio"]
    times = _decoded_times(face_video)
    assert len(rows) == len(times) == FACE_VIDEO_FRAMES
    assert rows[:, 0].tolist() == list(range(FACE_VIDEO_FRAMES))
    np.testing.assert_allclose(rows[:, 1], times, atol=1e-6)
    assert np.abs(rows[:, 2:4]).max() <= 1.0 and np.isfinite(rows[:, 2:4]).all()
    assert (rows[:, 5] == 1).all()  # the speech is there for every frame


def test_face_flag_follows_the_face(offline_run: Path) -> None:
    """Face = 1 exactly where the photo is in the picture. The tracker drops a face that vanishes on the frame it
    vanishes (the region no longer matches), so no slack at the two transitions is needed; none is allowed."""
    _, rows = read_csv(offline_run / "astronaut.csv")
    visible = np.array([i not in HIDDEN for i in range(FACE_VIDEO_FRAMES)])
    np.testing.assert_array_equal(rows[:, 4].astype(bool), visible)


def test_results_are_the_ensemble_of_the_per_model_outputs(offline_run: Path) -> None:
    _, rows = read_csv(offline_run / "astronaut.csv")
    header, models = read_csv(offline_run / "astronaut.models.csv")
    names = ["fold0_valence_multimodal", "fold1_valence_multimodal", "fold0_arousal_unimodal"]
    assert header == ["frame", "time_s", *names]
    valence = ccc_centering(models[:, 2:4].T, clip="late")  # two folds, merged by CCC-centering
    np.testing.assert_allclose(rows[:, 2], valence, atol=CSV_TOLERANCE)
    np.testing.assert_allclose(rows[:, 3], np.clip(models[:, 4], -1, 1), atol=CSV_TOLERANCE)
    submission = (offline_run / "astronaut.txt").read_text().splitlines()
    assert submission[0] == "valence,arousal" and len(submission) == FACE_VIDEO_FRAMES + 1
    np.testing.assert_allclose(np.loadtxt(submission[1:], delimiter=","), rows[:, 2:4], atol=0)


def test_summary_describes_the_run(offline_run: Path, tiny_bundle: TinyBundle) -> None:
    summary = json.loads((offline_run / "astronaut.json").read_text())
    assert summary["frames"] == FACE_VIDEO_FRAMES and summary["ended"] == "end_of_stream"
    assert summary["frames_with_face"] == FACE_VIDEO_FRAMES - len(HIDDEN)
    assert summary["frames_without_face"] == len(HIDDEN) and summary["frames_with_audio"] == FACE_VIDEO_FRAMES
    assert summary["source"]["fps"] == 25.0 and summary["duration_s"] == pytest.approx(5.48)
    assert summary["mode"] == "offline" and summary["backend"] == "ort-cpu" and summary["precision"] == "fp32"
    valence = summary["dimensions"]["valence"]
    assert valence["folds"] == [0, 1] and valence["kind"] == "multimodal"
    assert summary["dimensions"]["arousal"]["kind"] == "unimodal"
    assert {g["role"] for g in summary["graphs"]} == {"visual", "vggish", "temporal", "face_detector"}
    assert "frame index at 25 fps" in summary["audio_alignment"]
    for stage in ("read", "face", "visual", "vggish", "temporal", "ensemble"):
        assert set(summary["timing_ms"][stage]) >= {"calls", "mean_ms", "p50_ms", "p90_ms", "p99_ms"}
    assert summary["timing_ms"]["visual"]["frames"] == FACE_VIDEO_FRAMES
    assert summary["versions"]["edgeaff"] and "torch" not in summary["versions"]
    assert summary["buffers"]["max_pending_frames"] <= 64


def test_plot_and_overlay(offline_run: Path, face_video: Path) -> None:
    with Image.open(offline_run / "astronaut.png") as image:
        assert image.size == (1200, 420)
    overlay_times = _decoded_times(offline_run / "astronaut.overlay.mp4")
    np.testing.assert_allclose(overlay_times, _decoded_times(face_video), atol=1e-3)


def test_video_without_audio_uses_the_fallback_and_says_so_once(tiny_bundle: TinyBundle, tmp_path: Path) -> None:
    silent = write_media(tmp_path / "silent.mp4", face_frames(lambda i: True), count=40, rate=25)
    args = ["infer", str(silent), "--bundle", str(tiny_bundle.path), "-o", str(tmp_path / "o")]
    result = run_without_torch([*args, "--mode", "stream", "--live"])
    assert result.returncode == 0, result.stderr
    notes = [line for line in result.stderr.splitlines() if "no audio" in line]
    assert len(notes) == 1 and "zero audio" in notes[0]
    header, rows = read_csv(tmp_path / "o" / "silent.csv")
    assert len(rows) == 40 and (rows[:, 5] == 0).all() and (rows[:, 4] == 1).all()
    assert header[-1] == "latency_ms" and (rows[:, 6] > 0).all()
    # --live: one line per prediction on stdout, as it is made
    printed = result.stdout.strip().splitlines()
    assert len(printed) == 40 and printed[0].split()[0] == "0" and "valence" in printed[0] and "ms" in printed[-1]
    summary = json.loads((tmp_path / "o" / "silent.json").read_text())
    assert summary["dimensions"]["valence"]["zero_audio"] and not summary["source"]["audio"]
    assert "vggish" not in {g["role"] for g in summary["graphs"]}


def test_video_without_any_face_is_written_flagged_with_a_warning(tiny_bundle: TinyBundle, tmp_path: Path) -> None:
    empty = write_media(tmp_path / "empty.mp4", face_frames(lambda i: False), count=30, rate=25, audio=speech()[:24000])
    result = run_without_torch(["infer", str(empty), "--bundle", str(tiny_bundle.path), "-o", str(tmp_path / "o")])
    assert result.returncode == 0, result.stderr
    assert "warning: no face was found in any of the 30 frames" in result.stderr
    _, rows = read_csv(tmp_path / "o" / "empty.csv")
    assert len(rows) == 30 and (rows[:, 4] == 0).all()
    assert json.loads((tmp_path / "o" / "empty.json").read_text())["warnings"]
