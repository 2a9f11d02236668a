"""Reconnecting live sources at the source level, with scripted cameras: gaps, the joined timeline, backoff, giving
up, and the audio rule across sessions (the real RTSP server is in ``test_rtsp_reconnect.py``)."""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from synthetic_media import write_video

from edgeaff.runtime.errors import InvalidInputError
from edgeaff.runtime.io.camera import CaptureSource
from edgeaff.runtime.io.live_reader import LiveReader, reader_timeout
from edgeaff.runtime.io.network import NetworkStreamSource
from edgeaff.runtime.io.open import open_source
from edgeaff.runtime.io.reconnect import Outage, Timeline
from edgeaff.runtime.io.sources import (
    AudioChunk,
    GapReason,
    LiveSource,
    ReconnectPolicy,
    SourceGap,
    SourceKind,
    SourceTimeoutError,
    VideoFrame,
    parse_reconnect,
)

FPS = 50.0


class ScriptedCamera:
    """A capture object: ``frames`` frames every ``interval_s``, then ``then``: ``fail`` (read returns False) or
    ``late`` (one more frame after ``late_s``, then failing reads)."""

    def __init__(self, frames: int, *, then: str = "fail", interval_s: float = 0.01, late_s: float = 0.0) -> None:
        self.frames, self.then, self.interval_s, self.late_s = frames, then, interval_s, late_s
        self.reads = 0
        self.released = 0

    def isOpened(self) -> bool:  # noqa: N802 - OpenCV's name
        return True

    def get(self, prop: int) -> float:
        return FPS if prop == 5 else 0.0  # CAP_PROP_FPS

    def read(self) -> tuple[bool, np.ndarray | None]:
        self.reads += 1
        if self.reads <= self.frames:
            time.sleep(self.interval_s)
            return True, np.full((4, 6, 3), self.reads, np.uint8)
        if self.then == "late" and self.reads == self.frames + 1:
            time.sleep(self.late_s)
            return True, np.full((4, 6, 3), 255, np.uint8)
        return False, None

    def release(self) -> None:
        self.released += 1


class ClosedCamera(ScriptedCamera):
    """A camera that cannot be opened (not plugged in yet)."""

    def __init__(self) -> None:
        super().__init__(0)

    def isOpened(self) -> bool:  # noqa: N802 - OpenCV's name
        return False


class Opener:
    """Hands out the scripted cameras in turn (closed ones once the script is used up) and notes when."""

    def __init__(self, script: list[ScriptedCamera]) -> None:
        self.script = script
        self.opened: list[ScriptedCamera] = []
        self.times: list[float] = []

    def __call__(self) -> ScriptedCamera:
        self.times.append(time.perf_counter())
        camera = self.script.pop(0) if self.script else ClosedCamera()
        self.opened.append(camera)
        return camera


def _read_all(source: CaptureSource) -> tuple[list[VideoFrame | SourceGap], SourceTimeoutError | None, float]:
    """Items until the end or the give-up, and when the iteration ended."""
    items: list[VideoFrame | SourceGap] = []
    error = None
    with source:
        try:
            for item in source:
                assert isinstance(item, (VideoFrame, SourceGap))  # a camera has no audio
                items.append(item)
        except SourceTimeoutError as exc:
            error = exc
    return items, error, time.perf_counter()


def _segments(items: list[VideoFrame | SourceGap]) -> list[list[VideoFrame]]:
    runs: list[list[VideoFrame]] = [[]]
    for item in items:
        if isinstance(item, SourceGap):
            runs.append([])
        else:
            runs[-1].append(item)
    return runs


def _source(opener: Opener, policy: ReconnectPolicy | None, timeout_s: float = 5.0) -> CaptureSource:
    return CaptureSource(SourceKind.CAMERA, "0", uri="0", timeout_s=timeout_s, reconnect=policy, opener=opener)


def test_a_camera_that_drops_is_reopened_with_backoff_and_joined_on_one_timeline() -> None:
    policy = ReconnectPolicy(interval_s=0.05, backoff=2.0, max_interval_s=0.2, give_up_s=1.0)
    cameras = [ScriptedCamera(10), ClosedCamera(), ClosedCamera(), ScriptedCamera(10), ScriptedCamera(5)]
    opener = Opener(list(cameras))
    source = _source(opener, policy)
    assert isinstance(source, LiveSource)
    items, error, ended = _read_all(source)

    runs = _segments(items)
    assert [len(run) for run in runs] == [10, 10, 5]
    gaps = [item for item in items if isinstance(item, SourceGap)]
    assert [gap.attempts for gap in gaps] == [3, 1]  # two closed cameras, then the one that delivered
    assert all(gap.reason is GapReason.FAILED for gap in gaps)
    frames = [item for item in items if isinstance(item, VideoFrame)]
    for gap, before, after in zip(gaps, runs, runs[1:], strict=False):
        # the gap lies between the last frame before the drop and the first after it, at the frames' own times
        assert gap.start_s == before[-1].t_s and gap.end_s == after[0].t_s
        assert after[0].index == before[-1].index + gap.lost_frames + 1
        assert gap.lost_frames == round(gap.duration_s * FPS) - 1
    # waits before the three attempts of the first outage: 0.05, 0.1, 0.2 s (doubling, capped)
    first_outage = np.diff(opener.times[:4])
    assert first_outage[0] >= 0.05 and first_outage[1] >= 0.1 and first_outage[2] >= 0.2
    assert gaps[0].duration_s >= 0.35
    # the camera rule survives the reconnections: time = arrival since the very first frame
    assert [f.t_s for f in frames] == pytest.approx([f.arrival - frames[0].arrival for f in frames], abs=1e-9)
    assert all(b.t_s > a.t_s and b.index > a.index for a, b in itertools.pairwise(frames))
    # then nothing opens again: the source gives up 1 s after its last frame, once every frame was yielded
    assert error is not None and "gave up" in str(error) and "reconnect" in str(error)
    assert 1.0 <= ended - frames[-1].arrival < 2.0
    outages = source.outages
    assert outages.reconnects == 2 and outages.attempts == len(opener.opened) - 1
    assert outages.lost_s == pytest.approx(sum(g.duration_s for g in gaps))
    assert outages.lost_frames == sum(g.lost_frames for g in gaps)
    assert all(camera.released == 1 for camera in opener.opened)  # every capture released once, none leaked
    assert not any(t.name.startswith("edgeaff-source") for t in threading.enumerate())


def test_a_late_frame_is_a_stall_and_is_not_delivered() -> None:
    policy = ReconnectPolicy(interval_s=0.05, give_up_s=2.0)
    opener = Opener([ScriptedCamera(6, then="late", late_s=0.5), ScriptedCamera(4), ClosedCamera()])
    items, error, _ = _read_all(_source(opener, policy, timeout_s=0.3))
    frames = [item for item in items if isinstance(item, VideoFrame)]
    gaps = [item for item in items if isinstance(item, SourceGap)]
    assert len(frames) == 10 and not any((f.image == 255).all() for f in frames)  # the stale late frame is dropped
    assert len(gaps) == 1 and gaps[0].reason is GapReason.STALLED and gaps[0].duration_s >= 0.5
    assert error is not None


def test_the_attempts_limit_ends_the_source_before_the_give_up_time() -> None:
    policy = ReconnectPolicy(attempts=2, interval_s=0.05, backoff=1.0, give_up_s=60.0)
    opener = Opener([ScriptedCamera(5)])
    started = time.perf_counter()
    items, error, ended = _read_all(_source(opener, policy))
    assert len(items) == 5 and len(opener.opened) == 3  # the first camera, then two attempts
    assert error is not None and "2 reconnection attempts" in str(error) and ended - started < 5.0


def test_without_a_policy_the_first_drop_ends_the_source_as_before() -> None:
    opener = Opener([ScriptedCamera(7), ScriptedCamera(7)])
    items, error, _ = _read_all(_source(opener, None))
    assert len(items) == 7 and error is None and len(opener.opened) == 1
    assert _source(opener, None).outages.reconnects == 0


def _frame(index: int, t_s: float, arrival: float) -> VideoFrame:
    return VideoFrame(index, t_s, np.zeros((2, 2, 3), np.uint8), arrival)


def _tone(start: int, count: int) -> np.ndarray:
    """Recognisable samples: sample n of a session is (n + start + 1) / 1e6."""
    return ((np.arange(count) + start + 1) / 1e6).astype(np.float32)


def _join(timeline: Timeline, items: list[VideoFrame | AudioChunk], outage: Outage | None = None) -> list:
    out = []
    for item in items:
        out.extend(timeline.add(item, outage=outage if isinstance(item, VideoFrame) else None))
        if isinstance(item, VideoFrame):
            outage = None
    return out


@pytest.mark.parametrize("late_audio", [False, True])
def test_audio_is_realigned_to_the_first_frame_after_a_gap(late_audio: bool) -> None:
    """Sample n of the joined audio is at n / rate s, gaps filled with silence, overlaps cut (never backwards)."""
    rate, fps = 1000, 10.0
    timeline = Timeline(fps=fps, sample_rate=rate, audio=True)
    # session 1: frames at 0 .. 0.9 s, arriving in real time from t=100; audio 0 .. 1.2 s (or only 0 .. 0.5 s)
    first_audio = 500 if late_audio else 1200
    session1: list[VideoFrame | AudioChunk] = [_frame(i, i / fps, 100 + i / fps) for i in range(10)]
    session1.insert(1, AudioChunk(_tone(0, first_audio)))
    out = _join(timeline, session1)
    # session 2 starts 2.32 s (wall clock) after the last frame; its audio sample 0 belongs with its first frame
    timeline.new_session()
    outage = Outage(GapReason.ENDED, "closed", since=100.9, attempts=2)
    session2: list[VideoFrame | AudioChunk] = [_frame(i, i / fps, 103.22 + i / fps) for i in range(5)]
    session2.insert(1, AudioChunk(_tone(10_000, 300)))
    session2.insert(3, AudioChunk(_tone(10_300, 200)))
    session2.append(AudioChunk(np.zeros(0, np.float32), final=True))
    session2.append(AudioChunk(_tone(0, 50)))  # after the end of the audio: ignored
    out += _join(timeline, session2, outage)

    gaps = [item for item in out if isinstance(item, SourceGap)]
    frames = [item for item in out if isinstance(item, VideoFrame)]
    assert len(gaps) == 1 and gaps[0].start_s == pytest.approx(0.9) and gaps[0].end_s == pytest.approx(3.22)
    assert gaps[0].attempts == 2 and gaps[0].lost_frames == 22
    assert [f.index for f in frames] == [*range(10), *range(32, 37)]
    assert [f.t_s for f in frames[10:]] == pytest.approx([3.22 + i / fps for i in range(5)])
    # independent placement: the session-2 samples start at round(3.22 * rate) on the audio timeline
    chunks = [item for item in out if isinstance(item, AudioChunk)]
    audio = np.concatenate([c.samples for c in chunks])
    expected = np.zeros(3220 + 500, np.float32)
    expected[:first_audio] = _tone(0, first_audio)
    expected[3220:] = _tone(10_000, 500)
    np.testing.assert_array_equal(audio, expected)
    assert max(len(c.samples) for c in chunks[:-1]) <= max(rate, first_audio, 300)  # silence comes in <= 1 s chunks
    assert chunks[-1].final and not chunks[-1].samples.size
    # the gap's silence comes with the gap, before the first frame after it, not with the new session's sound
    after_gap = out[out.index(gaps[0]) + 1 :]
    first_frame = next(i for i, item in enumerate(after_gap) if isinstance(item, VideoFrame))
    assert sum(len(item.samples) for item in after_gap[:first_frame]) == 3220 - first_audio


def test_audio_overlapping_what_was_delivered_is_cut() -> None:
    rate = 1000
    timeline = Timeline(fps=None, sample_rate=rate, audio=True)
    out = _join(timeline, [_frame(0, 0.0, 50.0), AudioChunk(_tone(0, 2000)), _frame(1, 0.5, 50.5)])
    timeline.new_session()
    outage = Outage(GapReason.STALLED, "silent", since=50.5)
    # the stream comes back 0.2 s (wall clock) later, but 2 s of audio were already delivered
    out += _join(timeline, [_frame(0, 0.0, 50.7), AudioChunk(_tone(7000, 1800)), AudioChunk(_tone(8800, 300))], outage)
    audio = np.concatenate([item.samples for item in out if isinstance(item, AudioChunk)])
    # session 2 audio sample 0 is at 0.7 s = sample 700; samples up to 2000 were delivered: 1300 are cut
    np.testing.assert_array_equal(audio, np.concatenate([_tone(0, 2000), _tone(7000 + 1300, 800)]))
    gap = next(item for item in out if isinstance(item, SourceGap))
    assert gap.lost_frames == 0 and gap.end_s == pytest.approx(0.7)  # no nominal rate: no frame estimate


def test_reconnect_policy_ranges_waits_and_command_line_form() -> None:
    policy = ReconnectPolicy()
    assert (policy.attempts, policy.interval_s, policy.backoff, policy.max_interval_s, policy.give_up_s) == (
        None, 0.5, 2.0, 8.0, 60.0,
    )  # fmt: skip
    assert [policy.wait_before(n) for n in range(1, 8)] == [0.5, 1.0, 2.0, 4.0, 8.0, 8.0, 8.0]
    assert policy.wait_before(10**9) == 8.0 and policy.allows(10**9)
    assert not ReconnectPolicy(attempts=3).allows(4)
    for bad in ({"attempts": 0}, {"attempts": True}, {"attempts": 2.5}, {"interval_s": 0}, {"backoff": 0.5},
                {"backoff": float("nan")}, {"max_interval_s": 0.1}, {"give_up_s": 0}, {"give_up_s": float("inf")},
                {"give_up_s": 10**6}):  # fmt: skip
        with pytest.raises(InvalidInputError):
            ReconnectPolicy(**bad)  # type: ignore[arg-type]
    assert parse_reconnect("off") is None and parse_reconnect("on") == ReconnectPolicy()
    assert parse_reconnect("give-up=30, interval=1,attempts=5 ,backoff=1.5,max-interval=4") == ReconnectPolicy(
        attempts=5, interval_s=1.0, backoff=1.5, max_interval_s=4.0, give_up_s=30.0
    )
    assert parse_reconnect("attempts=unlimited").attempts is None  # type: ignore[union-attr]
    for bad in ("sometimes", "retries=3", "interval=fast", "give-up=-1", "attempts=0"):
        with pytest.raises(InvalidInputError, match="reconnect"):
            parse_reconnect(bad)
    with pytest.raises(InvalidInputError, match="timeout must be in"):
        open_source("rtsp://127.0.0.1:9/x", timeout_s=0)
    assert reader_timeout(3.0, None) == 3.0 and reader_timeout(3.0, ReconnectPolicy(give_up_s=10)) > 16.0


def test_files_are_never_retried(tmp_path: Path) -> None:
    video = write_video(tmp_path / "v.mp4", n_frames=12)
    policy = ReconnectPolicy(interval_s=0.01, give_up_s=0.5)
    with open_source(video, reconnect=policy) as source:
        items = list(source)
    assert sum(isinstance(i, VideoFrame) for i in items) == 12 and not any(isinstance(i, SourceGap) for i in items)
    # the network reader on a stream with a duration (a file served over HTTP) ends at its end, as a file does
    with NetworkStreamSource(str(video), timeout_s=5, reconnect=policy) as stream:
        items = list(stream)
    assert not any(isinstance(i, SourceGap) for i in items) and stream.outages.attempts == 0
    assert sum(isinstance(i, VideoFrame) for i in items) + stream.dropped_frames == 12


def test_the_live_reader_never_drops_gaps() -> None:
    def burst(stopping: object) -> Iterator[VideoFrame | SourceGap]:
        for i in range(20):
            yield _frame(i, i / 30, time.perf_counter())
            if i % 5 == 4:
                yield SourceGap(i / 30, (i + 1) / 30, GapReason.ENDED, 1)

    reader = LiveReader(burst, timeout_s=5, what="cam", max_queued_frames=2)
    reader.start()
    time.sleep(0.3)  # the consumer is late: frames are dropped, gaps are not
    items = list(reader)
    assert sum(isinstance(i, SourceGap) for i in items) == 4 and reader.dropped_frames > 0
    assert not reader.alive
