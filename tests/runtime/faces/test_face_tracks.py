"""FaceTracks: every face with a stable id. Two people apart get the single-subject stage's crops; crossings and
absences are scored the CLEAR-MOT way against scripted ground truth; births, deaths, the face limit and memory."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
from face_scenes import background
from people_scenes import Actor, absent_in, drifting, linear, render, score_tracks

from edgeaff.runtime.errors import InvalidInputError
from edgeaff.runtime.faces import FaceStage, FaceStageOptions, FaceTracks, TrackOptions

APART = [Actor("collins", drifting((170, 170), 40)), Actor("hopper", drifting((470, 185), 38, phase=1.0))]

# Two people crossing: (actors, frames). Later actors are drawn over earlier ones, so each scene has one face in
# front and one behind; they differ in speed, height, size and which person is in front.
CROSSINGS = {
    "level": ([Actor("collins", linear((120, 180), (520, 180), 80, 40)),
               Actor("hopper", linear((520, 170), (120, 170), 80, 38))], 80),
    "level_other_in_front": ([Actor("hopper", linear((520, 170), (120, 170), 80, 38)),
                              Actor("collins", linear((120, 180), (520, 180), 80, 40))], 80),
    "slow": ([Actor("collins", linear((150, 180), (490, 190), 120, 40)),
              Actor("hopper", linear((490, 175), (150, 185), 120, 44))], 120),
    "diagonal": ([Actor("collins", linear((120, 150), (520, 200), 90, 40)),
                  Actor("hopper", linear((520, 210), (120, 160), 90, 38))], 90),
    "large_faces": ([Actor("collins", linear((140, 180), (500, 180), 70, 60)),
                     Actor("hopper", linear((500, 180), (140, 180), 70, 55))], 70),
}  # fmt: skip


def _run(
    detector: Path, actors: Sequence[Actor], frames: int, *, detect_every: int = 10, **options: object
) -> tuple[list[dict[int, tuple[float, float, float]]], list[dict[int, tuple[float, float]]], FaceTracks, list]:
    truth, found, results = [], [], []
    with FaceStage.dnn(detector, options=FaceStageOptions(detect_every=detect_every)) as stage:
        tracks = FaceTracks(stage, TrackOptions(**options))  # type: ignore[arg-type]
        for index in range(frames):
            frame, people = render(actors, index)
            result = tracks.process(frame, index / 25)
            truth.append(people)
            centres = {}
            for tracked in result.faces:
                box = tracked.face.box
                if tracked.face.found and box is not None:
                    centres[tracked.track] = ((box[0] + box[2]) / 2, (box[1] + box[3]) / 2)
            found.append(centres)
            results.append(result)
    return truth, found, tracks, results


def test_people_apart_get_the_single_subject_stages_crops(detector_onnx: Path) -> None:
    """Each track's crops are exactly the crops of a single-subject stage told to follow that person (left/right),
    so a track's predictions are the single-subject run's."""
    frames = [render(APART, i)[0] for i in range(45)]
    with FaceStage.dnn(detector_onnx, options=FaceStageOptions(detect_every=5)) as stage:
        tracks = FaceTracks(stage, TrackOptions(max_faces=4))
        multi = [tracks.process(frame, i / 25) for i, frame in enumerate(frames)]
    assert [r.started for r in multi[:1]] == [(0, 1)] and all(not r.started and not r.ended for r in multi[1:])
    side = {t.track: ("left" if t.face.box[0] < 320 else "right") for t in multi[0].faces}  # type: ignore[index]
    for select in ("left", "right"):
        with FaceStage.dnn(detector_onnx, options=FaceStageOptions(detect_every=5, select=select)) as stage:  # type: ignore[arg-type]
            single = [stage.process(frame, i / 25) for i, frame in enumerate(frames)]
        track = next(t for t, s in side.items() if s == select)
        for alone, result in zip(single, multi, strict=True):
            mine = next(t.face for t in result.faces if t.track == track)
            assert mine.found and alone.found and mine.detected == alone.detected
            np.testing.assert_array_equal(mine.crop, alone.crop)
            np.testing.assert_array_equal(mine.box, alone.box)  # type: ignore[arg-type]
    assert sum(t.face.detected for r in multi for t in r.faces) == 2 * 9  # every 5th frame, both faces


@pytest.mark.parametrize("scene", sorted(CROSSINGS))
def test_two_people_crossing_keep_their_ids(detector_onnx: Path, scene: str) -> None:
    """At most one identity switch per crossing (CLEAR-MOT); measured: none on any of these scenes."""
    actors, frames = CROSSINGS[scene]
    truth, found, tracks, _ = _run(detector_onnx, actors, frames)
    score = score_tracks(truth, found)
    print(f"{scene}: {score} MOTA {score.mota:.3f} IDF1 {score.idf1:.3f}")
    assert score.switches <= 1
    assert score.false_positives == 0  # a track's box is always on a real face
    assert tracks.started == 2  # both people kept their tracks: nobody was born again
    assert score.matches >= 0.85 * score.truths  # the face behind is missing only while it is covered


def test_a_face_that_leaves_and_returns(detector_onnx: Path) -> None:
    """Back within the time-out near where it left: the same track. Away longer: a new track (no re-identification
    after the time-out), the old one ended."""
    short = [Actor("collins", absent_in(drifting((180, 170), 40), range(30, 60))), APART[1]]  # 1.2 s away
    truth, found, tracks, results = _run(detector_onnx, short, 75, timeout_s=2.0)
    assert tracks.started == 2 and score_tracks(truth, found).switches == 0
    collins = next(t.track for t in results[0].faces if t.face.box[0] < 320)  # type: ignore[index]
    assert [i for i, r in enumerate(results) if any(not t.face.found for t in r.faces)] == list(range(30, 60))
    assert all(collins in (t.track for t in r.faces) for r in results)  # alive (lost) while away

    truth, found, tracks, results = _run(detector_onnx, short, 75, timeout_s=0.5)
    ended = [(i, r.ended) for i, r in enumerate(results) if r.ended]
    assert ended == [(42, (collins,))]  # frame 42 is the first more than 0.5 s after frame 29, where it was seen
    born = [(i, r.started) for i, r in enumerate(results) if r.started]
    assert born[0] == (0, (0, 1)) and born[1][1] == (2,) and 60 <= born[1][0] <= 60 + 10  # next whole-frame search
    assert score_tracks(truth, found).switches == 1  # counted: the returning person has a new id


def test_more_faces_than_allowed_keeps_the_largest(detector_onnx: Path) -> None:
    actors = [Actor("collins", drifting((150, 170), 34)), Actor("hopper", drifting((470, 180), 46, phase=1.0))]
    _, _, tracks, results = _run(detector_onnx, actors, 12, max_faces=1)
    assert [len(r.faces) for r in results] == [1] * 12
    assert all(t.face.box[0] > 320 for r in results for t in r.faces)  # type: ignore[index]  # hopper: the larger
    assert tracks.overflow == 1 and tracks.overflow_frame == 0 and tracks.started == 1


def test_no_face_no_track(detector_onnx: Path) -> None:
    with FaceStage.dnn(detector_onnx) as stage:
        tracks = FaceTracks(stage)
        results = [tracks.process(background(seed=9), i / 25) for i in range(5)]
    assert all(r.faces == () and r.visible == 0 for r in results)
    assert tracks.started == 0 and tracks.counts == {"detected": 0, "tracked": 0, "missing": 0}


def test_people_coming_and_going_hold_bounded_state(detector_onnx: Path) -> None:
    """Six people appear one after the other, each for 12 frames at another place: tracks end and free their
    slots, so at most two are alive at any time however long the stream runs."""

    def visitor(k: int) -> Actor:
        start = 14 * k
        name = "collins" if k % 2 else "hopper"
        path = drifting((120 + 200 * (k % 3), 180), 40, phase=k)
        return Actor(name, lambda i: path(i) if start <= i < start + 12 else None)

    actors = [visitor(k) for k in range(6)]
    _, _, tracks, results = _run(detector_onnx, actors, 6 * 14 + 8, detect_every=3, timeout_s=0.2)
    assert tracks.started == 6
    assert max(len(r.faces) for r in results) <= 2
    assert sum(len(r.ended) for r in results) == 6 - len(tracks.live)
    assert len(tracks._tracks) == len(tracks.live) <= 1


def test_reset_ends_every_track(detector_onnx: Path) -> None:
    with FaceStage.dnn(detector_onnx) as stage:
        tracks = FaceTracks(stage)
        first = tracks.process(render(APART, 0)[0], 0.0)
        tracks.reset()
        after = tracks.process(render(APART, 1)[0], 0.04)
    assert first.started == (0, 1)
    assert after.ended == (0, 1) and after.started == (2, 3)  # ids are never reused


def test_track_options_are_checked() -> None:
    with pytest.raises(InvalidInputError, match=r"max_faces must be 1\.\.32"):
        TrackOptions(max_faces=0)
    with pytest.raises(InvalidInputError, match="max_faces"):
        TrackOptions(max_faces=33)
    with pytest.raises(InvalidInputError, match="time-out"):
        TrackOptions(timeout_s=0)
    with pytest.raises(InvalidInputError, match="time-out"):
        TrackOptions(timeout_s=float("nan"))
    with pytest.raises(InvalidInputError, match="reid_distance"):
        TrackOptions(reid_distance=-1)


def test_the_tracking_score_counts_switches_and_idf1() -> None:
    """The scorer itself, on a hand-worked example: person 0 is followed by track 5, then by track 7 (one switch),
    person 1 by track 6 throughout, with one frame missed and one stray box."""
    truth = [{0: (100.0, 100.0, 40.0), 1: (300.0, 100.0, 40.0)}] * 4
    found = [
        {5: (101.0, 100.0), 6: (300.0, 99.0)},
        {5: (102.0, 101.0), 6: (301.0, 100.0)},
        {7: (100.0, 100.0), 6: (300.0, 100.0), 9: (500.0, 300.0)},  # the switch, and a box far from anybody
        {7: (99.0, 100.0)},  # person 1 missed
    ]
    score = score_tracks(truth, found)
    assert (score.truths, score.matches, score.misses, score.false_positives, score.switches) == (8, 7, 1, 1, 1)
    assert score.mota == pytest.approx(1 - 3 / 8)
    # IDTP: person 0 ~ track 5 (2 frames), person 1 ~ track 6 (3 frames): 2 * 5 / (8 truths + 8 boxes)
    assert score.idf1 == pytest.approx(10 / 16)
