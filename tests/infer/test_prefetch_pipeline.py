"""Reading ahead in a background thread gives the same predictions; stream mode batches the frames that wait."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
from infer_support import FACE_VIDEO_FRAMES, TinyBundle

from edgeaff.runtime import Mode, Pipeline, Prediction, StageTimer, VideoFrame, load_bundle, open_source
from edgeaff.runtime.pipeline import tuning
from edgeaff.runtime.pipeline.processor import Notes

pytestmark = pytest.mark.slow  # needs the exported tiny bundle


def _run(
    bundle: Path, video: Path, *, max_frames: int | None = None, **settings: object
) -> tuple[list[Prediction], StageTimer, dict]:
    timer = StageTimer()
    with Pipeline(load_bundle(bundle), per_model=True, **settings) as pipeline:
        run = pipeline.run(video, timer=timer, max_frames=max_frames)
        predictions = list(run)
        report = run.report()
    return predictions, timer, report


def _values(predictions: list[Prediction]) -> list[dict]:
    return [{k: v for k, v in dataclasses.asdict(p).items() if k not in ("latency_ms", "models")} for p in predictions]


@pytest.mark.parametrize("mode", ["offline", "stream"])
def test_prefetching_gives_identical_predictions(
    tiny_bundle: TinyBundle, face_video: Path, mode: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the first offline run measures the batch and caches it (in the session's cache folder), the second reads it:
    # both runs use the same batch however busy the machine is
    monkeypatch.setattr(tuning, "quiet_machine", lambda: True)
    plain, plain_timer, plain_report = _run(tiny_bundle.path, face_video, mode=mode, prefetch=False)
    ahead, ahead_timer, ahead_report = _run(tiny_bundle.path, face_video, mode=mode, prefetch=True)
    assert (plain_report["batches"]["prefetch"], ahead_report["batches"]["prefetch"]) == (False, True)
    batch = ahead_report["batches"]["visual"]
    assert batch == plain_report["batches"]["visual"] == (16 if mode == "stream" else batch)
    assert len(ahead) == len(plain) == FACE_VIDEO_FRAMES
    assert _values(ahead) == _values(plain)
    np.testing.assert_array_equal(np.stack([p.models for p in ahead]), np.stack([p.models for p in plain]))  # type: ignore[misc]
    for timer in (plain_timer, ahead_timer):
        summary = timer.summary()
        assert summary["read"]["calls"] == summary["face"]["calls"] == FACE_VIDEO_FRAMES
        # a file's frames are all there to be read: full batches in both modes (offline: the tuned size; stream: 16),
        # the same on every run
        assert summary["visual"]["calls"] == -(-FACE_VIDEO_FRAMES // batch)


def test_prefetching_reads_no_frame_past_max_frames(tiny_bundle: TinyBundle, face_video: Path) -> None:
    predictions, timer, _ = _run(tiny_bundle.path, face_video, mode="stream", prefetch=True, max_frames=40)
    assert len(predictions) == 40 and [p.frame for p in predictions] == list(range(40))
    assert timer.summary()["read"]["calls"] == timer.summary()["face"]["calls"] == 40


def test_stream_batches_equal_one_frame_per_call(tiny_bundle: TinyBundle, face_video: Path) -> None:
    batched, batched_timer, report = _run(tiny_bundle.path, face_video, mode="stream")
    single, single_timer, _ = _run(tiny_bundle.path, face_video, mode="stream", batch=1)
    assert report["batches"]["adaptive"] is True
    assert single_timer.summary()["visual"]["calls"] == FACE_VIDEO_FRAMES
    assert batched_timer.summary()["visual"]["calls"] < FACE_VIDEO_FRAMES
    for a, b in zip(batched, single, strict=True):
        assert (a.frame, a.face, a.audio) == (b.frame, b.face, b.audio)
        np.testing.assert_allclose(a.models, b.models, atol=1e-5)  # type: ignore[arg-type]
        assert a.valence == pytest.approx(b.valence, abs=1e-5) and a.arousal == pytest.approx(b.arousal, abs=1e-5)


def test_stream_mode_embeds_what_has_arrived_without_waiting(tiny_bundle: TinyBundle, face_video: Path) -> None:
    """A live source's frames: embedded together while more are waiting, at once when none is."""
    with open_source(face_video) as source:
        frames = [item for item in source if isinstance(item, VideoFrame)][:7]
        info = dataclasses.replace(source.info, live=True)
    with Pipeline(load_bundle(tiny_bundle.path), mode="stream") as pipeline:
        timer = StageTimer()
        processor = pipeline.processor(info, mode=Mode.STREAM, by_index=False, timer=timer, notes=Notes(None))
        for index, frame in enumerate(frames):
            processor.add_frame(frame, more=index not in (2, 3))  # nothing waiting after frames 2 and 3
        calls = timer.summary()["visual"]
        assert (calls["calls"], calls["frames"]) == (2, 4)  # frames 0-2 together, then frame 3 alone
        list(processor.finish())
        assert timer.summary()["visual"]["frames"] == 7  # the rest at the end
