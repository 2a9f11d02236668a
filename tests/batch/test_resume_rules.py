"""When a rerun keeps a video's results, the index files, and the worker and thread counts a batch accepts."""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

import pytest

from edgeaff.batch import BatchSettings, VideoResult, VideoStatus, find_videos
from edgeaff.batch.executors import local_threads
from edgeaff.batch.index import COLUMNS, index_rows, write_index
from edgeaff.batch.runner import output_lock
from edgeaff.batch.settings import completed_summary, forget, stamp, video_stamp
from edgeaff.runtime import Clip, InvalidInputError, Outputs, PipelineOptions, limits


@pytest.fixture
def batch(tmp_path: Path) -> tuple[Path, Path, BatchSettings]:
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    (bundle / "manifest.json").write_text('{"stand-in": true}')
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "a.mp4").write_bytes(b"video bytes")
    return tmp_path / "in", tmp_path / "out", BatchSettings.create(bundle, PipelineOptions())


def _complete(item, settings: BatchSettings) -> None:  # what write_results leaves: files, then the summary
    item.out_dir.mkdir(parents=True, exist_ok=True)
    (item.out_dir / f"{item.name}.csv").write_text("frame\n")
    document = {
        "frames": 3,
        "outputs": {"csv": str(item.out_dir / f"{item.name}.csv"), "summary": str(item.summary)},
        "batch": stamp(item, settings, video_stamp(item.video)),
    }
    item.summary.write_text(json.dumps(document))


def test_results_are_kept_only_for_the_same_video_settings_and_files(batch) -> None:
    source, out, settings = batch
    (item,) = find_videos([source], out)
    assert completed_summary(item, settings) is None  # nothing yet
    _complete(item, settings)
    assert completed_summary(item, settings)["frames"] == 3
    other = BatchSettings.create(settings.bundle, PipelineOptions(clip=Clip.NONE))
    assert other.digest != settings.digest and completed_summary(item, other) is None
    threads = BatchSettings.create(settings.bundle, PipelineOptions(backend=settings.options.backend))
    assert threads.digest == settings.digest  # same decisive settings, same digest
    (settings.bundle / "manifest.json").write_text('{"another": "bundle"}')
    assert BatchSettings.create(settings.bundle, PipelineOptions()).digest != settings.digest
    status = item.video.stat()
    os.utime(item.video, ns=(status.st_atime_ns, status.st_mtime_ns + 1_000_000))
    assert completed_summary(item, settings) is None  # the video changed
    _complete(item, settings)
    (item.out_dir / "a.csv").unlink()
    assert completed_summary(item, settings) is None  # a listed result file is gone
    _complete(item, settings)
    item.summary.write_text(item.summary.read_text()[:-5])
    assert completed_summary(item, settings) is None  # damaged summary


def test_forget_removes_only_a_batch_summary(batch) -> None:
    source, out, settings = batch
    (item,) = find_videos([source], out)
    item.out_dir.mkdir(parents=True)
    item.summary.write_text('{"frames": 1}')  # a single run's summary: not the batch's to remove
    forget(item)
    assert item.summary.exists()
    _complete(item, settings)
    forget(item)
    assert not item.summary.exists() and (item.out_dir / "a.csv").exists()


def test_index_lists_every_video_as_csv_and_parquet(batch, tmp_path: Path) -> None:
    source, out, _ = batch
    (source / "sub").mkdir()
    (source / "sub" / "b.mp4").write_bytes(b"x")
    (source / "c.mp4").write_bytes(b"x")
    items = find_videos([source], out)
    results = {
        "a.mp4": VideoResult("a.mp4", VideoStatus.DONE, 10, 7, 0.4, 25.0, 1.23456, reused=True),
        "sub/b.mp4": VideoResult("sub/b.mp4", VideoStatus.FAILED, error='bad, "quoted"\tthing'),
    }
    out.mkdir()
    paths = write_index(index_rows(items, results, out), out)
    assert [p.name for p in paths] == ["batch-index.csv", "batch-index.parquet"]
    with open(paths[0], newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert tuple(rows[0]) == COLUMNS
    assert [(r["video"], r["status"], r["frames"], r["reused"], r["results"]) for r in rows] == [
        ("a.mp4", "done", "10", "1", "a.json"),
        ("c.mp4", "pending", "", "0", ""),
        ("sub/b.mp4", "failed", "", "0", ""),
    ]
    assert rows[2]["error"] == 'bad, "quoted"\tthing' and rows[0]["wall_s"] == "1.235"
    import pyarrow.parquet as pq

    table = pq.read_table(paths[1]).to_pylist()
    assert [(r["video"], r["status"], r["frames"], r["fps"]) for r in table] == [
        ("a.mp4", "done", 10, 25.0),
        ("c.mp4", "pending", None, None),
        ("sub/b.mp4", "failed", None, None),
    ]
    assert not [p for p in out.iterdir() if p.name.endswith(".tmp")]


def test_settings_refuse_what_a_batch_cannot_write(batch) -> None:
    _, _, settings = batch
    with pytest.raises(InvalidInputError, match="does not apply to a batch"):
        BatchSettings.create(settings.bundle, PipelineOptions(), outputs=Outputs(live=True))
    with pytest.raises(InvalidInputError, match=r"no manifest\.json"):
        BatchSettings.create(settings.bundle / "nope", PipelineOptions())


def test_worker_and_thread_counts_are_bounded() -> None:
    cores = limits.usable_cores()
    assert local_threads(1, None) is None  # one worker: the backend's default, as edgeaff infer
    if cores >= 2:
        assert local_threads(2, None) == cores // 2
    with pytest.raises(InvalidInputError, match="--workers must be between 1 and"):
        local_threads(cores + 1, None)
    with pytest.raises(InvalidInputError, match="--workers must be between 1 and"):
        local_threads(0, None)
    with pytest.raises(InvalidInputError, match="more than the"):
        local_threads(1 if cores == 1 else 2, limits.max_threads())
    assert local_threads(1, limits.max_threads()) == limits.max_threads()


def test_one_batch_at_a_time_per_output_folder(tmp_path: Path) -> None:
    with (
        output_lock(tmp_path),
        pytest.raises(InvalidInputError, match="another edgeaff batch is writing"),
        output_lock(tmp_path),
    ):
        pass
    with output_lock(tmp_path):  # released
        pass
