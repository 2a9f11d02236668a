"""The engine cache: key stability and sensitivity, sidecars, invalidation, the cross-process build lock.

The builder here is a small stand-in that returns recognisable bytes and records its calls; the cache logic under
test is the real one.
"""

from __future__ import annotations

import dataclasses
import fcntl
import hashlib
import json
import logging
import multiprocessing
import os
import sys
import threading
import time
from pathlib import Path

import pytest
from engine_helpers import ENV, FakeBuilder, load

from edgeaff.runtime.engines.cache import EngineCache, TimingCacheFile
from edgeaff.runtime.engines.key import EngineKey, EngineRecord
from edgeaff.runtime.engines.spec import (
    BuildEnvironment,
    BuildOptions,
    DeviceIdentity,
    EngineBuildError,
    EngineLoadError,
    EngineRequest,
    ShapeRange,
)
from edgeaff.runtime.errors import InvalidInputError

PROFILE = {"frames": ShapeRange((1, 48, 48, 3), (8, 48, 48, 3), (32, 48, 48, 3))}


@pytest.fixture
def graph(tmp_path: Path) -> Path:
    path = tmp_path / "visual.onnx"
    path.write_bytes(b"onnx graph bytes v1")
    return path


def key_of(request: EngineRequest, env: BuildEnvironment = ENV) -> str:
    return EngineKey.for_request(request, env).digest


def test_key_is_stable_and_matches_its_documented_recipe(graph: Path) -> None:
    request = EngineRequest(graph, "fp16", profiles=PROFILE)
    key = EngineKey.for_request(request, ENV)
    assert key_of(EngineRequest(graph, "fp16", profiles=dict(PROFILE))) == key.digest
    expected_fields = {
        "schema": 1,
        "onnx_sha256": hashlib.sha256(b"onnx graph bytes v1").hexdigest(),
        "external_data": [],
        "precision": "fp16",
        "tensorrt_version": "10.3.0.30",
        "gpu_name": "Orin",
        "compute_capability": "8.7",
        "multiprocessors": 8,
        "profiles": {"frames": {"min": [1, 48, 48, 3], "opt": [8, 48, 48, 3], "max": [32, 48, 48, 3]}},
        "builder": {"workspace_mib": 1024, "optimization_level": None, "allow_tf32": False, "strongly_typed": False},
    }
    assert dict(key.fields) == expected_fields
    canonical = json.dumps(expected_fields, sort_keys=True, separators=(",", ":")).encode()
    assert key.digest == hashlib.sha256(canonical).hexdigest()
    # a change to this layout silently invalidates every user's cache: bump KEY_SCHEMA instead
    assert key.digest == "4be8fbf6209841df3db870252ff13f4b2f8ec6d5170b40f6fe6caa0bc0e0ca6c"


def test_each_key_field_changes_the_key(graph: Path, tmp_path: Path) -> None:
    base = EngineRequest(graph, "fp16", profiles=PROFILE)
    reference = key_of(base)
    other_graph = tmp_path / "other.onnx"
    other_graph.write_bytes(b"onnx graph bytes v2")
    data = tmp_path / "weights.bin"
    data.write_bytes(b"w")
    device = ENV.device
    variants = {
        "onnx content": key_of(dataclasses.replace(base, onnx_path=other_graph)),
        "external data": key_of(dataclasses.replace(base, external_data=(data,))),
        "precision": key_of(dataclasses.replace(base, precision="fp32")),
        "tensorrt": key_of(base, dataclasses.replace(ENV, tensorrt_version="10.3.0.31")),
        "gpu name": key_of(base, dataclasses.replace(ENV, device=dataclasses.replace(device, name="Xavier"))),
        "capability": key_of(
            base, dataclasses.replace(ENV, device=dataclasses.replace(device, compute_capability=(8, 6)))
        ),
        "sm count": key_of(base, dataclasses.replace(ENV, device=dataclasses.replace(device, multiprocessors=16))),
        "profile min": key_of(
            dataclasses.replace(base, profiles={"frames": ((2, 48, 48, 3), (8, 48, 48, 3), (32, 48, 48, 3))})
        ),
        "profile opt": key_of(
            dataclasses.replace(base, profiles={"frames": ((1, 48, 48, 3), (4, 48, 48, 3), (32, 48, 48, 3))})
        ),
        "profile max": key_of(
            dataclasses.replace(base, profiles={"frames": ((1, 48, 48, 3), (8, 48, 48, 3), (64, 48, 48, 3))})
        ),
        "workspace": key_of(dataclasses.replace(base, options=BuildOptions(workspace_mib=2048))),
        "opt level": key_of(dataclasses.replace(base, options=BuildOptions(optimization_level=5))),
        "tf32": key_of(dataclasses.replace(base, options=BuildOptions(allow_tf32=True))),
        "typing": key_of(dataclasses.replace(base, options=BuildOptions(strongly_typed=True))),
    }
    assert reference not in variants.values()
    assert len(set(variants.values())) == len(variants)
    # the graph's name is not part of the key, its content is
    renamed = tmp_path / "renamed.onnx"
    renamed.write_bytes(graph.read_bytes())
    assert key_of(dataclasses.replace(base, onnx_path=renamed)) == reference
    # a verified sha256 from a manifest stands in for hashing the file
    given = dataclasses.replace(base, onnx_sha256=hashlib.sha256(graph.read_bytes()).hexdigest())
    assert key_of(given) == reference


def test_sidecar_round_trip_and_refusals(graph: Path, tmp_path: Path) -> None:
    cache = EngineCache(tmp_path / "cache")
    got = cache.get_or_build(EngineRequest(graph, profiles=PROFILE), builder=FakeBuilder(), load=load)
    text = got.path.with_suffix(".json").read_text()
    record = EngineRecord.from_json(text)
    assert record == got.record
    assert record.engine_sha256 == hashlib.sha256(got.path.read_bytes()).hexdigest()
    assert record.engine_bytes == got.path.stat().st_size
    assert record.fields["gpu_name"] == "Orin" and record.edgeaff_version
    data = json.loads(text)
    with pytest.raises(ValueError, match="schema"):
        EngineRecord.from_json(json.dumps({**data, "schema": 99}))
    with pytest.raises(ValueError, match="keys"):
        EngineRecord.from_json(json.dumps({**data, "extra": 1}))


def test_miss_builds_then_hit_reuses(graph: Path, tmp_path: Path) -> None:
    cache, builder = EngineCache(tmp_path / "cache"), FakeBuilder()
    first = cache.get_or_build(EngineRequest(graph), builder=builder, load=load)
    second = cache.get_or_build(EngineRequest(graph), builder=builder, load=load)
    assert first.built and not second.built
    assert first.reason == "no cached engine"
    assert builder.builds == ["visual.fp32"]
    assert second.value == first.value == b"ENGINE:visual.fp32:10.3.0.30"
    assert first.path.name.startswith("visual.fp32.") and first.path.suffix == ".engine"


def _rebuild_reason(cache: EngineCache, graph: Path, builder: FakeBuilder) -> str | None:
    got = cache.get_or_build(EngineRequest(graph), builder=builder, load=load)
    assert got.built, "a stale or corrupt engine must be rebuilt"
    assert got.value == b"ENGINE:visual.fp32:" + builder.env.tensorrt_version.encode()
    return got.reason


def test_tampered_corrupt_or_foreign_engines_are_rebuilt(
    graph: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    cache, builder = EngineCache(tmp_path / "cache"), FakeBuilder()
    engine = cache.get_or_build(EngineRequest(graph), builder=builder, load=load).path
    sidecar = engine.with_suffix(".json")
    caplog.set_level(logging.WARNING, logger="edgeaff.engines")

    engine.write_bytes(engine.read_bytes()[:-1] + b"X")  # tampered, same length
    assert "does not match its recorded sha256" in str(_rebuild_reason(cache, graph, builder))

    sidecar.write_text("{not json")
    assert "sidecar is unreadable" in str(_rebuild_reason(cache, graph, builder))

    data = json.loads(sidecar.read_text())
    data["fields"]["tensorrt_version"] = "10.2.0.19"
    sidecar.write_text(json.dumps(data))
    reason = str(_rebuild_reason(cache, graph, builder))
    assert 'tensorrt_version: "10.2.0.19" -> "10.3.0.30"' in reason

    sidecar.unlink()
    assert "no sidecar" in str(_rebuild_reason(cache, graph, builder))

    engine.unlink()
    assert "engine file is missing" in str(_rebuild_reason(cache, graph, builder))

    record = EngineRecord.from_json(sidecar.read_text())
    engine.write_bytes(b"garbage!")  # a consistent sidecar for bytes TensorRT cannot deserialise
    sidecar.write_text(
        dataclasses.replace(record, engine_sha256=hashlib.sha256(b"garbage!").hexdigest(), engine_bytes=8).to_json()
    )
    assert "cannot deserialise the cached engine (not an engine)" in str(_rebuild_reason(cache, graph, builder))
    assert len(builder.builds) == 7
    assert any("building it now" in r.getMessage() and "sha256" in r.getMessage() for r in caplog.records)


def test_other_tensorrt_or_gpu_gets_its_own_engine(graph: Path, tmp_path: Path) -> None:
    cache = EngineCache(tmp_path / "cache")
    old = cache.get_or_build(EngineRequest(graph), builder=FakeBuilder(), load=load)
    upgraded = FakeBuilder(dataclasses.replace(ENV, tensorrt_version="10.7.0.23"))
    new = cache.get_or_build(EngineRequest(graph), builder=upgraded, load=load)
    assert new.built and new.path != old.path and upgraded.builds == ["visual.fp32"]
    other_gpu = FakeBuilder(dataclasses.replace(ENV, device=DeviceIdentity("NVIDIA H100", (9, 0), 132)))
    assert cache.get_or_build(EngineRequest(graph), builder=other_gpu, load=load).built
    assert len(cache.entries()) == 3


def test_failed_builds_leave_nothing_behind(graph: Path, tmp_path: Path) -> None:
    cache, builder = EngineCache(tmp_path / "cache"), FakeBuilder()
    builder.fail = True
    with pytest.raises(EngineBuildError, match="on purpose"):
        cache.get_or_build(EngineRequest(graph), builder=builder, load=load)
    assert cache.entries() == []

    def unloadable(data: bytes) -> bytes:
        raise EngineLoadError("version mismatch")

    with pytest.raises(EngineBuildError, match="just built cannot be deserialised"):
        cache.get_or_build(EngineRequest(graph), builder=FakeBuilder(), load=unloadable)
    assert cache.entries() == []
    assert not list((tmp_path / "cache").glob("*.tmp")) and not list((tmp_path / "cache").glob(".*.tmp"))


def test_timing_cache_persists_between_builds(graph: Path, tmp_path: Path) -> None:
    cache, builder = EngineCache(tmp_path / "cache"), FakeBuilder()
    cache.get_or_build(EngineRequest(graph, "fp32"), builder=builder, load=load)
    cache.get_or_build(EngineRequest(graph, "fp16"), builder=builder, load=load)
    assert builder.timing_seen == [b"", b"visual.fp32;"]
    path = cache.timing_cache(ENV).path
    assert path.read_bytes() == b"visual.fp32;visual.fp16;"
    assert path.name == "10-3-0-30.sm_87.Orin.timing"
    assert cache.timing_cache(dataclasses.replace(ENV, tensorrt_version="11.0")).path != path
    assert TimingCacheFile(tmp_path / "absent.timing").load() == b""


def _race(cache_dir: str, onnx: str, log_path: str, barrier: object, results: object) -> None:
    barrier.wait()  # type: ignore[attr-defined]
    builder = FakeBuilder(log_path=Path(log_path), delay=0.5)
    got = EngineCache(cache_dir, lock_poll_s=0.01).get_or_build(EngineRequest(onnx), builder=builder, load=load)
    results.put((got.built, hashlib.sha256(got.value).hexdigest()))  # type: ignore[attr-defined]


@pytest.mark.skipif(sys.platform != "linux", reason="uses fork")
def test_two_processes_racing_for_one_key_build_once(graph: Path, tmp_path: Path) -> None:
    context = multiprocessing.get_context("fork")
    barrier, results = context.Barrier(2), context.Queue()
    log_path = tmp_path / "builds.log"
    args = (str(tmp_path / "cache"), str(graph), str(log_path), barrier, results)
    workers = [context.Process(target=_race, args=args) for _ in range(2)]
    for worker in workers:
        worker.start()
    outcomes = sorted(results.get(timeout=60) for _ in workers)
    for worker in workers:
        worker.join(timeout=60)
        assert worker.exitcode == 0
    assert len(log_path.read_text().splitlines()) == 1
    assert [built for built, _ in outcomes] == [False, True]
    assert outcomes[0][1] == outcomes[1][1]


def test_a_waiting_process_says_so_then_uses_the_engine(
    graph: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    cache, builder = EngineCache(tmp_path / "cache", lock_poll_s=0.01), FakeBuilder()
    request = EngineRequest(graph)
    entry_id = cache.entry_id(request, EngineKey.for_request(request, ENV))
    lock = cache.lock_path(entry_id)
    lock.parent.mkdir(parents=True)
    holder = os.open(lock, os.O_RDWR | os.O_CREAT)
    fcntl.flock(holder, fcntl.LOCK_EX)
    caplog.set_level(logging.WARNING, logger="edgeaff.engines")
    got: list[bool] = []
    worker = threading.Thread(target=lambda: got.append(cache.get_or_build(request, builder=builder, load=load).built))
    worker.start()
    deadline = time.monotonic() + 10
    while not any("another process is building" in r.getMessage() for r in caplog.records):
        assert time.monotonic() < deadline
        time.sleep(0.01)
    assert builder.builds == []  # still waiting
    os.close(holder)
    worker.join(timeout=10)
    assert got == [True] and builder.builds == ["visual.fp32"]


def test_entries_and_clear(graph: Path, tmp_path: Path) -> None:
    cache = EngineCache(tmp_path / "cache")
    assert EngineCache(tmp_path / "absent").entries() == []
    current = cache.get_or_build(EngineRequest(graph), builder=FakeBuilder(), load=load)
    old_env = dataclasses.replace(ENV, tensorrt_version="10.2.0.19")
    old = cache.get_or_build(EngineRequest(graph), builder=FakeBuilder(old_env), load=load)
    orphan = cache.directory / "stray.fp16.0123456789abcdef.engine"
    orphan.write_bytes(b"x")
    entries = {e.entry_id: e for e in cache.entries()}
    assert entries["stray.fp16.0123456789abcdef"].problem == "no sidecar"
    assert entries[current.path.stem].record == current.record and entries[current.path.stem].problem is None

    report = cache.clear(keep=lambda record: record.fields["tensorrt_version"] == ENV.tensorrt_version)
    assert report.removed == (old.path.stem,)
    assert report.bytes_freed > 0 and not old.path.exists() and current.path.exists()
    # Named like an entry but without a sidecar naming it: not recognised as the cache's, so left alone.
    assert report.unrecognised == ("stray.fp16.0123456789abcdef",) and orphan.read_bytes() == b"x"
    orphan.unlink()

    lock = cache.lock_path(current.path.stem)
    holder = os.open(lock, os.O_RDWR | os.O_CREAT)
    fcntl.flock(holder, fcntl.LOCK_EX)
    try:
        busy = cache.clear()
    finally:
        os.close(holder)
    assert busy.busy == (current.path.stem,) and current.path.exists()
    final = cache.clear(timing_caches=True)
    assert final.removed == (current.path.stem,) and cache.entries() == []
    assert not cache.timing_cache(ENV).path.exists()


def _bundle_like(folder: Path) -> dict[str, bytes]:
    folder.mkdir(parents=True)
    files = {
        "manifest.json": b'{"format": "edgeaff-bundle"}',
        "visual.onnx": b"onnx",
        "runs.json": b"{}",
        "model.engine": b"someone else's engine",
        "visual.fp32.0123456789abcdef.json": b'{"not": "a sidecar"}',
    }
    for name, data in files.items():
        (folder / name).write_bytes(data)
    return files


def test_clear_pointed_at_a_bundle_or_run_removes_nothing(tmp_path: Path) -> None:
    folder = tmp_path / "bundle"
    files = _bundle_like(folder)
    with pytest.raises(InvalidInputError, match="is not an engine cache") as info:
        EngineCache(folder).clear(timing_caches=True)
    assert "nothing was removed" in str(info.value)
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == files  # not even a locks/ folder was created


def test_clear_in_a_cache_with_other_files_removes_only_entries(graph: Path, tmp_path: Path) -> None:
    cache = EngineCache(tmp_path / "cache")
    built = cache.get_or_build(EngineRequest(graph), builder=FakeBuilder(), load=load)
    (cache.directory / "notes.json").write_text("{}")
    (cache.directory / "timing" / "readme.txt").write_text("mine")
    report = cache.clear(timing_caches=True)
    assert report.removed == (built.path.stem,) and report.other_files == ("notes.json",)
    assert (cache.directory / "notes.json").exists() and (cache.directory / "timing" / "readme.txt").exists()
    assert not cache.timing_cache(ENV).path.exists()


def test_engine_cache_clear_cli_on_a_bundle_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from edgeaff.cli import main

    folder = tmp_path / "bundle"
    files = _bundle_like(folder)
    with pytest.raises(SystemExit) as exit_info:
        main(["engine-cache", "clear", "--cache", str(folder)])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.count("error: ") == 1 and "is not an engine cache" in err and "Traceback" not in err
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == files
