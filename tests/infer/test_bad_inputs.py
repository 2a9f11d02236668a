"""Bad inputs: one clear line, a non-zero exit, no traceback, and no result file that could pass for complete."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import numpy as np
import pytest
from face_scenes import background
from infer_support import TinyBundle, infer_files, read_csv, run_without_torch
from media_fixtures import face_frames, write_media

from edgeaff.cli import main
from edgeaff.runtime.io import camera as capture_source
from edgeaff.runtime.io.sources import SourceTimeoutError
from edgeaff.runtime.pipeline.features import FeatureStage

pytestmark = pytest.mark.slow  # end to end through the pipeline on the tiny bundle


@pytest.fixture(scope="module")
def short_video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("short") / "short.mp4"
    return write_media(path, face_frames(lambda i: True), count=20, rate=25)


def _refused(capsys: pytest.CaptureFixture[str], args: list[str], out: Path, *, code: int = 2) -> str:
    with pytest.raises(SystemExit) as exit_info:
        main([*args, "-o", str(out)])
    assert exit_info.value.code == code
    stderr = capsys.readouterr().err
    errors = [line for line in stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "Traceback" not in stderr, stderr
    assert not out.exists() or not [p for p in out.iterdir() if not p.name.startswith(".")]
    return errors[0]


def test_damaged_and_wrong_files(
    tiny_bundle: TinyBundle, short_video: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bundle = ["--bundle", str(tiny_bundle.path)]
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(short_video.read_bytes()[: short_video.stat().st_size // 2])
    assert "truncated" in _refused(capsys, ["infer", str(cut), *bundle], tmp_path / "o1")
    text = tmp_path / "report.mp4"
    text.write_text("this is not a video\n" * 50)
    assert "not an audio/video file" in _refused(capsys, ["infer", str(text), *bundle], tmp_path / "o2")
    missing = tmp_path / "nowhere.mp4"
    assert "source not found" in _refused(capsys, ["infer", str(missing), *bundle], tmp_path / "o3")
    folder = tmp_path / "faces"
    folder.mkdir()
    assert "numbered face images" in _refused(capsys, ["infer", str(folder), *bundle], tmp_path / "o4")


def test_bad_bundles(
    tiny_bundle: TinyBundle, short_video: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    message = _refused(capsys, ["infer", str(short_video), "--bundle", str(tmp_path / "none")], tmp_path / "o1")
    assert "not a complete bundle" in message
    other = tmp_path / "other"
    other.mkdir()
    manifest = json.loads((tiny_bundle.path / "manifest.json").read_text())
    (other / "manifest.json").write_text(json.dumps({**manifest, "schema_version": 99}))
    message = _refused(capsys, ["infer", str(short_video), "--bundle", str(other)], tmp_path / "o2")
    assert "schema version 99" in message


def test_bad_options(
    tiny_bundle: TinyBundle, short_video: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = ["infer", str(short_video), "--bundle", str(tiny_bundle.path)]
    assert "unknown precision 'fp8'" in _refused(capsys, [*run, "--precision", "fp8"], tmp_path / "o1")
    message = _refused(capsys, [*run, "--precision", "fp16"], tmp_path / "o2")
    assert "has no fp16 graphs" in message and "--fp16" in message
    assert "unknown backend 'cuda'" in _refused(capsys, [*run, "--backend", "cuda"], tmp_path / "o3")
    assert "unknown mode" in _refused(capsys, [*run, "--mode", "batch"], tmp_path / "o4")
    assert "needs --mode stream" in _refused(capsys, [*run, "--mode", "offline", "--live"], tmp_path / "o5")
    assert "exactly one" in _refused(capsys, ["infer", "--bundle", str(tiny_bundle.path)], tmp_path / "o6")
    # a reconnect policy is checked whatever the source (a file never reconnects, but a typo is still a typo)
    assert "'sometimes' is not a setting" in _refused(capsys, [*run, "--reconnect", "sometimes"], tmp_path / "o8")
    assert "--name '../x' must be a plain file-name stem" in _refused(capsys, [*run, "--name", "../x"], tmp_path / "o9")
    # a GPU backend on a machine without one: refused, never run on the CPU instead
    assert "CUDAExecutionProvider" in _refused(capsys, [*run, "--backend", "ort-cuda"], tmp_path / "o7")


def test_trt_without_tensorrt_names_the_extra(tiny_bundle: TinyBundle, short_video: Path, tmp_path: Path) -> None:
    pytest.importorskip("onnxruntime")
    try:
        import tensorrt  # noqa: F401

        pytest.skip("TensorRT is installed here")
    except ImportError:
        pass
    out = tmp_path / "o"
    result = run_without_torch(
        ["infer", str(short_video), "--bundle", str(tiny_bundle.path), "--backend", "trt", "-o", str(out)]
    )
    assert result.returncode == 3 and "Traceback" not in result.stderr
    assert "tensorrt" in result.stderr.lower()
    assert not out.exists() or not list(out.iterdir())


def test_an_interrupted_file_run_leaves_no_results(
    tiny_bundle: TinyBundle, short_video: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    original = FeatureStage.add_frame

    def interrupt_at_ten(self: FeatureStage, frame: object) -> None:
        if getattr(frame, "index", 0) == 10:
            raise KeyboardInterrupt
        original(self, frame)  # type: ignore[arg-type]

    monkeypatch.setattr(FeatureStage, "add_frame", interrupt_at_ten)
    out = tmp_path / "o"
    with pytest.raises(KeyboardInterrupt):
        infer_files(short_video, tiny_bundle.path, out)
    assert not out.exists() or not list(out.iterdir())


class SilentCamera:
    """A capture object that delivers ``frames`` frames at 100 fps, then stays open and silent (a stalled camera)."""

    def __init__(self, frames: int = 25) -> None:
        self.reads = 0
        self.frames = frames

    def isOpened(self) -> bool:  # noqa: N802 - OpenCV's name
        return True

    def get(self, prop: int) -> float:
        return 0.0

    def read(self) -> tuple[bool, np.ndarray | None]:
        self.reads += 1
        if self.reads > self.frames:
            time.sleep(3.0)
            return False, None
        time.sleep(0.01)
        return True, background(120, 160, seed=self.reads % 3)

    def release(self) -> None:
        pass


def test_a_silent_camera_times_out_after_writing_what_it_got(
    tiny_bundle: TinyBundle, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(capture_source.CaptureSource, "_open", lambda self: SilentCamera())
    out = tmp_path / "o"
    with pytest.raises(SourceTimeoutError, match="time-out") as info:
        infer_files("0", tiny_bundle.path, out, timeout_s=0.5)
    summary = json.loads((out / "camera0.json").read_text())
    header, rows = read_csv(out / "camera0.csv")
    # a live source drops the oldest queued frames when the pipeline falls behind: every frame is either a row
    # or counted as dropped
    assert len(rows) + summary["source"]["dropped_frames"] == 25 and len(rows) >= 8
    assert info.value.exit_code != 0 and f"results of the {len(rows)} frames" in str(info.value)
    assert summary["ended"] == "timeout" and summary["mode"] == "stream" and summary["source"]["live"]
    assert "cameras are read without audio" in summary["source"]["audio_note"]
    assert header[-1] == "latency_ms" and (rows[:, 5] == 0).all()


def test_max_frames_stops_a_live_source(
    tiny_bundle: TinyBundle, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(capture_source.CaptureSource, "_open", lambda self: SilentCamera(frames=1000))
    result = infer_files("/dev/video7", tiny_bundle.path, tmp_path / "o", max_frames=12)
    assert result.summary["ended"] == "max_frames" and result.summary["frames"] == 12
    shutil.rmtree(tmp_path / "o")
