"""benchmarks/live_speed.py: a file replayed as a camera delivers it."""

from __future__ import annotations

import dataclasses
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

import live_speed  # a script next to the other benchmarks, importable once that folder is on the path

from edgeaff.runtime import AudioChunk, VideoFrame

FPS = 30.0


@dataclasses.dataclass(frozen=True)
class Info:
    """The fields of SourceInfo that PacedSource changes."""

    live: bool = False
    frame_count: int | None = 12


class FileLikeSource:
    """What a media file source yields: 0.5 s of audio ahead of the frames (a real file's is 1.25 s)."""

    def __init__(self, frames: int) -> None:
        self.frames = frames
        self.info = Info()

    def __enter__(self) -> FileLikeSource:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def __iter__(self) -> Iterator[object]:
        chunk = 800  # 50 ms at 16 kHz
        sent = 0
        for index in range(self.frames):
            while sent / 16000 < index / FPS + 0.5:
                yield AudioChunk(np.zeros(chunk, np.float32))
                sent += chunk
            yield VideoFrame(index, index / FPS, np.zeros((2, 2, 3), np.uint8), 0.0)


def test_frames_and_audio_are_released_at_their_capture_times(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(live_speed, "open_source", lambda path: FileLikeSource(frames=12))
    released: list[tuple[str, float, float]] = []  # kind, capture time in the source, seconds since the start
    audio_s = 0.0
    source = live_speed.PacedSource(Path("talk.mp4"), speed=2.0)
    with source:
        assert source.info.live and source.info.frame_count is None  # it presents itself as a live source
        start = time.perf_counter()
        for item in source:
            now = time.perf_counter() - start
            if isinstance(item, VideoFrame):
                released.append(("frame", item.t_s, now))
                assert abs(item.arrival - time.perf_counter()) < 0.05  # arrival: when it was released
            elif isinstance(item, AudioChunk):
                audio_s += item.samples.size / 16000
                released.append(("audio", audio_s, now))
    frames = [r for r in released if r[0] == "frame"]
    assert source.released == len(frames) == 12
    # in capture order: no audio from after a frame's time comes before that frame (the file sends it 0.5 s early)
    captured = [r[1] for r in released]
    assert captured == sorted(captured)
    # and at the replay speed: frame 11 (0.367 s in the file) about 0.18 s after frame 0 at speed 2
    assert frames[-1][2] - frames[0][2] == pytest.approx(11 / FPS / 2.0, abs=0.04)
