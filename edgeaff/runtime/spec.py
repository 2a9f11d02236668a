"""Self-describing specifications shared by training, export and the runtime.

Every parameter of the deterministic feature pipeline lives in a :class:`FeatureSpec`. Training stores it in each
fold checkpoint, export copies it into the bundle manifest, and the runtime reads it from there, so the device
computes exactly the features a model was trained on (``design.md`` §2-3). Values default to the reference
implementation (``reference.md`` §4).
"""

from __future__ import annotations

import dataclasses
import math
import typing
from collections.abc import Mapping
from typing import Any, TypeVar

from edgeaff.runtime.errors import InvalidInputError

FEATURE_SPEC_VERSION = 1

T = TypeVar("T")


def dataclass_from_dict(cls: type[T], data: Mapping[str, Any], *, where: str) -> T:
    """Build a (possibly nested) dataclass from a JSON mapping, refusing unknown or missing keys.

    Lists become tuples, nested dataclass fields are built recursively.

    Raises:
        InvalidInputError: on unknown keys, missing required keys or a non-mapping value.
    """
    if not isinstance(data, Mapping):
        raise InvalidInputError(f"{where}: expected a JSON object, got {type(data).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    hints = typing.get_type_hints(cls)
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise InvalidInputError(f"{where}: unknown keys {unknown}; known keys are {sorted(fields)}")
    kwargs: dict[str, Any] = {}
    for name, field in fields.items():
        if name not in data:
            if field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING:
                raise InvalidInputError(f"{where}: missing key '{name}'")
            continue
        value = data[name]
        nested = _nested_dataclass(hints[name])
        if nested is not None and value is not None:
            value = dataclass_from_dict(nested, value, where=f"{where}.{name}")
        elif isinstance(value, list):
            value = tuple(value)
        kwargs[name] = value
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as exc:
        raise InvalidInputError(f"{where}: {exc}") from exc


def _nested_dataclass(annotation: Any) -> type | None:
    """The dataclass type inside an annotation such as ``Spec`` or ``Spec | None``, else ``None``."""
    if isinstance(annotation, type) and dataclasses.is_dataclass(annotation):
        return annotation
    for arg in typing.get_args(annotation):
        if isinstance(arg, type) and dataclasses.is_dataclass(arg):
            return arg
    return None


@dataclasses.dataclass(frozen=True)
class FaceSpec:
    """Face crops as the model sees them (reference §4.2, §4.6).

    Stored crops are ``image_size`` square RGB uint8; the model input is the centre ``crop_size`` square
    (random crop during training), scaled by ``(x / 255 - 0.5) / 0.5`` to [-1, 1]. Missing faces are black crops.
    """

    image_size: int = 48
    crop_size: int = 40
    channel_order: str = "RGB"
    resize_filter: str = "bicubic"
    scale_mean: float = 0.5
    scale_std: float = 0.5

    def __post_init__(self) -> None:
        if not 0 < self.crop_size <= self.image_size:
            raise ValueError(f"crop_size must be in (0, image_size]; got {self.crop_size} for {self.image_size}")
        if self.channel_order not in ("RGB", "BGR"):
            raise ValueError(f"channel_order must be RGB or BGR, got {self.channel_order!r}")

    @property
    def crop_offset(self) -> int:
        """Offset of the evaluation-time centre crop (4 for 40 from 48)."""
        return (self.image_size - self.crop_size) // 2


@dataclasses.dataclass(frozen=True)
class MfccSpec:
    """openSMILE ``MFCC12_0_D_A`` (reference §4.3): 13 MFCCs plus deltas and delta-deltas at 100 Hz."""

    sample_rate: int = 16000
    frame_length_s: float = 0.025
    frame_step_s: float = 0.010
    preemphasis: float = 0.97
    window: str = "hamming"
    mel_bands: int = 26
    fmin_hz: float = 0.0
    fmax_hz: float = 8000.0
    num_ceps: int = 13
    cep_lifter: int = 22
    delta_window: int = 2

    @property
    def dim(self) -> int:
        """Feature width: coefficients, deltas and delta-deltas."""
        return 3 * self.num_ceps


@dataclasses.dataclass(frozen=True)
class VggishSpec:
    """VGGish log-mel examples and embedding (reference §4.4).

    One example per video frame: the ``example_frames`` log-mel frames (0.96 s) *starting* at that frame's time.
    ``weights_sha256`` identifies the VGGish weights the features were computed with; ``None`` means unknown
    (e.g. a checkpoint converted from the reference code, whose features came from the TF-slim checkpoint).
    """

    sample_rate: int = 16000
    stft_window_s: float = 0.025
    stft_hop_s: float = 0.010
    fft_length: int = 512
    mel_bins: int = 64
    fmin_hz: float = 125.0
    fmax_hz: float = 7500.0
    log_offset: float = 0.01
    example_frames: int = 96
    end_padding_s: float = 1.0
    embedding_dim: int = 128
    weights_source: str = "audioset-vggish"
    weights_sha256: str | None = None


@dataclasses.dataclass(frozen=True)
class WindowSpec:
    """Temporal windows of the model (reference §4.6): ``length`` frames with hop ``hop``, overlap averaged."""

    length: int = 300
    hop: int = 200

    def __post_init__(self) -> None:
        if not 0 < self.hop <= self.length:
            raise ValueError(f"window hop must be in (0, length]; got hop={self.hop}, length={self.length}")


@dataclasses.dataclass(frozen=True)
class FeatureSpec:
    """Everything the deterministic feature pipeline needs, versioned."""

    face: FaceSpec = dataclasses.field(default_factory=FaceSpec)
    mfcc: MfccSpec = dataclasses.field(default_factory=MfccSpec)
    vggish: VggishSpec = dataclasses.field(default_factory=VggishSpec)
    window: WindowSpec = dataclasses.field(default_factory=WindowSpec)
    version: int = FEATURE_SPEC_VERSION

    def __post_init__(self) -> None:
        if self.version != FEATURE_SPEC_VERSION:
            raise ValueError(
                f"feature spec version {self.version} is not supported by this edgeaff "
                f"(supports {FEATURE_SPEC_VERSION}); upgrade edgeaff or re-export"
            )

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dictionary."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FeatureSpec:
        """Inverse of :meth:`to_dict`; refuses unknown keys and versions."""
        return dataclass_from_dict(cls, data, where="feature_spec")


@dataclasses.dataclass(frozen=True)
class ScalarStats:
    """One scalar mean and standard deviation for a whole feature (the reference's form, §4.5)."""

    mean: float
    std: float

    def __post_init__(self) -> None:
        if not (math.isfinite(self.mean) and math.isfinite(self.std)) or self.std <= 0:
            raise ValueError(
                f"normalisation needs a finite mean and a positive std; got mean={self.mean}, std={self.std}"
            )


@dataclasses.dataclass(frozen=True)
class AudioNormalization:
    """Audio feature normalisation of one fold: ``(x - mean) / std`` per feature, scalars."""

    mfcc: ScalarStats
    vggish: ScalarStats

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dictionary."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> AudioNormalization:
        """Inverse of :meth:`to_dict`."""
        return dataclass_from_dict(cls, data, where="normalization")
