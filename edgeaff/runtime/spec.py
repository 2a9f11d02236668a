"""Self-describing specifications shared by training, export and the runtime.

Every parameter of the deterministic feature pipeline lives in a :class:`FeatureSpec`. Training stores it in each
fold checkpoint, export copies it into the bundle manifest, and the runtime reads it from there, so the device
computes exactly the features a model was trained on (``design.md`` §2-3). Values default to the reference
implementation (``reference.md`` §4).

:func:`dataclass_from_dict` and :func:`dataclass_to_dict` are the one conversion between these frozen dataclasses
(and the bundle manifest's, :mod:`edgeaff.runtime.artifacts.manifest`) and their JSON form: the field annotations
are the schema, and a value that does not fit is refused with its key's path.
"""

from __future__ import annotations

import collections.abc
import dataclasses
import enum
import math
import types
import typing
from collections.abc import Mapping
from typing import Any, TypeVar

from edgeaff.runtime.errors import InvalidInputError

FEATURE_SPEC_VERSION = 1

T = TypeVar("T")


OMIT_IF_NONE = {"omit_if_none": True}
"""Field metadata: :func:`dataclass_to_dict` leaves the key out when the value is ``None`` (an absent JSON key)."""


def dataclass_from_dict(cls: type[T], data: object, *, where: str) -> T:
    """Build a (possibly nested) frozen dataclass from its JSON form, checking every key and value.

    The field annotations are the schema: nested dataclasses, ``X | None``, ``tuple[X, ...]`` (from JSON lists),
    ``Mapping[str, X]`` (from JSON objects), :class:`enum.Enum` members (from their values), ``int`` (not
    ``bool``), ``float`` (ints accepted), ``str``, ``bool`` and ``Any`` (any JSON value, kept as it is). Fields with
    a default may be left out; every other key must be present, and unknown keys are refused.

    Args:
        cls: the dataclass.
        data: the parsed JSON value.
        where: the value's path for messages, e.g. ``"manifest"``; nested values extend it
            (``manifest.models[1].kind``).

    Raises:
        InvalidInputError: ``<path>: <what is wrong>`` for the first unknown or missing key, wrong type, unknown
            enum value, or value the dataclass itself refuses (its ``__post_init__`` raising ``ValueError``).
    """
    return typing.cast(T, _from_json(cls, data, where))


def dataclass_to_dict(instance: object) -> dict[str, Any]:
    """The JSON form of a dataclass: the inverse of :func:`dataclass_from_dict`.

    Enums become their values, tuples lists, mappings dicts; a ``None`` field whose metadata is
    :data:`OMIT_IF_NONE` is left out.
    """
    if not dataclasses.is_dataclass(instance) or isinstance(instance, type):
        raise TypeError(f"expected a dataclass instance, got {type(instance).__name__}")
    document: dict[str, Any] = {}
    for field in dataclasses.fields(instance):
        value = getattr(instance, field.name)
        if value is None and field.metadata.get("omit_if_none"):
            continue
        document[field.name] = _to_json(value)
    return document


def _to_json(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclass_to_dict(value)
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, (tuple, list)):
        return [_to_json(v) for v in value]
    if isinstance(value, Mapping):
        return {str(k): _to_json(v) for k, v in value.items()}
    return value


def _describe(value: object) -> str:
    text = repr(value)
    return f"{type(value).__name__} {text if len(text) <= 40 else text[:37] + '...'}"


def _key_path(where: str, key: str) -> str:
    return f"{where}.{key}" if key.isidentifier() else f"{where}[{key!r}]"


def _from_json(annotation: Any, value: object, where: str) -> Any:  # noqa: PLR0911 (one return per kind)
    """Convert ``value`` to ``annotation`` (see :func:`dataclass_from_dict`)."""
    if annotation is Any:
        return value
    origin = typing.get_origin(annotation)
    if origin is typing.Union or origin is types.UnionType:
        return _union_from_json(annotation, value, where)
    if isinstance(annotation, type) and dataclasses.is_dataclass(annotation):
        return _dataclass_from_json(annotation, value, where)
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        return _enum_from_json(annotation, value, where)
    if annotation in _SCALARS:
        return _scalar_from_json(annotation, value, where)
    if origin is tuple:
        return _tuple_from_json(annotation, value, where)
    if origin in (dict, Mapping, collections.abc.Mapping):
        return _mapping_from_json(annotation, value, where)
    raise TypeError(f"{where}: the schema uses an unsupported annotation {annotation!r}")


_SCALARS: dict[type, tuple[tuple[type, ...], str]] = {
    bool: ((bool,), "true or false"),
    int: ((int,), "an integer"),
    float: ((int, float), "a number"),
    str: ((str,), "a string"),
}
"""JSON scalars: the Python types each annotation accepts, and how an error names it (``bool`` is never a number)."""


def _scalar_from_json(annotation: type, value: object, where: str) -> Any:
    accepted, name = _SCALARS[annotation]
    if not isinstance(value, accepted) or (annotation is not bool and isinstance(value, bool)):
        raise InvalidInputError(f"{where}: expected {name}, got {_describe(value)}")
    return float(value) if annotation is float else value  # type: ignore[arg-type]


def _union_from_json(annotation: Any, value: object, where: str) -> Any:
    options = [a for a in typing.get_args(annotation) if a is not type(None)]
    if value is None:
        if len(options) < len(typing.get_args(annotation)):
            return None
        raise InvalidInputError(f"{where}: a value is required, got null")
    errors = []
    for option in options:
        try:
            return _from_json(option, value, where)
        except InvalidInputError as exc:
            errors.append(exc)
    if len(errors) == 1:
        raise errors[0]
    names = " or ".join(getattr(o, "__name__", str(o)) for o in options)
    raise InvalidInputError(f"{where}: expected {names}, got {_describe(value)}")


def _enum_from_json(annotation: type[enum.Enum], value: object, where: str) -> Any:
    if isinstance(value, annotation):
        return value
    try:
        return annotation(value)
    except ValueError:
        choices = ", ".join(str(m.value) for m in annotation)
        raise InvalidInputError(f"{where}: {value!r} is not one of {choices}") from None


def _tuple_from_json(annotation: Any, value: object, where: str) -> tuple[Any, ...]:
    if not isinstance(value, (list, tuple)):
        raise InvalidInputError(f"{where}: expected a list, got {_describe(value)}")
    args = typing.get_args(annotation)
    if len(args) == 2 and args[1] is Ellipsis:
        return tuple(_from_json(args[0], v, f"{where}[{i}]") for i, v in enumerate(value))
    if len(args) != len(value):
        raise InvalidInputError(f"{where}: expected {len(args)} values, got {len(value)}")
    return tuple(_from_json(a, v, f"{where}[{i}]") for i, (a, v) in enumerate(zip(args, value, strict=True)))


def _mapping_from_json(annotation: Any, value: object, where: str) -> dict[Any, Any]:
    if not isinstance(value, Mapping):
        raise InvalidInputError(f"{where}: expected a JSON object, got {_describe(value)}")
    key_type, value_type = typing.get_args(annotation) or (str, Any)
    converted = {}
    for key, item in value.items():
        if not isinstance(key, str):
            raise InvalidInputError(f"{where}: keys must be strings, got {_describe(key)}")
        converted[_from_json(key_type, key, where)] = _from_json(value_type, item, _key_path(where, key))
    return converted


def _dataclass_from_json(cls: type, data: object, where: str) -> Any:
    if not isinstance(data, Mapping):
        raise InvalidInputError(f"{where}: expected a JSON object, got {_describe(data)}")
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
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
        kwargs[name] = _from_json(hints[name], data[name], f"{where}.{name}")
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as exc:
        raise InvalidInputError(f"{where}: {exc}") from None


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


DEFAULT_FEATURE_SPEC = FeatureSpec()
"""The reference's feature spec: where a function is given no spec, its default sizes come from here."""


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
