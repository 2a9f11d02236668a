"""Soak, test-sized: a real RTSP server killed and restarted every 5 s for 40 s while a source reads it at 120 fps
(four times a camera's rate): memory, open file descriptors and threads stay flat (``tools/live_soak.py``; the long
variant is ``benchmarks/soak.py``)."""

from __future__ import annotations

import pytest
from live_soak import SoakSettings, run_soak

pytestmark = pytest.mark.slow


def test_memory_and_descriptors_stay_flat_across_restarts(rtsp_server_available: None) -> None:
    result = run_soak(SoakSettings(duration_s=40.0, restart_every_s=5.0, down_s=1.0, fps=120, sample_every_s=1.0))

    assert result.ended == "duration" and result.restarts >= 5
    assert result.restarts - 1 <= result.gaps <= result.restarts  # the last restart may still be reconnecting
    assert result.frames > 120 * 10 and result.outages.reconnects == result.gaps
    steady = [sample for sample in result.samples if sample.gaps >= 1]  # after the first reconnection
    assert len(steady) >= 15
    third = len(steady) // 3
    early = sum(s.rss_mib for s in steady[:third]) / third
    late = sum(s.rss_mib for s in steady[-third:]) / third
    assert late - early < 4.0, [s.rss_mib for s in steady]  # a leak per reconnection or per frame would show
    # while the stream is up the same descriptors and threads are open whatever the number of reconnections
    assert {s.fds for s in result.samples} == {result.samples[0].fds}
    assert {s.threads for s in result.samples} == {result.before.threads + 2}  # the reader and the restarter
    assert result.after.fds == result.before.fds and result.after.threads == result.before.threads
    # audio and video do not drift apart across the restarts: at the end the two timelines still agree
    assert abs(result.after.audio_s - result.after.video_s) < 0.5
