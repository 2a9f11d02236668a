"""Fixtures of the runtime tests; they live in ``infer_support`` so that test modules can import its helpers by a
name no other test folder uses."""

from infer_support import face_video, tiny_bundle

__all__ = ["face_video", "tiny_bundle"]
