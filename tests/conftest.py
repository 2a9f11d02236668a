"""Fixtures shared by several test folders."""

import pytest
from rtsp_server import rtsp_server_problem
from system_needs import require_system


@pytest.fixture(scope="session")
def rtsp_server_available() -> None:
    """Skip when GStreamer's RTSP server cannot run here; in CI, which installs it (``.ci/run``), fail instead."""
    require_system(rtsp_server_problem())
