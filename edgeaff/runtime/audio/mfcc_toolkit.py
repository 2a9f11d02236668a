"""39-D MFCC through openSMILE itself (the ``opensmile`` package), with the config shipped in ``audio/data``.

``data/mfcc39.conf`` holds the components and values of openSMILE's ``config/mfcc/MFCC12_0_D_A.conf`` (what the
reference ran through ``SMILExtract``), with the Python API's external source and sink in place of the wav reader
and csv writer. The package turns the float signal into int16 (``x · 32768``) and openSMILE reads that exactly as
``SMILExtract`` reads a 16-bit wav, so a signal from :func:`edgeaff.runtime.io.audio_track.decode_audio` gives the
numbers the reference got from its wav. Columns are in openSMILE's order: HTK-ordered ``[c1..c12, c0]``, deltas,
delta-deltas (see :mod:`edgeaff.runtime.audio.mfcc`, the numpy implementation, which agrees within float32 rounding).
"""

from __future__ import annotations

import dataclasses
import functools
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from edgeaff.runtime.audio.signal import as_signal
from edgeaff.runtime.errors import InvalidInputError, MissingDependencyError
from edgeaff.runtime.spec import MfccSpec

CONFIG_NAME = "mfcc39.conf"
# What the shipped config implements; other specs need the numpy implementation.
CONFIG_SPEC = MfccSpec()


def config_path() -> Path:
    """Path of the shipped openSMILE config (package data)."""
    return Path(str(resources.files("edgeaff.runtime.audio") / "data" / CONFIG_NAME))


@functools.cache
def _smile() -> Any:
    """One openSMILE extractor per process (building it parses the config)."""
    try:
        import opensmile
    except ImportError as exc:
        raise MissingDependencyError(
            f"openSMILE MFCC extraction needs the 'opensmile' package ({exc}); it is a base dependency of edgeaff: "
            "pip install 'opensmile>=2.5'"
        ) from exc
    return opensmile.Smile(feature_set=str(config_path()), feature_level="lld")


def mfcc39_opensmile(signal: np.ndarray, *, spec: MfccSpec = MfccSpec()) -> np.ndarray:  # noqa: B008
    """MFCC-39 at 100 Hz computed by openSMILE with the reference's configuration.

    Args:
        signal: mono samples in [-1, 1] at 16 kHz (``int16 / 32768``; other values are truncated towards zero to
            16 bits by the opensmile package).
        spec: must equal the reference spec (the shipped config implements only that one).

    Returns:
        ``(T, 39)`` float32 with ``T = (N − 400) // 160 + 1`` (0 rows for fewer than 400 samples).

    Raises:
        InvalidInputError: a spec other than the reference's, or a signal that is not 1-D / finite / within [-1, 1).
        MissingDependencyError: the opensmile package is not installed.
    """
    if spec != CONFIG_SPEC:
        differing = [f.name for f in dataclasses.fields(spec) if getattr(spec, f.name) != getattr(CONFIG_SPEC, f.name)]
        raise InvalidInputError(
            f"the openSMILE MFCC config implements only the reference MFCC spec (differs in {differing}); "
            "use edgeaff.runtime.audio.mfcc.mfcc39 for other parameters"
        )
    samples = as_signal(signal, what="MFCC input")
    if samples.size and (samples.min() < -1.0 or samples.max() >= 1.0):
        raise InvalidInputError("MFCC input must lie in [-1, 1) (16-bit range); scale or clip the signal first")
    frame = round(spec.frame_length_s * spec.sample_rate)
    if len(samples) < frame:
        return np.zeros((0, spec.dim), dtype=np.float32)
    frame_table = _smile().process_signal(samples.astype(np.float32)[None, :], spec.sample_rate)
    return np.ascontiguousarray(frame_table.to_numpy(dtype=np.float32))
