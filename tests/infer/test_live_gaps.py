"""A live source that drops and reconnects, through the pipeline: one row per frame read, the frame after a gap
flagged, the temporal state started afresh there, the gap in the summary, and the results written at the end."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from infer_support import TinyBundle, read_csv
from media_fixtures import face_frames

from edgeaff.runtime import (
    Outputs,
    Pipeline,
    Prediction,
    ReconnectPolicy,
    SourceKind,
    SourceTimeoutError,
    write_results,
)
from edgeaff.runtime.io.camera import CaptureSource

pytestmark = pytest.mark.slow  # end to end through the pipeline on the tiny bundle

FPS = 20.0
FIRST, SECOND = list(range(20)), list(range(100, 130))
POLICY = ReconnectPolicy(interval_s=0.05, backoff=1.0, max_interval_s=0.05, give_up_s=1.0)


class FaceCamera:
    """A capture object that serves the pictures of the test face numbered ``numbers``, then fails."""

    def __init__(self, numbers: list[int], *, opened: bool = True) -> None:
        self.picture = face_frames(lambda i: True)
        self.numbers, self.opened = numbers, opened
        self.reads = 0

    def isOpened(self) -> bool:  # noqa: N802 - OpenCV's name
        return self.opened

    def get(self, prop: int) -> float:
        return FPS if prop == 5 else 0.0  # CAP_PROP_FPS

    def read(self) -> tuple[bool, np.ndarray | None]:
        if self.reads >= len(self.numbers):
            return False, None
        time.sleep(1.0 / FPS)
        self.reads += 1
        return True, self.picture(self.numbers[self.reads - 1])[:, :, ::-1].copy()

    def release(self) -> None:
        pass


def _camera(script: list[FaceCamera]) -> CaptureSource:
    def opener() -> FaceCamera:
        return script.pop(0) if script else FaceCamera([], opened=False)

    return CaptureSource(SourceKind.CAMERA, "0", uri="0", timeout_s=2.0, reconnect=POLICY, opener=opener)


def _collect(run: Any) -> list[Prediction]:
    """Every prediction of a live run whose camera is gone at the end (the run then times out, as it should)."""
    found: list[Prediction] = []
    with pytest.raises(SourceTimeoutError):
        for prediction in run:
            found.append(prediction)
    return found


def test_gaps_are_marked_and_the_stream_starts_afresh_after_them(tiny_bundle: TinyBundle, tmp_path: Path) -> None:
    with Pipeline(tiny_bundle.path, mode="stream", per_model=True) as pipeline:
        with pytest.raises(SourceTimeoutError):  # the camera never comes back after the second session
            write_results(
                pipeline.run(_camera([FaceCamera(FIRST), FaceCamera(SECOND)])), tmp_path / "gap",
                outputs=Outputs(per_model=True), echo=lambda _: None,
            )  # fmt: skip
        after = _collect(pipeline.run(_camera([FaceCamera(SECOND)])))
        joined = _collect(pipeline.run(_camera([FaceCamera(FIRST + SECOND)])))  # the same pictures without a gap
    summary = json.loads((tmp_path / "gap" / "camera0.json").read_text())
    assert summary["source"]["dropped_frames"] == 0, "the pipeline fell behind the camera: frames were dropped"
    header, rows = read_csv(tmp_path / "gap" / "camera0.csv")
    assert header[-2:] == ["gap", "latency_ms"] and len(rows) == 50
    gap_column = header.index("gap")
    assert np.flatnonzero(rows[:, gap_column]).tolist() == [20]  # the first frame of the second session
    assert rows[20, 0] > rows[19, 0] + 1 and (np.diff(rows[:, 1]) > 0).all()  # numbers skipped, time goes on
    [gap] = summary["gaps"]
    assert gap["start_s"] == pytest.approx(rows[19, 1]) and gap["end_s"] == pytest.approx(rows[20, 1])
    assert summary["source"]["outages"]["reconnects"] == 1 and summary["ended"] == "timeout"
    # after the gap, each model's value is what a stream starting at that frame gives: the state was reset
    _, models = read_csv(tmp_path / "gap" / "camera0.models.csv")
    assert len(after) == 30 and after[0].gap is False
    fresh = np.stack([p.models for p in after])  # type: ignore[misc]
    assert np.abs(models[20:, 2:] - fresh).max() <= 1e-5
    # without the gap the same pictures carry the first session's history: the reset is what made them equal
    carried = np.stack([p.models for p in joined[20:]])  # type: ignore[misc]
    assert not any(p.gap for p in joined) and np.abs(carried - fresh).max() > 1e-3
