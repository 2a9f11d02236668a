"""Fold checkpoints: safetensors weights plus JSON metadata in the same file (``design.md`` §3).

The file loads without unpickling anything. Its metadata (readable without torch through
:func:`edgeaff.runtime.artifacts.checkpoint_header.read_checkpoint_metadata`)
records the model configuration (fusion variant
included), the emotion dimension, the fold, the feature spec, the fold's audio normalisation statistics, validation
metrics, provenance, library versions and a sha256 over all tensors, which :func:`load_checkpoint` verifies.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from edgeaff.runtime.artifacts.checkpoint_header import (
    CHECKPOINT_FORMAT,
    CHECKPOINT_SCHEMA_VERSION,
    METADATA_KEY,
    CheckpointError,
    read_checkpoint_metadata,
    read_safetensors_header,
)
from edgeaff.runtime.errors import InvalidInputError
from edgeaff.runtime.files import atomic_output
from edgeaff.runtime.spec import AudioNormalization, FeatureSpec
from edgeaff.runtime.versions import TRAINING_LIBRARIES, versions
from edgeaff.train.config import EMOTION_DIMENSIONS, ModelConfig
from edgeaff.train.folds import NUM_FOLDS
from edgeaff.train.model import EmotionModel


@dataclasses.dataclass(frozen=True)
class CheckpointMetadata:
    """Everything a fold checkpoint says about itself."""

    model: ModelConfig
    dimension: str
    fold: int | None
    feature_spec: FeatureSpec
    normalization: AudioNormalization | None
    metrics: dict[str, Any]
    provenance: dict[str, Any]
    versions: dict[str, str]
    created: str
    weights_sha256: str

    def to_dict(self) -> dict[str, Any]:
        """The JSON document stored in the file."""
        return {
            "format": CHECKPOINT_FORMAT,
            "schema_version": CHECKPOINT_SCHEMA_VERSION,
            "model": self.model.to_dict(),
            "dimension": self.dimension,
            "fold": self.fold,
            "feature_spec": self.feature_spec.to_dict(),
            "normalization": None if self.normalization is None else self.normalization.to_dict(),
            "metrics": self.metrics,
            "provenance": self.provenance,
            "versions": self.versions,
            "created": self.created,
            "weights_sha256": self.weights_sha256,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CheckpointMetadata:
        """Parse and validate the stored JSON document."""
        if not isinstance(data, Mapping):
            raise CheckpointError(f"checkpoint metadata must be a JSON object, not {type(data).__name__}")
        if data.get("dimension") not in EMOTION_DIMENSIONS:
            raise CheckpointError(
                f"checkpoint metadata names the dimension {data.get('dimension')!r}; edgeaff models predict "
                f"{' or '.join(EMOTION_DIMENSIONS)}"
            )
        fold = data.get("fold")
        if fold is not None and (isinstance(fold, bool) or not isinstance(fold, int) or not 0 <= fold < NUM_FOLDS):
            raise CheckpointError(f"checkpoint metadata names the fold {fold!r}; folds are 0-{NUM_FOLDS - 1} or null")
        try:
            normalization = data["normalization"]
            return cls(
                model=ModelConfig.from_dict(data["model"]),
                dimension=str(data["dimension"]),
                fold=None if data["fold"] is None else int(data["fold"]),
                feature_spec=FeatureSpec.from_dict(data["feature_spec"]),
                normalization=None if normalization is None else AudioNormalization.from_dict(normalization),
                metrics=dict(data["metrics"]),
                provenance=dict(data["provenance"]),
                versions=dict(data["versions"]),
                created=str(data["created"]),
                weights_sha256=str(data["weights_sha256"]),
            )
        except KeyError as exc:
            raise CheckpointError(f"checkpoint metadata is missing {exc}") from None
        except (TypeError, ValueError, AttributeError) as exc:
            raise CheckpointError(f"checkpoint metadata has a malformed entry ({exc})") from None


def tensor_digest(state: Mapping[str, torch.Tensor]) -> str:
    """sha256 over every tensor (name, dtype, shape and bytes) in sorted name order; layout independent."""
    digest = hashlib.sha256()
    for name in sorted(state):
        tensor = state[name].detach().to("cpu").contiguous()
        digest.update(name.encode())
        digest.update(str(tensor.dtype).encode())
        digest.update(json.dumps(list(tensor.shape)).encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def save_checkpoint(
    model: EmotionModel,
    path: str | Path,
    *,
    dimension: str,
    fold: int | None = None,
    feature_spec: FeatureSpec | None = None,
    normalization: AudioNormalization | None = None,
    metrics: Mapping[str, Any] | None = None,
    provenance: Mapping[str, Any] | None = None,
) -> CheckpointMetadata:
    """Write ``model`` and its metadata to ``path`` atomically (temporary file, fsync, rename).

    Args:
        model: the network; its ``config`` is stored.
        path: destination file (``.safetensors`` recommended).
        dimension: ``"valence"`` or ``"arousal"``.
        fold: cross-validation fold index, if any.
        feature_spec: features the model expects (defaults to the reference's).
        normalization: the fold's audio statistics; required for the multimodal model.
        metrics: validation metrics (JSON-serialisable).
        provenance: where the weights came from (JSON-serialisable).

    Returns:
        The metadata written.

    Raises:
        InvalidInputError: unknown dimension, or a multimodal model without normalisation statistics.
    """
    from safetensors.torch import save_file

    if dimension not in EMOTION_DIMENSIONS:
        raise InvalidInputError(
            f"unknown emotion dimension '{dimension}'; choose one of {', '.join(EMOTION_DIMENSIONS)}"
        )
    if fold is not None and not 0 <= fold < NUM_FOLDS:
        raise InvalidInputError(f"fold must be 0-{NUM_FOLDS - 1} or none, got {fold}")
    if model.config.multimodal and normalization is None:
        raise InvalidInputError("a multimodal checkpoint needs the audio normalisation statistics (mfcc and vggish)")
    state = {name: tensor.detach().to("cpu").contiguous() for name, tensor in model.state_dict().items()}
    metadata = CheckpointMetadata(
        model=model.config,
        dimension=dimension,
        fold=fold,
        feature_spec=feature_spec or FeatureSpec(),
        normalization=normalization,
        metrics=dict(metrics or {}),
        provenance=dict(provenance or {}),
        versions=versions(TRAINING_LIBRARIES),
        created=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        weights_sha256=tensor_digest(state),
    )
    document = json.dumps(metadata.to_dict(), sort_keys=True)
    with atomic_output(path) as tmp:
        save_file(state, str(tmp), metadata={METADATA_KEY: document})
    return metadata


def load_checkpoint(path: str | Path, *, device: str | torch.device = "cpu") -> tuple[EmotionModel, CheckpointMetadata]:
    """Load a fold checkpoint: the model in eval mode on ``device``, and its metadata.

    Nothing is unpickled. The tensors' sha256 is checked against the one recorded at save time.

    Raises:
        CheckpointError: missing, truncated or corrupt file; wrong format or schema; keys or shapes that do not
            match the recorded model configuration; a weights hash mismatch.

    Example:
        >>> model, meta = load_checkpoint("runs/demo/fold0_valence.safetensors")  # doctest: +SKIP
        >>> meta.dimension
        'valence'
    """
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    metadata = CheckpointMetadata.from_dict(read_checkpoint_metadata(path))
    # The recorded configuration is compared with the file's tensors on the meta device first, so a configuration
    # that does not match (or asks for an enormous model) is refused before anything is allocated.
    with torch.device("meta"):
        expected = {name: tuple(t.shape) for name, t in EmotionModel(metadata.model).state_dict().items()}
    stored = {
        name: tuple(entry.get("shape", ()))
        for name, entry in read_safetensors_header(path).items()
        if name != "__metadata__" and isinstance(entry, dict)
    }
    _check_layout(path, expected, stored)
    try:
        state = load_file(str(path), device="cpu")
    except (SafetensorError, OSError, RuntimeError) as exc:
        raise CheckpointError(f"{path}: cannot read the checkpoint's tensors ({exc})") from None
    _check_layout(path, expected, {name: tuple(tensor.shape) for name, tensor in state.items()})
    model = EmotionModel(metadata.model)
    if tensor_digest(state) != metadata.weights_sha256:
        raise CheckpointError(f"{path}: weights hash mismatch: the file was modified or corrupted after it was saved")
    model.load_state_dict(state, strict=True)
    return model.to(device).eval(), metadata


def _check_layout(
    path: str | Path, expected: Mapping[str, tuple[int, ...]], found: Mapping[str, tuple[int, ...]]
) -> None:
    missing = sorted(set(expected) - set(found))
    unexpected = sorted(set(found) - set(expected))
    wrong = [k for k in expected if k in found and tuple(found[k]) != tuple(expected[k])]
    if missing or unexpected or wrong:
        raise CheckpointError(
            f"{path}: weights do not match the recorded model configuration "
            f"(missing {missing[:3]}, unexpected {unexpected[:3]}, wrong shapes {wrong[:3]})"
        )
