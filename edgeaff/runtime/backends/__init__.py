"""Inference backends behind one runner contract (``design.md`` §5).

A runner has a cheap constructor; ``__enter__`` loads and allocates, ``__exit__`` frees; ``inputs`` / ``outputs``
describe the tensors; ``infer(feed)`` checks its feed and returns arrays the caller owns.
"""

from edgeaff.runtime.backends.base import Runner, TensorSpec

__all__ = ["Runner", "TensorSpec"]
