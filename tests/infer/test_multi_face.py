"""Every person in the picture (--faces all): each track's predictions are the single-subject run's for that person
(offline and stream), crossings keep their ids through the whole pipeline, the result files have a track column
and one ABAW file per track, frames without anybody, bounded state, and the options' checks."""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

import av
import numpy as np
import pytest
from infer_support import TinyBundle, read_csv, run_without_torch
from media_fixtures import speech, write_media
from people_scenes import Actor, drifting, linear, render, score_tracks

from edgeaff.runtime import Faces, InvalidInputError, Pipeline, PipelineOptions, Prediction

pytestmark = pytest.mark.slow  # needs the exported tiny bundle

FPS = 25
TOLERANCE = 1e-5
PAIR = [Actor("collins", drifting((170, 170), 40)), Actor("hopper", drifting((470, 185), 38, phase=1.0))]
PAIR_FRAMES = 60
LATE = 8  # the people of the "late" video appear at this frame
CROSSING = [Actor("collins", linear((120, 180), (520, 180), 70, 40)),
            Actor("hopper", linear((520, 170), (120, 170), 70, 38))]  # fmt: skip


@pytest.fixture(scope="module")
def pair_video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two people apart (left: Collins, right: Hopper), with the speech fixture as sound."""
    path = tmp_path_factory.mktemp("people") / "pair.mp4"
    return write_media(path, lambda i: render(PAIR, i)[0], count=PAIR_FRAMES, rate=FPS, audio=speech()[: 16000 * 3])


@pytest.fixture(scope="module")
def late_video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Nobody for the first frames, then the two people."""
    path = tmp_path_factory.mktemp("people") / "late.mp4"
    actors = [Actor(a.name, lambda i, p=a.path: p(i) if i >= LATE else None) for a in PAIR]
    return write_media(path, lambda i: render(actors, i)[0], count=30, rate=FPS, audio=speech()[: 16000 * 2])


def _by_track(predictions: list[Prediction]) -> dict[int, list[Prediction]]:
    tracks: dict[int, list[Prediction]] = defaultdict(list)
    for p in predictions:
        assert p.track is not None and p.subject
        tracks[p.track].append(p)
    return dict(tracks)


@pytest.mark.parametrize("mode", ["offline", "stream"])
def test_each_track_is_the_single_subject_run_of_that_person(
    tiny_bundle: TinyBundle, pair_video: Path, mode: str
) -> None:
    with Pipeline(tiny_bundle.path, mode=mode, faces="all", per_model=True) as pipeline:
        predictions = list(pipeline.run(pair_video))
    # one prediction per frame and track, in frame order then track order
    assert [(p.frame, p.track) for p in predictions] == [(f, t) for f in range(PAIR_FRAMES) for t in (0, 1)]
    tracks = _by_track(predictions)
    for select in ("left", "right"):
        with Pipeline(tiny_bundle.path, mode=mode, face_select=select, per_model=True) as pipeline:
            alone = list(pipeline.run(pair_video))
        assert all(p.track is None for p in alone)
        centre = np.mean([(p.box[0] + p.box[2]) / 2 for p in alone if p.box is not None])  # type: ignore[index]
        track = next(t for t, rows in tracks.items() if abs(rows[0].box[0] - alone[0].box[0]) < 1)  # type: ignore[index]
        assert (centre < 320) == (select == "left")
        mine = tracks[track]
        assert [p.frame for p in mine] == [p.frame for p in alone]
        assert [(p.face, p.audio, p.box) for p in mine] == [(p.face, p.audio, p.box) for p in alone]
        got = np.array([[p.valence, p.arousal] for p in mine], dtype=float)
        want = np.array([[p.valence, p.arousal] for p in alone], dtype=float)
        assert np.abs(got - want).max() <= TOLERANCE
        raw = np.stack([p.models for p in mine])  # type: ignore[misc]
        assert np.abs(raw - np.stack([p.models for p in alone])).max() <= TOLERANCE  # type: ignore[misc]
    # the two people do get different values: the comparison is not trivially true
    assert np.abs(np.array([p.valence for p in tracks[0]]) - np.array([p.valence for p in tracks[1]])).max() > 1e-3


def test_the_cli_writes_a_track_column_one_abaw_file_per_track_and_the_tracks(
    tiny_bundle: TinyBundle, late_video: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    args = ["infer", str(late_video), "--bundle", str(tiny_bundle.path), "-o", str(out), "--faces", "all"]
    result = run_without_torch([*args, "--overlay", "--plot", "--per-model"])
    assert result.returncode == 0, result.stderr
    header, rows = read_csv(out / "late.csv")
    assert header == ["frame", "time_s", "track", "valence", "arousal", "face", "audio"]
    frames = 30
    pairs = [(int(r[0]), int(r[2])) for r in rows]
    assert pairs == sorted(pairs) and {t for _, t in pairs} == {0, 1}  # sorted by frame, then track
    # no row for the frames without anybody; each track from its first frame to the end, one row per frame (a
    # face is picked up at the first whole-frame detection that sees it: within --detect-every frames)
    first = {t: min(f for f, u in pairs if u == t) for t in (0, 1)}
    assert min(first.values()) == LATE and max(first.values()) <= LATE + 10
    assert sorted(pairs) == sorted((f, t) for t in (0, 1) for f in range(first[t], frames))
    models_header, model_rows = read_csv(out / "late.models.csv")
    assert models_header[:3] == ["frame", "time_s", "track"] and len(model_rows) == len(rows)
    summary = json.loads((out / "late.json").read_text())
    tracks = summary["tracks"]
    assert tracks["started"] == 2 and tracks["frames_without_tracks"] == LATE
    assert [(t["track"], t["first_frame"], t["last_frame"], t["frames"], t["frames_with_face"])
            for t in tracks["listed"]] == [(t, first[t], frames - 1, frames - first[t], frames - first[t])
                                           for t in (0, 1)]  # fmt: skip
    assert summary["frames_with_face"] == frames - LATE and summary["face_detector"]["faces"] == "all"
    for track in (0, 1):
        lines = (out / f"late.track{track}.txt").read_text().splitlines()
        assert lines[0] == "valence,arousal" and len(lines) == 1 + frames  # one row per frame of the video
        assert lines[1 : 1 + first[track]] == ["-5.000000,-5.000000"] * first[track]  # the track does not exist
        mine = rows[rows[:, 2] == track]
        assert lines[1 + first[track] :] == [f"{v:.6f},{a:.6f}" for v, a in mine[:, 3:5]]
    assert not (out / "late.txt").exists()
    with av.open(str(out / "late.overlay.mp4")) as container:
        assert sum(1 for _ in container.decode(video=0)) == frames  # every frame, with or without anybody
    assert (out / "late.png").stat().st_size > 0


def test_frames_without_anybody_come_as_predictions_without_values(tiny_bundle: TinyBundle, late_video: Path) -> None:
    with Pipeline(tiny_bundle.path, mode="stream", faces="all") as pipeline:
        run = pipeline.run(late_video)
        predictions = list(run)
        report = run.report()
    empty = [p for p in predictions if not p.subject]
    assert [p.frame for p in empty] == list(range(LATE))
    assert all(p.track is None and p.valence is None and p.arousal is None and not p.face for p in empty)
    assert all(p.latency_ms is not None for p in empty)
    assert report["tracks"]["frames_with_tracks"] == 30 - LATE
    assert run.processor.series == {}  # every track's state was given back at the end


def test_crossing_people_keep_their_ids_through_the_pipeline(tiny_bundle: TinyBundle, tmp_path: Path) -> None:
    frames = 70
    video = write_media(tmp_path / "crossing.mp4", lambda i: render(CROSSING, i)[0], count=frames, rate=FPS)
    with Pipeline(tiny_bundle.path, mode="stream", faces="all") as pipeline:
        predictions = list(pipeline.run(video))
    truth = [render(CROSSING, i)[1] for i in range(frames)]
    found: list[dict[int, tuple[float, float]]] = [{} for _ in range(frames)]
    for p in predictions:
        if p.subject and p.face and p.box is not None and p.track is not None:
            found[p.frame][p.track] = ((p.box[0] + p.box[2]) / 2, (p.box[1] + p.box[3]) / 2)
    score = score_tracks(truth, found)
    print(f"crossing through the pipeline: {score} MOTA {score.mota:.3f}")
    assert score.switches <= 1 and score.false_positives == 0
    assert {p.track for p in predictions} == {0, 1}
    lost = [p for p in predictions if p.subject and not p.face]
    assert lost and all(p.box is None for p in lost)  # the face behind: black crop while it is covered


def test_options_are_checked(tiny_bundle: TinyBundle, tmp_path: Path) -> None:
    assert PipelineOptions(max_faces=3).faces is Faces.ALL
    assert PipelineOptions(faces="ALL").track_options().max_faces == 32  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError, match=r"--max-faces must be 1\.\.32"):
        PipelineOptions(max_faces=0)
    with pytest.raises(InvalidInputError, match="face count"):
        PipelineOptions(faces="some")  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError, match="time-out"):
        PipelineOptions(faces="all", track_timeout_s=0)  # type: ignore[arg-type]
    base = ["infer", "x.mp4", "--bundle", str(tiny_bundle.path), "-o", str(tmp_path)]
    for extra, message in (
        (["--faces", "one", "--max-faces", "2"], "cannot go with --faces one"),
        (["--track-timeout", "3"], "--track-timeout applies to --faces all"),
        (["--max-faces", "40"], "--max-faces must be 1..32"),
    ):
        result = run_without_torch([*base, *extra])
        assert result.returncode == 2 and message in result.stderr and "Traceback" not in result.stderr
    folder = tmp_path / "faces"
    folder.mkdir()
    from PIL import Image

    Image.fromarray(np.zeros((48, 48, 3), np.uint8)).save(folder / "00001.jpg")
    with Pipeline(tiny_bundle.path, faces="all") as pipeline, pytest.raises(InvalidInputError, match="aligned faces"):
        list(pipeline.run(folder, fps=25.0))


def test_bench_times_every_face_and_counts_them(tiny_bundle: TinyBundle, pair_video: Path, tmp_path: Path) -> None:
    documents = {}
    for name, extra in (("one", []), ("all", ["--faces", "all"]), ("max1", ["--max-faces", "1"])):
        out = tmp_path / f"{name}.json"
        args = ["bench", "--bundle", str(tiny_bundle.path), "--source", str(pair_video), "--iterations", "1"]
        result = run_without_torch([*args, "--no-compare", "--no-peak", "--threads", "1", *extra, "--json", str(out)])
        assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr
        documents[name] = json.loads(out.read_text())
        assert documents[name]["end_to_end"]["frames"] == PAIR_FRAMES
    settings = {name: d["stamp"]["settings"] for name, d in documents.items()}
    assert (settings["one"]["faces"], settings["one"]["max_faces"]) == ("one", None)
    assert (settings["all"]["faces"], settings["max1"]["faces"], settings["max1"]["max_faces"]) == ("all", "all", 1)
    per_frame = {name: d["end_to_end"]["faces_per_frame"] for name, d in documents.items()}
    assert per_frame["one"] == 1.0 and per_frame["max1"] == 1.0
    assert 1.9 <= per_frame["all"] <= 2.0  # both people, each a track from (nearly) the first frame
    result = run_without_torch(["bench", "--bundle", str(tiny_bundle.path), "--source", str(pair_video),
                                "--max-faces", "99"])  # fmt: skip
    assert result.returncode == 2 and "--max-faces must be 1..32" in result.stderr
