"""The fixture of the tests that need GStreamer's RTSP server (``tools/rtsp_server.py``), shared by their folders."""

from __future__ import annotations

import os

import pytest
from rtsp_server import rtsp_server_problem


@pytest.fixture(scope="session")
def rtsp_server_available() -> None:
    """Skip when GStreamer's RTSP server cannot run here; in CI, which installs it (``.ci/run``), fail instead."""
    problem = rtsp_server_problem()
    if problem is not None:
        if os.environ.get("CI"):
            pytest.fail(problem)
        pytest.skip(problem)
