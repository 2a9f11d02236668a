"""Fixtures of the runtime tests; they live in ``infer_support`` (and ``rtsp_fixture``) so that test modules can import
their helpers by a name no other test folder uses."""

from infer_support import face_video, tiny_bundle
from rtsp_fixture import rtsp_server_available

__all__ = ["face_video", "rtsp_server_available", "tiny_bundle"]
