"""Sinks: the result files a run writes from its predictions, atomically, the summary last (no bundle needed)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from process_tools import wait_for

from edgeaff.runtime import Mode, Prediction, SourceInfo, SourceKind
from edgeaff.runtime.files import atomic_output, stale_temporary
from edgeaff.runtime.sinks import CsvSink, LiveSink, ModelsCsvSink, Outputs, ResultSet, RunContext, SubmissionSink
from edgeaff.runtime.sinks.results import remove_stale_temporaries


def _context(dimensions: tuple[str, ...], mode: Mode = Mode.OFFLINE) -> RunContext:
    info = SourceInfo(SourceKind.FILE, "clip.mp4", "clip", False, True, None, 30.0, 2)
    return RunContext(info, mode, dimensions, ("fold0_valence_multimodal", "fold0_arousal_multimodal"))


def _prediction(frame: int, valence: float | None, arousal: float | None, **extra: object) -> Prediction:
    return Prediction(frame, frame / 25, valence, arousal, bool(frame % 2), None, True, **extra)  # type: ignore[arg-type]


def _write_all(out: Path, context: RunContext, predictions: list[Prediction], *, fail: bool = False) -> None:
    with ResultSet(out, "clip") as files:
        sinks = [files.enter(CsvSink(files.target("csv", "clip.csv"), context))]
        if SubmissionSink.applies(context):
            sinks.append(files.enter(SubmissionSink(files.target("txt", "clip.txt"), context)))
        sinks.append(files.enter(ModelsCsvSink(files.target("models", "clip.models.csv"), context)))
        for prediction in predictions:
            for sink in sinks:
                sink.write(prediction)
        if fail:
            raise RuntimeError("boom")
        files.summary = {"frames": len(predictions)}


def test_result_files_appear_only_on_success_and_the_summary_last(tmp_path: Path) -> None:
    context = _context(("valence", "arousal"))
    rows = [_prediction(0, 0.1, -0.2, models=np.array([0.3, -0.25])), _prediction(1, 0.5, 0.25,
            models=np.array([0.125, 1 / 3]))]  # fmt: skip
    with pytest.raises(RuntimeError, match="boom"):
        _write_all(tmp_path, context, rows, fail=True)
    assert list(tmp_path.iterdir()) == []  # nothing that looks like a result, and no temporary left
    _write_all(tmp_path, context, rows)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip.csv", "clip.json", "clip.models.csv", "clip.txt"]
    assert (tmp_path / "clip.csv").read_text().splitlines() == [
        "frame,time_s,valence,arousal,face,audio",
        "0,0.000000,0.100000,-0.200000,0,1",
        "1,0.040000,0.500000,0.250000,1,1",
    ]
    assert (tmp_path / "clip.txt").read_text().splitlines() == ["valence,arousal", "0.100000,-0.200000",
                                                                "0.500000,0.250000"]  # fmt: skip
    models = (tmp_path / "clip.models.csv").read_text().splitlines()
    assert models[0] == "frame,time_s,fold0_valence_multimodal,fold0_arousal_multimodal"
    assert models[2] == "1,0.040000,0.125,0.333333333"
    summary = json.loads((tmp_path / "clip.json").read_text())
    assert summary["frames"] == 2 and set(summary["outputs"]) == {"summary", "csv", "txt", "models"}
    # the summary is renamed last (a rename changes the inode's ctime)
    assert max(p.stat().st_ctime_ns for p in tmp_path.iterdir()) == (tmp_path / "clip.json").stat().st_ctime_ns


def test_stream_mode_adds_latency_and_one_dimension_has_no_submission_file(tmp_path: Path) -> None:
    context = _context(("arousal",), Mode.STREAM)
    with ResultSet(tmp_path, "clip") as files:
        csv = files.enter(CsvSink(files.target("csv", "clip.csv"), context))
        assert not SubmissionSink.applies(context)
        csv.write(_prediction(3, None, 0.75, latency_ms=12.34))
        csv.write(_prediction(4, None, -1.0))
        files.summary = {}
    assert (tmp_path / "clip.csv").read_text().splitlines() == [
        "frame,time_s,arousal,face,audio,latency_ms",
        "3,0.120000,0.750000,1,1,12.3",
        "4,0.160000,-1.000000,0,1,",
    ]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip.csv", "clip.json"]


def test_live_lines() -> None:
    shown: list[str] = []
    sink = LiveSink(shown.append, _context(("valence", "arousal"), Mode.STREAM))
    sink.write(_prediction(7, 0.25, -0.5, latency_ms=41.6))
    assert shown[0].split() == ["7", "0.280", "s", "valence", "+0.250", "arousal", "-0.500", "face", "1", "audio",
                                "1", "42", "ms"]  # fmt: skip


def test_temporaries_of_a_killed_run_are_removed_by_the_next_run_and_only_those(tmp_path: Path) -> None:
    # a temporary left by a process that is gone (a real pid that has exited)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    pid = int(dead.stdout)
    orphan = tmp_path / f".clip.csv.{pid}.abcd1234.tmp"
    orphan.write_text("half")
    mine = tmp_path / f".clip.csv.{os.getpid()}.efgh5678.tmp"  # this process's: a run in progress
    mine.write_text("in progress")
    other = tmp_path / f".other.csv.{pid}.abcd1234.tmp"  # another run's name
    other.write_text("not ours")
    user = tmp_path / ".clip.csv.notes.tmp"  # not the pattern
    user.write_text("user file")
    assert stale_temporary(orphan.name) and not stale_temporary(mine.name) and not stale_temporary(user.name)
    assert remove_stale_temporaries(tmp_path, "clip") == [orphan]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([mine.name, other.name, user.name])
    # atomic_output names its temporaries with the pid, so this rule can recognise them
    with atomic_output(tmp_path / "x.csv") as tmp:
        assert tmp.name.startswith(f".x.csv.{os.getpid()}.") and tmp.name.endswith(".tmp")
        tmp.write_text("done")
    assert (tmp_path / "x.csv").read_text() == "done"


def test_multi_face_sinks_write_a_track_column_and_one_abaw_file_per_track(tmp_path: Path) -> None:
    """Long format (frame, track) in the CSVs, nothing for a frame without anybody, and per-track ABAW files with a
    row for every frame of the source (-5 outside the track), renamed into place with the others."""
    from edgeaff.runtime.sinks.results import build_sinks
    from edgeaff.runtime.sinks.tables import TrackSubmissionSink

    info = SourceInfo(SourceKind.FILE, "clip.mp4", "clip", False, True, None, 25.0, 4)
    context = RunContext(info, Mode.OFFLINE, ("valence", "arousal"), ("m0", "m1"), 48, tracks=True)
    nobody = Prediction(0, 0.0, None, None, False, None, True)
    rows = [
        nobody,
        _prediction(1, 0.1, 0.2, track=0, models=np.array([1.0, 2.0])),
        _prediction(2, 0.3, 0.4, track=0, models=np.array([1.5, 2.5])),
        _prediction(2, -0.1, -0.2, track=1, models=np.array([3.0, 4.0])),
        _prediction(3, -0.3, -0.4, track=1, models=np.array([3.5, 4.5])),
    ]
    assert not nobody.subject and all(p.subject for p in rows[1:])
    shown: list[str] = []
    with ResultSet(tmp_path, "clip") as files:
        sinks = build_sinks(files, context, Outputs(per_model=True, live=True), show=shown.append)
        assert any(isinstance(s, TrackSubmissionSink) for s in sinks)
        for prediction in rows:
            for sink in sinks:
                sink.write(prediction)
        summary: dict[str, object] = {}
        for sink in sinks:
            summary.update(sink.finish())
        files.summary = summary
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["clip.csv", "clip.json", "clip.models.csv", "clip.track0.txt", "clip.track1.txt"]
    assert (tmp_path / "clip.csv").read_text().splitlines() == [
        "frame,time_s,track,valence,arousal,face,audio",
        "1,0.040000,0,0.100000,0.200000,1,1",
        "2,0.080000,0,0.300000,0.400000,0,1",
        "2,0.080000,1,-0.100000,-0.200000,0,1",
        "3,0.120000,1,-0.300000,-0.400000,1,1",
    ]
    assert (tmp_path / "clip.models.csv").read_text().splitlines()[:2] == ["frame,time_s,track,m0,m1",
                                                                           "1,0.040000,0,1,2"]  # fmt: skip
    absent = "-5.000000,-5.000000"
    assert (tmp_path / "clip.track0.txt").read_text().splitlines() == [
        "valence,arousal", absent, "0.100000,0.200000", "0.300000,0.400000", absent]  # fmt: skip
    assert (tmp_path / "clip.track1.txt").read_text().splitlines() == [
        "valence,arousal", absent, absent, "-0.100000,-0.200000", "-0.300000,-0.400000"]  # fmt: skip
    document = json.loads((tmp_path / "clip.json").read_text())
    assert document["track_files"] == {"0": "clip.track0.txt", "1": "clip.track1.txt"}
    assert shown[0].endswith("nobody") and "  track 1  valence -0.100" in shown[3]
    # a live source never ends: no per-track ABAW files (their values would be kept forever)
    live = RunContext(SourceInfo(SourceKind.CAMERA, "0", "cam", True, False, None, 30.0, None), Mode.STREAM,
                      ("valence", "arousal"), (), 48, tracks=True)  # fmt: skip
    assert not TrackSubmissionSink.applies(live)


def test_a_temporary_of_an_unreaped_zombie_is_stale(tmp_path: Path) -> None:
    # a killed worker whose parent is gone stays a zombie where the container's first process does not reap it
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    try:
        stat = Path(f"/proc/{child.pid}/stat")
        assert wait_for(lambda: stat.read_text().rsplit(")", 1)[1].split()[0] == "Z", 30), "the child did not end"
        orphan = tmp_path / f".clip.csv.{child.pid}.abcd1234.tmp"
        orphan.write_text("half")
        assert stale_temporary(orphan.name)
        assert remove_stale_temporaries(tmp_path, "clip") == [orphan]
    finally:
        child.wait()
