"""edgeaff infer's pipeline on a real RTSP server (GStreamer's, ``tools/rtsp_server.py``) that is killed and restarted
three times: one row per frame read, each gap marked on the frame after it, and the run ends normally (at the end
of its source, which a script ends after the fourth session)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from infer_support import TinyBundle, read_csv
from rtsp_server import RtspTestServer

from edgeaff.runtime import Outputs, Pipeline, ReconnectPolicy, SourceGap, VideoFrame, open_source, write_results

pytestmark = pytest.mark.slow

FRAMES_PER_SESSION = 30  # frames read between two kills of the server (1 s at 30 fps)
DOWN_S = 1.0


class Scripted:
    """The RTSP source, with a script: after every FRAMES_PER_SESSION frames of a session the server is killed (and
    started again DOWN_S later), three times; the fourth session ends the source after as many frames (the run then
    ends normally, at the end of its source)."""

    def __init__(self, inner: Any, server: RtspTestServer) -> None:
        self.inner, self.server = inner, server
        self.kills = 0
        self.timers: list[threading.Timer] = []

    @property
    def info(self) -> Any:
        return self.inner.info

    @property
    def dropped_frames(self) -> int:
        return int(self.inner.dropped_frames)

    @property
    def outages(self) -> Any:
        return self.inner.outages

    def __enter__(self) -> Scripted:
        self.inner.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.inner.__exit__(*exc)

    def __iter__(self) -> Iterator[Any]:
        in_session = 0
        for item in self.inner:
            yield item
            if isinstance(item, SourceGap):
                in_session = 0
            elif isinstance(item, VideoFrame):
                in_session += 1
                if in_session == FRAMES_PER_SESSION:
                    if self.kills == 3:
                        return
                    self.server.stop()
                    self.kills += 1
                    timer = threading.Timer(DOWN_S, self.server.start)
                    timer.start()
                    self.timers.append(timer)


def test_a_stream_whose_server_restarts_three_times_through_the_pipeline(
    rtsp_server_available: None, tiny_bundle: TinyBundle, tmp_path: Path
) -> None:
    policy = ReconnectPolicy(interval_s=0.2, backoff=2.0, max_interval_s=1.0, give_up_s=10.0)
    server = RtspTestServer(fps=30, size=(160, 120), audio=True)
    with server, Pipeline(tiny_bundle.path, mode="stream") as pipeline:
        source = Scripted(open_source(server.url, timeout_s=2.0, reconnect=policy), server)
        result = write_results(pipeline.run(source), tmp_path, name="camera", echo=lambda _: None, outputs=Outputs())
        for timer in source.timers:
            timer.join()
    summary = json.loads((tmp_path / "camera.json").read_text())
    header, rows = read_csv(tmp_path / "camera.csv")
    assert result.summary["ended"] == summary["ended"] == "end_of_stream" and source.kills == 3
    # one row per frame read (frames the reader had to drop when the machine fell behind are counted, not written);
    # a session may deliver a few frames more than the script's count before its end is noticed
    assert len(rows) == summary["frames"] >= 4 * FRAMES_PER_SESSION
    gap = rows[:, header.index("gap")]
    assert int(gap.sum()) == 3 and len(summary["gaps"]) == 3 and summary["source"]["outages"]["reconnects"] == 3
    for row, entry in zip(np.flatnonzero(gap), summary["gaps"], strict=True):
        # the flagged row is the first written after the gap (the first frames after it too may have been dropped
        # when the machine fell behind; then it is later than the gap's end), the row before it is before the gap
        assert rows[row - 1, 1] < entry["end_s"] <= rows[row, 1] + 1e-6 and entry["start_s"] < entry["end_s"]
        assert entry["duration_s"] >= DOWN_S and rows[row, 0] > rows[row - 1, 0] + 1  # lost numbers are skipped
    assert (np.diff(rows[:, 1]) > 0).all() and (np.diff(rows[:, 0]) > 0).all()  # one timeline across sessions
    assert np.isfinite(rows[:, 2:4]).all() and rows[:, header.index("audio")].mean() > 0.5  # the tone was heard
