"""Fixtures of the live-source tests."""

from rtsp_fixture import rtsp_server_available

__all__ = ["rtsp_server_available"]
