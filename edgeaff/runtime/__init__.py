"""Torch-free runtime: feature extraction, inference backends and ensembling.

Nothing in this package imports torch or :mod:`edgeaff.train` / :mod:`edgeaff.export`; a test enforces it.
"""

from edgeaff.runtime.errors import EdgeaffError, InvalidInputError, MissingDependencyError
from edgeaff.runtime.spec import AudioNormalization, FeatureSpec, ScalarStats

__all__ = [
    "AudioNormalization",
    "EdgeaffError",
    "FeatureSpec",
    "InvalidInputError",
    "MissingDependencyError",
    "ScalarStats",
]
