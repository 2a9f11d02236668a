"""Fixtures of the ``edgeaff serve`` tests (in ``serve_support``, importable by the test modules)."""

from serve_support import face_clip, serve_bundle

__all__ = ["face_clip", "serve_bundle"]
