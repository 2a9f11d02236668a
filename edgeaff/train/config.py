"""Model configuration: plain frozen dataclasses, no torch, JSON round-trip.

The defaults are the paper's model as the reference code builds it (``reference.md`` §1): an IR-50 backbone for
40×40 faces, a 512→[128]×4 visual TCN, [32]×4 aural TCNs, kernel 5, leader-follower fusion with 32-D attention.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from edgeaff.runtime.artifacts.manifest import Dimension, ModelKind
from edgeaff.runtime.errors import InvalidInputError
from edgeaff.runtime.spec import DEFAULT_FEATURE_SPEC, dataclass_from_dict

MODEL_KINDS = ModelKind.values()
FUSION_VARIANTS = ("paper", "abaw2")
EMOTION_DIMENSIONS = Dimension.values()


@dataclasses.dataclass(frozen=True)
class BackboneConfig:
    """InsightFace-style IR (improved residual) backbone for small face crops.

    ``stage_units`` units per stage with widths ``stage_widths``; the first unit of stage 1 has stride
    ``first_stage_stride`` (1 in the reference, for 40×40 input) and the first unit of every later stage stride 2.
    The output layer is BN2d → Dropout → Flatten → Linear → BN1d on the final ``input_size / 2**(stages-1)`` map,
    followed by L2 normalisation.

    Fine-tuning groups (released in this order): the output layer, the whole last stage, then the last
    ``released_tail_units`` units of the penultimate stage (reference §1.1: body.21-23, then body.18-20).
    """

    name: str = "ir50"
    stage_units: tuple[int, ...] = (3, 4, 14, 3)
    stage_widths: tuple[int, ...] = (64, 128, 256, 512)
    first_stage_stride: int = 1
    embedding_dim: int = 512
    input_size: int = DEFAULT_FEATURE_SPEC.face.crop_size
    dropout: float = 0.4
    released_tail_units: int = 3

    def __post_init__(self) -> None:
        if len(self.stage_units) != len(self.stage_widths) or len(self.stage_units) < 2:
            raise ValueError("stage_units and stage_widths need the same length (at least 2 stages)")
        if any(n < 1 for n in self.stage_units) or any(w < 1 for w in self.stage_widths):
            raise ValueError("every stage needs at least one unit and a positive width")
        if self.first_stage_stride not in (1, 2):
            raise ValueError("first_stage_stride must be 1 or 2")
        if self.output_size < 1 or self.input_size % self.total_stride:
            raise ValueError(f"input_size {self.input_size} must be divisible by the total stride {self.total_stride}")
        if not 0 <= self.released_tail_units <= self.stage_units[-2]:
            raise ValueError("released_tail_units must be between 0 and the penultimate stage's unit count")

    @property
    def total_stride(self) -> int:
        """Product of the stage strides."""
        return self.first_stage_stride * 2 ** (len(self.stage_units) - 1)

    @property
    def output_size(self) -> int:
        """Side of the final feature map (5 for the reference's 40×40 input)."""
        return self.input_size // self.total_stride


BACKBONE_PRESETS: dict[str, BackboneConfig] = {
    # The paper's backbone (~6.1 GFLOPs/frame at 40×40, 37.3 M parameters).
    "ir50": BackboneConfig(),
    # Smaller variants with the same structure, for CPU demos, tests and quick experiments. Not compatible with
    # the pretrained IR-50 weights.
    "ir-small": BackboneConfig(
        name="ir-small", stage_units=(1, 2, 4, 1), stage_widths=(32, 64, 128, 256), embedding_dim=256
    ),
    "ir-tiny": BackboneConfig(
        name="ir-tiny", stage_units=(1, 1, 2, 1), stage_widths=(8, 16, 32, 64), embedding_dim=64, released_tail_units=1
    ),
}


def backbone_preset(name: str) -> BackboneConfig:
    """Return a named backbone configuration.

    Raises:
        InvalidInputError: for an unknown name (the message lists the valid ones).
    """
    try:
        return BACKBONE_PRESETS[name]
    except KeyError:
        raise InvalidInputError(f"unknown backbone '{name}'; choose one of {', '.join(BACKBONE_PRESETS)}") from None


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """The whole per-dimension network: backbone, TCNs, fusion and head.

    Attributes:
        kind: ``"multimodal"`` (visual + VGGish + MFCC, leader-follower fusion) or ``"unimodal"`` (visual only).
        backbone: the visual backbone.
        visual_channels: channels of the visual TCN's levels (dilations 1, 2, 4, ...).
        audio_channels: channels of each aural TCN's levels.
        kernel_size: TCN kernel size.
        tcn_dropout: channel dropout inside the TCN blocks.
        fusion: ``"paper"`` (Q, K and V of each branch from that branch's TCN features, Q·Kᵀ scores) or
            ``"abaw2"`` (the reference code exactly: aural Q and V projected from the aural keys, K·Qᵀ scores).
            ``None`` for the unimodal model.
        attention_dim: width of the Q, K and V projections.
        vggish_dim: VGGish feature width.
        mfcc_dim: MFCC feature width.
    """

    kind: str = "multimodal"
    backbone: BackboneConfig = dataclasses.field(default_factory=BackboneConfig)
    visual_channels: tuple[int, ...] = (128, 128, 128, 128)
    audio_channels: tuple[int, ...] = (32, 32, 32, 32)
    kernel_size: int = 5
    tcn_dropout: float = 0.1
    fusion: str | None = "paper"
    attention_dim: int = 32
    vggish_dim: int = DEFAULT_FEATURE_SPEC.vggish.embedding_dim
    mfcc_dim: int = DEFAULT_FEATURE_SPEC.mfcc.dim

    def __post_init__(self) -> None:
        if self.kind not in MODEL_KINDS:
            raise ValueError(f"model kind must be one of {MODEL_KINDS}, got {self.kind!r}")
        if self.kind == "multimodal" and self.fusion not in FUSION_VARIANTS:
            raise ValueError(f"fusion must be one of {FUSION_VARIANTS} for the multimodal model, got {self.fusion!r}")
        if self.kind == "unimodal" and self.fusion is not None:
            raise ValueError("the unimodal model has no fusion; set fusion to None")
        if not self.visual_channels or not self.audio_channels:
            raise ValueError("TCNs need at least one level")
        if self.kernel_size < 2:
            raise ValueError("kernel_size must be at least 2")

    @property
    def multimodal(self) -> bool:
        """Whether the model reads VGGish and MFCC features."""
        return self.kind == "multimodal"

    @property
    def receptive_field(self) -> int:
        """Frames of history one output depends on: 1 + 2·(k-1)·Σ dilations (121 for the paper's TCNs)."""
        levels = max(len(self.visual_channels), len(self.audio_channels) if self.multimodal else 0)
        return 1 + 2 * (self.kernel_size - 1) * (2**levels - 1)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dictionary."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ModelConfig:
        """Inverse of :meth:`to_dict`; unknown keys are refused."""
        return dataclass_from_dict(cls, data, where="model_config")


def model_config(
    kind: str = "multimodal", *, backbone: str | BackboneConfig = "ir50", fusion: str | None = "paper"
) -> ModelConfig:
    """Convenience constructor with validation errors a user can read.

    Example:
        >>> model_config("unimodal", backbone="ir-tiny", fusion=None).backbone.name
        'ir-tiny'
    """
    if kind not in MODEL_KINDS:
        raise InvalidInputError(f"unknown model '{kind}'; choose one of {', '.join(MODEL_KINDS)}")
    if kind == "multimodal" and fusion not in FUSION_VARIANTS:
        raise InvalidInputError(f"unknown fusion variant '{fusion}'; choose one of {', '.join(FUSION_VARIANTS)}")
    backbone_config = backbone_preset(backbone) if isinstance(backbone, str) else backbone
    return ModelConfig(kind=kind, backbone=backbone_config, fusion=fusion if kind == "multimodal" else None)
