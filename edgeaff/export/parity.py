"""FP32 parity: each exported graph under ONNX Runtime against the checkpoint models in PyTorch (eval mode).

The PyTorch side uses the fold models' own modules (``model.backbone``, ``model.temporal``), not the export
wrappers, with the preprocessing and audio normalisation written out in numpy, so a mistake in a wrapper shows.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn

from edgeaff.runtime.backends.ort import OrtRunner
from edgeaff.runtime.spec import AudioNormalization, FaceSpec
from edgeaff.train.model import AudioVisualTemporalModel, EmotionModel

FP32_TOLERANCE = 1e-4


@dataclasses.dataclass(frozen=True)
class Agreement:
    """Max |ONNX Runtime - PyTorch| over a graph's output, and the largest |PyTorch| value it is relative to."""

    max_abs: float
    reference_max: float

    @property
    def scaled(self) -> float:
        """``max_abs / max(1, reference_max)``: absolute for outputs within ±1 (embeddings, predictions), relative for
        larger ones (raw VGGish features); this is what :data:`FP32_TOLERANCE` bounds."""
        return self.max_abs / max(1.0, self.reference_max)

    def to_dict(self) -> dict[str, float]:
        """JSON-ready form for the manifest."""
        return {"max_abs": self.max_abs, "reference_max_abs": self.reference_max, "scaled": self.scaled}


def _agreement(ours: np.ndarray, expected: np.ndarray) -> Agreement:
    return Agreement(float(np.abs(ours - expected).max()), float(np.abs(expected).max()))


def preprocess_frames(frames: np.ndarray, face: FaceSpec) -> torch.Tensor:
    """uint8 (N, S, S, 3) → float32 (N, 3, C, C) scaled to [-1, 1], as the reference's evaluation transform."""
    start, stop = face.crop_offset, face.crop_offset + face.crop_size
    crops = frames[:, start:stop, start:stop, :].astype(np.float32)
    scaled = (crops / np.float32(255.0) - np.float32(face.scale_mean)) / np.float32(face.scale_std)
    return torch.from_numpy(np.ascontiguousarray(scaled.transpose(0, 3, 1, 2)))


def torch_embeddings(models: Sequence[EmotionModel], frames: np.ndarray, face: FaceSpec) -> np.ndarray:
    """(N, M, E) embeddings from every model's own backbone."""
    x = preprocess_frames(frames, face)
    with torch.no_grad():
        return torch.stack([m.backbone(x) for m in models], dim=1).numpy()


def torch_predictions(
    models: Sequence[EmotionModel],
    normalizations: Sequence[AudioNormalization | None],
    embeddings: np.ndarray,
    vggish: np.ndarray | None,
    mfcc: np.ndarray | None,
) -> np.ndarray:
    """(B, L, M) predictions of every model's temporal part; audio is normalised here with each fold's statistics."""
    outputs = []
    with torch.no_grad():
        for index, (model, stats) in enumerate(zip(models, normalizations, strict=True)):
            own = torch.from_numpy(np.ascontiguousarray(embeddings[:, :, index]))
            if isinstance(model.temporal, AudioVisualTemporalModel):
                assert stats is not None and vggish is not None and mfcc is not None
                v = torch.from_numpy((vggish - np.float32(stats.vggish.mean)) / np.float32(stats.vggish.std))
                m = torch.from_numpy((mfcc - np.float32(stats.mfcc.mean)) / np.float32(stats.mfcc.std))
                outputs.append(model.temporal(own, v.float(), m.float()))
            else:
                outputs.append(model.temporal(own))
    return torch.stack(outputs, dim=-1).numpy()


def _feed(embeddings: np.ndarray, vggish: np.ndarray | None, mfcc: np.ndarray | None) -> dict[str, np.ndarray]:
    feed = {"embeddings": np.ascontiguousarray(embeddings, dtype=np.float32)}
    if vggish is not None and mfcc is not None:
        feed["vggish"] = np.ascontiguousarray(vggish, dtype=np.float32)
        feed["mfcc"] = np.ascontiguousarray(mfcc, dtype=np.float32)
    return feed


def run_stream(
    path: Path,
    embeddings: np.ndarray,
    vggish: np.ndarray | None,
    mfcc: np.ndarray | None,
    *,
    state_size: int,
    chunks: Sequence[int],
    state: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Feed a sequence through the streaming graph chunk by chunk (sizes cycle through ``chunks``).

    Returns:
        The concatenated predictions (B, L, M) and the final state.
    """
    batch, length = embeddings.shape[:2]
    current = np.zeros((batch, state_size), np.float32) if state is None else state
    outputs = []
    with OrtRunner(path) as runner:
        start, turn = 0, 0
        while start < length:
            stop = min(length, start + chunks[turn % len(chunks)])
            feed = _feed(
                embeddings[:, start:stop],
                None if vggish is None else vggish[:, start:stop],
                None if mfcc is None else mfcc[:, start:stop],
            )
            feed["state"] = current
            result = runner.infer(feed)
            outputs.append(result["predictions"])
            current = result["state_out"]
            start, turn = stop, turn + 1
    return np.concatenate(outputs, axis=1), current


def check_visual(path: Path, models: Sequence[EmotionModel], frames: np.ndarray, face: FaceSpec) -> Agreement:
    """Max |ORT - PyTorch| of the visual graph's embeddings."""
    with OrtRunner(path) as runner:
        ours = runner.infer({"frames": np.ascontiguousarray(frames)})["embeddings"]
    return _agreement(ours, torch_embeddings(models, frames, face))


def check_temporal(
    path: Path,
    models: Sequence[EmotionModel],
    normalizations: Sequence[AudioNormalization | None],
    *,
    embeddings: np.ndarray,
    vggish: np.ndarray | None,
    mfcc: np.ndarray | None,
) -> Agreement:
    """Max |ORT - PyTorch| of the windowed temporal graph."""
    with OrtRunner(path) as runner:
        ours = runner.infer(_feed(embeddings, vggish, mfcc))["predictions"]
    return _agreement(ours, torch_predictions(models, normalizations, embeddings, vggish, mfcc))


def check_stream(
    path: Path,
    models: Sequence[EmotionModel],
    normalizations: Sequence[AudioNormalization | None],
    *,
    embeddings: np.ndarray,
    vggish: np.ndarray | None,
    mfcc: np.ndarray | None,
    state_size: int,
) -> Agreement:
    """Max |streaming ORT from a zero state - windowed PyTorch| over the whole window, fed in uneven chunks."""
    ours, _ = run_stream(path, embeddings, vggish, mfcc, state_size=state_size, chunks=(1, 1, 3, 16, 64))
    return _agreement(ours, torch_predictions(models, normalizations, embeddings, vggish, mfcc))


def check_vggish(path: Path, vggish: nn.Module, examples: np.ndarray) -> Agreement:
    """Max |ORT - PyTorch| of the VGGish graph."""
    with OrtRunner(path) as runner:
        ours = runner.infer({"log_mel": np.ascontiguousarray(examples, dtype=np.float32)})["vggish"]
    with torch.no_grad():
        expected = vggish(torch.from_numpy(examples)).numpy()
    return _agreement(ours, expected)
