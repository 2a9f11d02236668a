"""``edgeaff export`` never destroys what it did not make, refuses bad input before the expensive steps, cleans up
after a killed export, and writes bundles other accounts can read (issue 16, defects 1, 8 and 9)."""

from __future__ import annotations

import json
import os
import stat
import struct
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from builders import save_models, tiny_models

from edgeaff.cli import main
from edgeaff.export import bundle as bundle_writer
from edgeaff.export import exporter
from edgeaff.runtime.artifacts.bundle import BUNDLE_FORMAT, BundleError, load_bundle
from edgeaff.runtime.errors import InvalidInputError
from edgeaff.runtime.files import WORK_MARKER


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    models = tiny_models([("unimodal", None), ("unimodal", None)], seed=41)
    return save_models(models, tmp_path_factory.mktemp("ckpt"), [(0, "valence"), (1, "valence")])


@pytest.fixture
def no_expensive_steps(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Fail the test if export reaches the graph building (the first expensive step)."""
    reached: list[str] = []

    def build_graphs(*args: object, **kwargs: object) -> None:
        reached.append("build_graphs")
        raise AssertionError("export reached the expensive steps")

    monkeypatch.setattr(exporter.torch2onnx, "build_graphs", build_graphs)
    return reached


def one_error(args: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and "Traceback" not in err, err
    return errors[0]


def snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def make_run(root: Path, checkpoints: list[Path]) -> Path:
    run = root / "run"
    for index, source in enumerate(checkpoints):
        job = run / "unimodal" / f"fold{index}" / "valence"
        job.mkdir(parents=True)
        (job / "checkpoint.safetensors").write_bytes(source.read_bytes())
        (job / "log.csv").write_text("epoch\n1\n")
    return run


def test_exporting_a_run_onto_itself_deletes_nothing(
    tmp_path: Path, checkpoints: list[Path], capsys: pytest.CaptureFixture[str], no_expensive_steps: list[str]
) -> None:
    run = make_run(tmp_path, checkpoints)
    before = snapshot(run)
    line = one_error(["export", str(run), "-o", str(run), "--force"], capsys)
    assert f"-o {run} is the input {run}" in line and "nothing was changed" in line
    checkpoint = run / "unimodal" / "fold0" / "valence" / "checkpoint.safetensors"
    line = one_error(["export", str(checkpoint), "-o", str(run), "--force"], capsys)
    assert "contains the input" in line
    assert snapshot(run) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"] and not no_expensive_steps


def test_force_replaces_only_a_bundle(
    tmp_path: Path, checkpoints: list[Path], capsys: pytest.CaptureFixture[str], no_expensive_steps: list[str]
) -> None:
    mine = tmp_path / "photos"
    mine.mkdir()
    (mine / "holiday.jpg").write_bytes(b"\xff\xd8 not really")
    line = one_error(["export", str(checkpoints[0]), "-o", str(mine), "--force"], capsys)
    assert "is not a bundle" in line and "--force only replaces a bundle" in line
    assert snapshot(mine) == {"holiday.jpg": b"\xff\xd8 not really"}
    fake = tmp_path / "fake"
    fake.mkdir()
    (fake / "manifest.json").write_text('{"format": "something-else"}')
    assert "is not a bundle" in one_error(["export", str(checkpoints[0]), "-o", str(fake), "--force"], capsys)
    assert not no_expensive_steps


def test_publish_replaces_a_bundle_or_an_empty_folder(tmp_path: Path) -> None:
    target = tmp_path / "bundle"
    target.mkdir()
    (target / "manifest.json").write_text(json.dumps({"format": BUNDLE_FORMAT}))
    (target / "old.onnx").write_text("old")
    with bundle_writer.staging_directory(target) as staging:
        (staging / "new.onnx").write_text("new")
        bundle_writer.publish(staging, target, force=True)
    assert sorted(p.name for p in target.iterdir()) == ["new.onnx"]  # the staging marker is not published
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bundle"]
    empty = tmp_path / "empty"
    empty.mkdir()
    with bundle_writer.staging_directory(empty) as staging:
        (staging / "x").write_text("x")
        bundle_writer.publish(staging, empty, force=True)
    assert [p.name for p in empty.iterdir()] == ["x"]


def test_stale_staging_folders_are_removed_and_foreign_ones_kept(
    tmp_path: Path, checkpoints: list[Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    output = tmp_path / "bundle"
    # What a SIGKILLed export leaves: its marked staging folder (no process holds the marker's lock any more).
    code = (
        "import os, sys\n"
        "from pathlib import Path\n"
        "from edgeaff.export.bundle import staging_directory\n"
        f"with staging_directory(Path({str(output)!r})) as staging:\n"
        "    (staging / 'visual.onnx').write_bytes(b'x' * 1000)\n"
        "    print(staging, flush=True)\n"
        "    os.kill(os.getpid(), 9)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False)
    stale = Path(result.stdout.strip())
    assert result.returncode == -9 and (stale / WORK_MARKER).is_file()
    foreign = tmp_path / ".bundle.partial-notes"  # the same name pattern, not made by edgeaff
    foreign.mkdir()
    (foreign / "keep.txt").write_text("mine")
    lines: list[str] = []

    def stop(*args: object, **kwargs: object) -> None:
        raise InvalidInputError("stop after the checks")

    monkeypatch.setattr(exporter.torch2onnx, "build_graphs", stop)
    with pytest.raises(InvalidInputError, match="stop after the checks"):
        exporter.export_bundle(checkpoints, output, options=exporter.ExportOptions(), log=lines.append)
    assert not stale.exists()
    assert (foreign / "keep.txt").read_text() == "mine"
    assert any("removed 1 unfinished export folder" in line for line in lines)
    assert sorted(p.name for p in tmp_path.iterdir()) == [".bundle.partial-notes"]


def rewrite_metadata(source: Path, target: Path, change: Callable[[dict[str, Any]], Any]) -> Path:
    """Copy a fold checkpoint with its edgeaff metadata document changed (tensors and offsets untouched)."""
    data = source.read_bytes()
    (length,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + length])
    metadata = json.loads(header["__metadata__"]["edgeaff"])
    changed = change(metadata)
    header["__metadata__"]["edgeaff"] = changed if isinstance(changed, str) else json.dumps(metadata)
    raw = json.dumps(header).encode()
    raw += b" " * (-len(raw) % 8)
    target.write_bytes(struct.pack("<Q", len(raw)) + raw + data[8 + length :])
    return target


def _set(key: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def change(metadata: dict[str, Any]) -> None:
        metadata[key] = value

    return change


def _set_model(key: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def change(metadata: dict[str, Any]) -> None:
        metadata["model"][key] = value

    return change


BAD_METADATA: list[tuple[str, Callable[[dict[str, Any]], Any], str]] = [
    ("dimension", _set("dimension", "happiness"), "names the dimension 'happiness'"),
    ("fold", _set("fold", 9), "names the fold 9"),
    ("model-type", _set("model", "ir50"), "'model' must be an object, not a string"),
    ("kind-type", _set_model("kind", 3), "'model.kind' must be a string"),
    ("kind-value", _set_model("kind", "trimodal"), "model kind must be one of"),
    ("huge-model", _set_model("visual_channels", [1 << 20] * 4), "weights do not match"),
    ("deep", lambda m: '{"a":' * 5000 + "1" + "}" * 5000, "nested more deeply than 32 levels"),
]


@pytest.mark.parametrize(("label", "change", "message"), BAD_METADATA, ids=[c[0] for c in BAD_METADATA])
def test_bad_metadata_is_refused_before_any_work(
    tmp_path: Path,
    checkpoints: list[Path],
    capsys: pytest.CaptureFixture[str],
    no_expensive_steps: list[str],
    label: str,
    change: Callable[[dict[str, Any]], Any],
    message: str,
) -> None:
    bad = rewrite_metadata(checkpoints[0], tmp_path / f"{label}.safetensors", change)
    started = time.perf_counter()
    line = one_error(["export", str(bad), "-o", str(tmp_path / "bundle")], capsys)
    assert message in line
    assert time.perf_counter() - started < 30 and not no_expensive_steps
    assert sorted(p.name for p in tmp_path.iterdir()) == [bad.name]


@pytest.mark.parametrize(
    ("label", "change", "message"),
    [c for c in BAD_METADATA if c[0] in ("model-type", "kind-type", "deep")],
    ids=["model-type", "kind-type", "deep"],
)
def test_inspect_wrong_structure_is_one_line(
    tmp_path: Path,
    checkpoints: list[Path],
    capsys: pytest.CaptureFixture[str],
    label: str,
    change: Callable[[dict[str, Any]], Any],
    message: str,
) -> None:
    bad = rewrite_metadata(checkpoints[0], tmp_path / f"{label}.safetensors", change)
    assert message in one_error(["inspect", str(bad)], capsys)


def test_a_safetensors_header_nested_too_deeply_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    raw = ("[" * 200_000 + "]" * 200_000).encode()
    path = tmp_path / "deep.safetensors"
    path.write_bytes(struct.pack("<Q", len(raw)) + raw)
    assert "nested more deeply" in one_error(["inspect", str(path)], capsys)
    raw = json.dumps({"w": {"dtype": "F32", "shape": [1], "data_offsets": "zero"}}).encode()
    path.write_bytes(struct.pack("<Q", len(raw)) + raw)
    assert "no valid data_offsets" in one_error(["inspect", str(path)], capsys)


def test_a_bundle_manifest_nested_too_deeply_is_refused(tmp_path: Path) -> None:
    (tmp_path / "manifest.json").write_text('{"format": ' + "[" * 100_000 + "]" * 100_000 + "}")
    with pytest.raises(BundleError, match="nested more deeply"):
        load_bundle(tmp_path)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "no such file"),
        (b"plain text, not a model", "not a TFLite flatbuffer"),
        (b"\x10\x00\x00\x00TFL3" + bytes(range(256)) * 4, "damaged TFLite flatbuffer"),
    ],
    ids=["missing", "text", "garbage"],
)
def test_a_bad_face_detector_is_refused_before_any_work(
    tmp_path: Path,
    checkpoints: list[Path],
    capsys: pytest.CaptureFixture[str],
    no_expensive_steps: list[str],
    content: bytes | None,
    message: str,
) -> None:
    detector = tmp_path / "detector.tflite"
    if content is not None:
        detector.write_bytes(content)
    started = time.perf_counter()
    line = one_error(
        ["export", str(checkpoints[0]), "-o", str(tmp_path / "b"), "--face-detector", str(detector)], capsys
    )
    assert message in line and time.perf_counter() - started < 30 and not no_expensive_steps
    assert not (tmp_path / "b").exists()


def test_opset_outside_the_supported_range(
    tmp_path: Path, checkpoints: list[Path], capsys: pytest.CaptureFixture[str], no_expensive_steps: list[str]
) -> None:
    import onnx

    newest = onnx.defs.onnx_opset_version()
    for opset in ("13", str(newest + 1)):
        line = one_error(["export", str(checkpoints[0]), "-o", str(tmp_path / "b"), "--opset", opset], capsys)
        assert f"--opset must be between 17 and {newest}" in line
    assert not no_expensive_steps


def test_bundles_get_the_umask_modes(tiny_bundle: Path) -> None:
    from edgeaff.runtime.files import current_umask

    mask = current_umask()
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in [tiny_bundle, *tiny_bundle.iterdir()]}
    assert modes.pop(tiny_bundle.name) == 0o777 & ~mask  # mkdtemp would give 0700
    assert modes and set(modes.values()) == {0o666 & ~mask}, modes
    assert os.access(tiny_bundle / "manifest.json", os.R_OK)
