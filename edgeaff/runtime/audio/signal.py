"""Checking audio signals handed to the feature extractors."""

from __future__ import annotations

import numpy as np

from edgeaff.runtime.errors import InvalidInputError


def as_signal(signal: np.ndarray, *, what: str = "audio signal", allow_empty: bool = True) -> np.ndarray:
    """Return ``signal`` as a 1-D float64 array, refusing other shapes, non-numbers and non-finite values.

    Raises:
        InvalidInputError: the array is not 1-D (mix to mono first), not floating point, empty when not allowed, or
            holds NaN/inf.
    """
    array = np.asarray(signal)
    if array.ndim != 1:
        raise InvalidInputError(f"{what} must be 1-D mono samples, got shape {array.shape}; mix channels to mono first")
    if np.issubdtype(array.dtype, np.integer):
        raise InvalidInputError(
            f"{what} must be float samples in [-1, 1], got {array.dtype}; convert 16-bit PCM with x / 32768"
        )
    if not np.issubdtype(array.dtype, np.floating):
        raise InvalidInputError(f"{what} must be float samples in [-1, 1], got dtype {array.dtype}")
    if not allow_empty and array.size == 0:
        raise InvalidInputError(f"{what} is empty")
    out = array.astype(np.float64)
    if not np.isfinite(out).all():
        raise InvalidInputError(f"{what} contains NaN or infinite samples")
    return out
