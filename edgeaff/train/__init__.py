"""PyTorch side of edgeaff: the model, checkpoints, reference compatibility, data preparation and training.

Needs the ``train`` extra (``pip install 'edgeaff[train]'``, torch installed first).
"""

from edgeaff.runtime.errors import MissingDependencyError

try:
    import torch  # noqa: F401
except ImportError as _exc:  # pragma: no cover - exercised in a subprocess test
    raise MissingDependencyError(
        "edgeaff's training tools need PyTorch: install torch for your machine first, then pip install 'edgeaff[train]'"
    ) from _exc

from edgeaff.train.checkpoint import CheckpointMetadata, load_checkpoint, save_checkpoint
from edgeaff.train.config import BackboneConfig, ModelConfig, backbone_preset, model_config
from edgeaff.train.model import EmotionModel, build_model

__all__ = [
    "BackboneConfig",
    "CheckpointMetadata",
    "EmotionModel",
    "ModelConfig",
    "backbone_preset",
    "build_model",
    "load_checkpoint",
    "model_config",
    "save_checkpoint",
]
