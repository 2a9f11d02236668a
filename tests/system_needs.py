"""Tests that need a system program (GStreamer's RTSP server, Mosquitto, Chromium): skipped where it is missing,
failed in CI, whose ``.ci/run`` installs every one of them."""

from __future__ import annotations

import os

import pytest


def require_system(problem: str | None) -> None:
    """Skip the test when ``problem`` says a system program is missing; in CI (``CI`` set), fail instead."""
    if problem is None:
        return
    if os.environ.get("CI"):
        pytest.fail(problem)
    pytest.skip(problem)
