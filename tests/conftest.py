"""Fixtures shared by the whole test suite: the RTSP server check for several test folders, and edgeaff's per-machine
cache kept out of the user's."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from rtsp_server import rtsp_server_problem
from system_needs import require_system


@pytest.fixture(scope="session")
def rtsp_server_available() -> None:
    """Skip when GStreamer's RTSP server cannot run here; in CI, which installs it (``.ci/run``), fail instead."""
    require_system(rtsp_server_problem())


@pytest.fixture(scope="session", autouse=True)
def private_cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """edgeaff's per-machine cache (engines, batch tuning) in a folder of this session, not the user's
    ``~/.cache/edgeaff``; CLI subprocesses inherit it. Tests that need their own set ``EDGEAFF_CACHE_DIR`` again."""
    previous = os.environ.get("EDGEAFF_CACHE_DIR")
    os.environ["EDGEAFF_CACHE_DIR"] = str(tmp_path_factory.mktemp("edgeaff-cache"))
    yield
    if previous is None:
        os.environ.pop("EDGEAFF_CACHE_DIR", None)
    else:
        os.environ["EDGEAFF_CACHE_DIR"] = previous
