"""A real RTSP server (GStreamer's ``gst-rtsp-server``, ``tools/rtsp_server.py``) on loopback, killed and restarted
three times while ``open_source`` reads it with a reconnect policy."""

from __future__ import annotations

import itertools
import os
import threading
import time

import numpy as np
import pytest
from rtsp_server import RtspTestServer

from edgeaff.runtime.io.open import open_source
from edgeaff.runtime.io.sources import (
    AudioChunk,
    GapReason,
    ReconnectPolicy,
    SourceGap,
    SourceTimeoutError,
    VideoFrame,
)

pytestmark = pytest.mark.slow

RATE = 16000
FRAMES_PER_RUN = 30  # frames read between two server restarts (1 s at 30 fps)
DOWN_S = 1.0  # how long the server stays down


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def source_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith("edgeaff-source")]


def test_a_stream_whose_server_restarts_three_times(rtsp_server_available: None) -> None:
    fds_before, threads_before = open_fds(), threading.active_count()
    policy = ReconnectPolicy(interval_s=0.2, backoff=2.0, max_interval_s=1.0, give_up_s=8.0)
    server = RtspTestServer(fps=30, size=(160, 120), audio=True)
    restarts: list[threading.Timer] = []
    items: list[VideoFrame | AudioChunk | SourceGap] = []
    error: SourceTimeoutError | None = None
    killed_at: list[float] = []
    with server:
        source = open_source(server.url, timeout_s=2.0, reconnect=policy)
        with source:
            assert source.info.has_audio and source.info.fps == 30
            run_frames = 0
            try:
                for item in source:
                    items.append(item)
                    if isinstance(item, SourceGap):
                        run_frames = 0
                    elif isinstance(item, VideoFrame):
                        run_frames += 1
                        if run_frames == FRAMES_PER_RUN and len(killed_at) < 4:
                            server.stop()  # every client drops at once
                            killed_at.append(time.perf_counter())
                            if len(killed_at) <= 3:
                                restart = threading.Timer(DOWN_S, server.start)
                                restart.start()
                                restarts.append(restart)
            except SourceTimeoutError as exc:
                error = exc
            failed_at = time.perf_counter()
            outages, dropped = source.outages, source.dropped_frames
        for restart in restarts:
            restart.join()

    frames = [i for i in items if isinstance(i, VideoFrame)]
    gaps = [i for i in items if isinstance(i, SourceGap)]
    # frames keep coming after each restart, with exactly one gap per outage, in its place
    assert server.starts == 4 and len(killed_at) == 4 and len(gaps) == 3
    runs: list[list[VideoFrame]] = [[]]
    for item in items:
        if isinstance(item, SourceGap):
            runs.append([])
        elif isinstance(item, VideoFrame):
            runs[-1].append(item)
    assert [len(run) >= FRAMES_PER_RUN for run in runs] == [True] * 4
    for gap, before, after in zip(gaps, runs, runs[1:], strict=False):
        assert gap.start_s == before[-1].t_s and gap.end_s == after[0].t_s
        assert gap.reason in (GapReason.ENDED, GapReason.FAILED) and gap.attempts >= 1
        assert DOWN_S <= gap.duration_s < policy.give_up_s + 4.0  # down 1 s, plus reconnecting (backoff, open, probe)
        assert after[0].index == before[-1].index + gap.lost_frames + 1
        assert gap.lost_frames == round(gap.duration_s * 30) - 1
    # one timeline: times and indices increase across the restarts; every number is a frame, dropped or lost
    assert frames[0].t_s == 0.0 and frames[0].index == 0
    assert all(b.t_s >= a.t_s and b.index > a.index for a, b in itertools.pairwise(frames))
    assert frames[-1].index + 1 == len(frames) + dropped + sum(g.lost_frames for g in gaps)
    assert outages.reconnects == 3 and outages.lost_frames == sum(g.lost_frames for g in gaps)
    assert outages.attempts >= 3 and outages.lost_s == pytest.approx(sum(g.duration_s for g in gaps))
    # the audio: one sample per 1/16000 s of the timeline, silence inside the gaps, the tone after each restart
    audio = np.concatenate([i.samples for i in items if isinstance(i, AudioChunk)])
    assert abs(len(audio) / RATE - frames[-1].t_s) < 1.0
    for gap in gaps:
        middle = (gap.start_s + gap.end_s) / 2
        assert not audio[round((middle - 0.2) * RATE) : round((middle + 0.2) * RATE)].any()
    for run in runs:
        at = run[0].t_s + 0.5
        tone = audio[round(at * RATE) : round((at + 0.2) * RATE)]
        assert tone.size and float(np.sqrt(np.mean(tone**2))) > 0.1
    # the final stop: the source gives up 8 s after its last frame, once every frame was yielded
    assert error is not None and "gave up" in str(error)
    assert isinstance(items[-1], (VideoFrame, AudioChunk))
    assert policy.give_up_s <= failed_at - frames[-1].arrival < policy.give_up_s + 3.0
    # nothing leaks: the reader thread is joined and every container closed
    assert source_threads() == [] and threading.active_count() == threads_before
    assert open_fds() == fds_before
