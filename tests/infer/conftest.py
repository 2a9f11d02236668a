"""Fixtures of the runtime tests; they live in ``infer_support`` (torch-free) and ``torch_bundle`` (the one fixture
that needs torch, imported only inside it) so that test modules can import their helpers by names no other test
folder uses."""

from infer_support import face_video, tiny_bundle
from torch_bundle import pytorch_bundle

__all__ = ["face_video", "pytorch_bundle", "tiny_bundle"]
