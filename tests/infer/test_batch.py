"""``edgeaff infer`` on many videos: the same files as one ``edgeaff infer`` per video, an index with the bad ones,
resuming after a hard kill, a clean stop on Ctrl-C, and the same on Ray."""

from __future__ import annotations

import csv
import importlib.util
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from infer_support import TinyBundle, infer_files, run_without_torch
from media_fixtures import face_frames, speech, write_media
from process_tools import alive, children, open_files, sigint_as_from_a_terminal, wait_for

from edgeaff.batch import BatchSettings, VideoStatus, find_videos, run_batch
from edgeaff.cli import main
from edgeaff.runtime import PipelineOptions
from edgeaff.runtime.limits import usable_cores

pytestmark = pytest.mark.slow  # needs the exported tiny bundle (built once per session, about a minute)

GOOD = {  # key: (frames, face visible, audio)
    "a.mp4": (30, lambda i: True, True),
    "sub/b.mp4": (40, lambda i: i < 20, True),
    "sub/deep/c.mkv": (25, lambda i: i % 2 == 0, False),
    "d.mp4": (35, lambda i: i > 5, True),
}
BAD = {
    "sub/notes.mp4": "not an audio/video file",  # text with a video's name
    "e.mp4": "truncated",  # the first third of a.mp4
}
RESULT_FILES = (".csv", ".txt")
two_cores = pytest.mark.skipif(usable_cores() < 2, reason="--workers 2 needs two cores")


def _write_corpus(root: Path, videos: dict, *, audio_s: float = 2.0) -> Path:
    for key, (count, visible, with_audio) in videos.items():
        path = root / key
        path.parent.mkdir(parents=True, exist_ok=True)
        audio = speech()[: int(16000 * audio_s)] if with_audio else None
        write_media(path, face_frames(visible), count=count, rate=25, audio=audio)
    return root


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = _write_corpus(tmp_path_factory.mktemp("corpus") / "videos", GOOD)
    (root / "sub" / "notes.mp4").write_text("minutes of the meeting\n" * 20)
    whole = (root / "a.mp4").read_bytes()
    (root / "e.mp4").write_bytes(whole[: len(whole) // 3])
    return root


@pytest.fixture(scope="module")
def singles(corpus: Path, tiny_bundle: TinyBundle, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Each good video through ``edgeaff infer VIDEO`` alone, with one thread per graph (a 2-worker batch's)."""
    out = tmp_path_factory.mktemp("singles")
    for key in GOOD:
        target = out / Path(key).parent
        with pytest.raises(SystemExit) as done:
            main(["infer", str(corpus / key), "--bundle", str(tiny_bundle.path), "-o", str(target), "--threads", "1"])
        assert done.value.code == 0
    return out


def _index(out: Path) -> dict[str, dict[str, str]]:
    with open(out / "batch-index.csv", newline="") as handle:
        return {row["video"]: row for row in csv.DictReader(handle)}


def _same_as_singles(out: Path, singles: Path) -> None:
    """Every good video's result files are byte for byte those of its single run, and the index says so."""
    index = _index(out)
    assert sorted(index) == sorted([*GOOD, *BAD])
    for key in GOOD:
        stem = Path(key).with_suffix("")
        for suffix in RESULT_FILES:
            assert (out / f"{stem}{suffix}").read_bytes() == (singles / f"{stem}{suffix}").read_bytes(), (key, suffix)
        single = json.loads((singles / f"{stem}.json").read_text())
        batch = json.loads((out / f"{stem}.json").read_text())
        for field in ("frames", "frames_with_face", "frames_with_audio", "duration_s", "windows", "dimensions"):
            assert batch[field] == single[field], (key, field)
        row = index[key]
        assert row["status"] == "done" and row["error"] == "" and row["results"] == f"{stem}.json"
        assert (int(row["frames"]), int(row["frames_with_face"])) == (single["frames"], single["frames_with_face"])
        assert float(row["duration_s"]) == pytest.approx(single["duration_s"])
        assert float(row["fps"]) == single["source"]["fps"] == 25.0
        assert row["frames"] == str(GOOD[key][0])
    for key, message in BAD.items():
        row = index[key]
        assert row["status"] == "failed" and message in row["error"] and "\n" not in row["error"], row
        assert not list((out / Path(key).parent).glob(f"{Path(key).stem}.*"))  # nothing written for it
    if importlib.util.find_spec("pyarrow") is None:  # the Parquet index needs pyarrow (the cluster extra)
        assert not (out / "batch-index.parquet").exists()
    else:
        import pyarrow.parquet as pq

        table = {row["video"]: row for row in pq.read_table(out / "batch-index.parquet").to_pylist()}
        assert {k: (r["status"], r["frames"]) for k, r in table.items()} == {
            k: (r["status"], int(r["frames"]) if r["frames"] else None) for k, r in index.items()
        }
    assert not [p for p in out.rglob("*.tmp")]


def _infer(args: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "edgeaff.cli", "infer", *args], capture_output=True, text=True, check=False, **kwargs
    )


@two_cores
def test_two_workers_give_the_files_of_single_runs_and_an_index_of_the_bad_ones(
    corpus: Path, singles: Path, tiny_bundle: TinyBundle, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    args = [str(corpus), "--bundle", str(tiny_bundle.path), "-o", str(out), "--workers", "2", "--threads", "1"]
    result = run_without_torch(["infer", *args], timeout=600)  # the batch needs no torch
    assert result.returncode == 1, result.stderr  # two videos failed
    assert "Traceback" not in result.stderr
    assert "6 videos: 4 done, 2 failed" in result.stderr
    assert result.stderr.count("failed: ") == 2  # one line per failure as it happens
    _same_as_singles(out, singles)


@pytest.mark.skipif(usable_cores() < 2, reason="two Ray workers need two cores")
def test_ray_local_gives_the_same_files(corpus: Path, singles: Path, tiny_bundle: TinyBundle, tmp_path: Path) -> None:
    pytest.importorskip("ray")
    out = tmp_path / "out"
    args = [str(corpus), "--bundle", str(tiny_bundle.path), "-o", str(out), "--ray", "local", "--workers", "2"]
    result = _infer(args, timeout=600)  # 2 actors on 2 cores: one thread each, as the single runs
    assert result.returncode == 1, result.stderr
    assert "6 videos: 4 done, 2 failed" in result.stderr and "Traceback" not in result.stderr
    _same_as_singles(out, singles)


def test_one_worker_in_process_equals_default_single_runs_and_reruns_only_what_changed(
    corpus: Path, tiny_bundle: TinyBundle, tmp_path: Path
) -> None:
    out, alone = tmp_path / "out", tmp_path / "alone"
    settings = BatchSettings.create(tiny_bundle.path, PipelineOptions())
    items = find_videos([corpus], out)
    report = run_batch(items, out, settings)
    assert (report.count(VideoStatus.DONE), report.count(VideoStatus.FAILED), report.reused) == (4, 2, 0)
    assert report.frames == sum(frames for frames, _, _ in GOOD.values())
    for key in GOOD:  # the library's default threads, as `edgeaff infer` uses them
        stem = Path(key).with_suffix("")
        infer_files(corpus / key, tiny_bundle.path, alone / stem.parent)
        assert (out / f"{stem}.csv").read_bytes() == (alone / f"{stem}.csv").read_bytes()

    def summaries() -> dict[str, int]:
        return {key: (out / Path(key).with_suffix(".json")).stat().st_mtime_ns for key in GOOD}

    before = summaries()
    dead = int(subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True).stdout)
    killed = out / f".batch-index.csv.{dead}.abcd1234.tmp"  # what a batch killed while writing its index leaves
    killed.write_text("half")
    running = out / f".batch-index.csv.{os.getpid()}.efgh5678.tmp"  # a process that still runs: not touched
    running.write_text("in progress")
    again = run_batch(items, out, settings)
    assert sorted(again.ran) == sorted(BAD) and again.reused == 4 and summaries() == before
    assert not killed.exists() and running.exists()
    running.unlink()
    video = corpus / "sub" / "b.mp4"
    status = video.stat()
    os.utime(video, ns=(status.st_atime_ns, status.st_mtime_ns + 10**9))  # the video was replaced
    (out / "d.txt").unlink()  # a result file went missing
    third = run_batch(items, out, settings)
    assert sorted(third.ran) == sorted([*BAD, "sub/b.mp4", "d.mp4"])
    changed = {key for key, mtime in summaries().items() if mtime != before[key]}
    assert changed == {"sub/b.mp4", "d.mp4"}
    other = BatchSettings.create(tiny_bundle.path, PipelineOptions(clip="none"))
    assert sorted(run_batch(items, out, other).ran) == sorted([*GOOD, *BAD])  # other settings: everything again


@pytest.fixture(scope="module")
def long_corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Six videos of 4 s: long enough to stop a batch in the middle."""
    videos = {f"part{i // 3}/v{i}.mp4": (100, lambda k: k % 40 < 30, True) for i in range(6)}
    return _write_corpus(tmp_path_factory.mktemp("long") / "videos", videos, audio_s=4.0)


def _start_batch(
    corpus: Path, bundle: TinyBundle, out: Path, *, start_new_session: bool = False
) -> subprocess.Popen[str]:
    """``edgeaff infer CORPUS --workers 2`` in a child process, its output captured."""
    command = [sys.executable, "-m", "edgeaff.cli", "infer", str(corpus), "-o", str(out)]
    command += ["--bundle", str(bundle.path), "--workers", "2"]
    with sigint_as_from_a_terminal():
        return subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=start_new_session
        )


def _first_summary(out: Path, process: subprocess.Popen[str]) -> bool:
    return wait_for(lambda: bool(list(out.rglob("v*.json"))) or process.poll() is not None, 300)


def _results(out: Path) -> dict[str, bytes]:
    return {
        p.relative_to(out).as_posix(): p.read_bytes()
        for p in sorted(out.rglob("*"))
        if p.suffix in RESULT_FILES and p.is_file() and not p.name.startswith("batch-index")
    }


def _stable_index(out: Path) -> dict[str, tuple[str, ...]]:
    fields = ("status", "frames", "frames_with_face", "duration_s", "fps", "results", "error")
    return {key: tuple(row[f] for f in fields) for key, row in _index(out).items()}


@two_cores
def test_sigkill_midway_then_a_rerun_runs_only_the_unfinished_videos(
    long_corpus: Path, tiny_bundle: TinyBundle, tmp_path: Path
) -> None:
    common = ["--bundle", str(tiny_bundle.path), "--workers", "2", "--threads", "1"]
    whole = tmp_path / "whole"
    assert _infer([str(long_corpus), "-o", str(whole), *common], timeout=600).returncode == 0
    out = tmp_path / "killed"
    command = [sys.executable, "-m", "edgeaff.cli", "infer", str(long_corpus), "-o", str(out), *common]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, text=True)
    try:
        assert _first_summary(out, process) and process.poll() is None, "the batch ended before it could be killed"
        workers = children(process.pid)
        process.send_signal(signal.SIGKILL)
        process.wait()
        assert wait_for(lambda: not any(alive(pid) for pid in workers), 15), "worker processes outlived the batch"
    finally:
        process.kill()
        process.wait()
    finished = {p.relative_to(out).with_suffix(".mp4").as_posix(): p.stat() for p in out.rglob("v*.json")}
    assert 1 <= len(finished) < 6
    rerun = _infer([str(long_corpus), "-o", str(out), *common], timeout=600)
    assert rerun.returncode == 0, rerun.stderr
    unfinished = 6 - len(finished)
    assert f"6 videos: 6 done ({len(finished)} kept from an earlier run)" in rerun.stderr
    index = _index(out)
    ran = [key for key, row in index.items() if row["reused"] == "0"]
    assert sorted(ran) == sorted(set(index) - set(finished)) and len(ran) == unfinished
    for key, before in finished.items():  # the finished ones were not run again: their summaries are untouched
        after = (out / key).with_suffix(".json").stat()
        assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
    assert _results(out) == _results(whole) and len(_results(whole)) == 12
    assert _stable_index(out) == _stable_index(whole)
    assert not [p for p in out.rglob("*") if p.name.endswith(".tmp")]  # the killed run's temporaries are gone


@two_cores
def test_ctrl_c_stops_the_batch_cleanly_with_the_index_up_to_date(
    long_corpus: Path, tiny_bundle: TinyBundle, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    process = _start_batch(long_corpus, tiny_bundle, out, start_new_session=True)
    try:
        assert _first_summary(out, process) and process.poll() is None, "the batch ended before Ctrl-C"
        workers = children(process.pid)
        os.killpg(process.pid, signal.SIGINT)  # what the terminal does: the whole process group
        _, stderr = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 130, stderr
    assert "Traceback" not in stderr and "stopped by the user (Ctrl-C)" in stderr
    # gone with the batch (a process may still be in the kernel's exit path for a moment)
    assert wait_for(lambda: not any(alive(pid) for pid in workers), 5), "worker processes outlived the batch"
    index = _index(out)
    statuses = {row["status"] for row in index.values()}
    assert len(index) == 6 and "done" in statuses and statuses <= {"done", "interrupted", "pending"}
    assert statuses - {"done"}, "nothing was left to stop"
    for key, row in index.items():
        summary = (out / key).with_suffix(".json")
        assert summary.exists() == (row["status"] == "done"), key
    assert not [p for p in out.rglob("*") if p.name.endswith(".tmp")]  # stopped videos removed their temporaries


def test_batch_options_are_checked_before_any_work(
    corpus: Path, tiny_bundle: TinyBundle, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bundle = ["--bundle", str(tiny_bundle.path)]
    cases = [
        ([str(corpus / "a.mp4"), "--workers", "2"], "--workers and --ray run many videos"),
        ([str(corpus), "--name", "x"], "--name applies to one source"),
        ([str(corpus), "--live"], "--live applies to one source"),
        ([str(corpus), "--workers", "0"], "--workers must be between 1 and"),
        ([str(corpus), "--workers", "1", "--threads", str(4 * usable_cores() + 1)], "--threads must be between"),
        ([str(corpus), "--ray", "somewhere"], "--ray 'somewhere'"),
        ([str(corpus / "*.none")], "matches no video"),
    ]
    for args, message in cases:
        out = tmp_path / "out"
        with pytest.raises(SystemExit) as exit_info:
            main(["infer", *args, *bundle, "-o", str(out)])
        stderr = capsys.readouterr().err
        assert exit_info.value.code == 2, (args, stderr)
        assert message in stderr and "Traceback" not in stderr, (args, stderr)
        assert not out.exists(), args
    with pytest.raises(SystemExit) as exit_info:  # a folder of face images stays one source
        main(["infer", str(tmp_path / "faces-nowhere"), *bundle, "-o", str(tmp_path / "o")])
    assert "source not found" in capsys.readouterr().err


@two_cores
def test_a_worker_killed_midway_fails_its_video_and_the_batch_goes_on(
    long_corpus: Path, tiny_bundle: TinyBundle, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    process = _start_batch(long_corpus, tiny_bundle, out)
    try:
        assert _first_summary(out, process) and process.poll() is None, "the batch ended before a worker was killed"
        workers = [pid for pid in children(process.pid) if b"spawn_main" in Path(f"/proc/{pid}/cmdline").read_bytes()]
        assert len(workers) == 2

        def reading_a_video() -> list[int]:  # a worker in the middle of a video has it open
            return [pid for pid in workers if any(f.suffix == ".mp4" for f in open_files(pid))]

        assert wait_for(lambda: bool(reading_a_video()), 120), "no worker was seen reading a video"
        os.kill(reading_a_video()[0], signal.SIGKILL)  # what the out-of-memory killer does
        _, stderr = process.communicate(timeout=600)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 1, stderr  # some videos failed, the batch itself did not
    index = _index(out)
    failed = {key for key, row in index.items() if row["status"] == "failed"}
    # only the killed worker's video fails: the other worker's (stopped with the broken pool) runs again, and a
    # result the broken pool dropped still counts
    assert len(failed) == 1 and {row["status"] for row in index.values()} == {"done", "failed"}
    assert all("worker process died" in index[key]["error"] for key in failed)
    for key, row in index.items():
        assert (out / key).with_suffix(".json").exists() == (row["status"] == "done"), key
    rerun = _infer([str(long_corpus), "-o", str(out), "--bundle", str(tiny_bundle.path), "--workers", "2"], timeout=600)
    assert rerun.returncode == 0, rerun.stderr
    assert {key for key, row in _index(out).items() if row["reused"] == "0"} == failed
