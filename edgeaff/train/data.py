"""Training/validation windows over a prepared dataset (``reference.md`` §4.6).

Windows of ``window`` frames with hop ``hop`` (last window ends at the trial end); shorter trials are zero-padded at
the end (frames black → -1 after scaling, audio zeros normalised afterwards → -mean/std, labels 0). Training windows
get one random 40×40 crop offset (0..8 inclusive on each axis) and a whole-window horizontal flip with p = 0.5;
validation windows the centre crop. Arrays are read memory-mapped; nothing loads the whole dataset.

Randomness is a pure function of (seed, epoch, window index), so a resumed run sees exactly the same batches.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import torch
from torch.utils.data import Dataset

from edgeaff.runtime.artifacts.prepared import PreparedDataset, label_column
from edgeaff.runtime.pipeline.windows import window_starts
from edgeaff.runtime.spec import AudioNormalization


@dataclasses.dataclass(frozen=True)
class WindowRef:
    """One window: trial name, first frame, number of real frames."""

    trial: str
    start: int
    valid: int


def scale_frames(frames: np.ndarray) -> np.ndarray:
    """uint8 (L, H, W, 3) RGB → float32 (L, 3, H, W) in [-1, 1]: ``(x/255 - 0.5) / 0.5``."""
    return ((frames.astype(np.float32) / 255.0 - 0.5) / 0.5).transpose(0, 3, 1, 2).copy()


class WindowDataset(Dataset[dict[str, torch.Tensor]]):
    """Fixed-length windows of prepared trials for one emotion dimension.

    Items are dicts with ``frames`` (W, 3, 40, 40) float32, ``vggish`` (W, 128), ``mfcc`` (W, 39), ``label`` (W,),
    ``mask`` (W,) bool (real frames) and ``index`` (the window index).
    """

    def __init__(
        self,
        dataset: PreparedDataset,
        trials: tuple[str, ...] | list[str],
        *,
        dimension: str,
        normalization: AudioNormalization,
        train: bool,
        seed: int = 0,
        window: int | None = None,
        hop: int | None = None,
    ) -> None:
        self.dataset = dataset
        self.spec = dataset.feature_spec
        self.window = window or self.spec.window.length
        self.hop = hop or self.spec.window.hop
        self.column = label_column(dimension)
        self.normalization = normalization
        self.train = train
        self.seed = seed
        self.epoch = 0
        self.windows: list[WindowRef] = []
        for trial in trials:
            length = dataset.trials[trial].length
            for start in window_starts(length, window=self.window, hop=self.hop):
                self.windows.append(WindowRef(trial, start, min(self.window, length - start)))

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose augmentation draws ``__getitem__`` uses."""
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.windows)

    def _padded(self, array: np.ndarray, ref: WindowRef) -> np.ndarray:
        block = np.asarray(array[ref.start : ref.start + ref.valid])
        if ref.valid == self.window:
            return block
        padded = np.zeros((self.window, *block.shape[1:]), dtype=block.dtype)
        padded[: ref.valid] = block
        return padded

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        ref = self.windows[index]
        arrays = self.dataset.arrays(ref.trial)
        face = self.spec.face
        margin = face.image_size - face.crop_size
        frames = self._padded(arrays.frame, ref)
        if self.train:
            rng = np.random.default_rng([self.seed, self.epoch, index])
            top, left = (int(v) for v in rng.integers(0, margin + 1, size=2))
            flip = bool(rng.random() < 0.5)
        else:
            top = left = face.crop_offset
            flip = False
        crop = frames[:, top : top + face.crop_size, left : left + face.crop_size]
        if flip:
            crop = crop[:, :, ::-1]
        stats = self.normalization
        vggish = (self._padded(arrays.vggish, ref).astype(np.float32) - stats.vggish.mean) / stats.vggish.std
        mfcc = (self._padded(arrays.mfcc, ref).astype(np.float32) - stats.mfcc.mean) / stats.mfcc.std
        if arrays.label is None:
            raise ValueError(f"trial {ref.trial} has no labels")
        label = self._padded(arrays.label, ref)[:, self.column].astype(np.float32)
        mask = np.zeros(self.window, dtype=bool)
        mask[: ref.valid] = True
        return {
            "frames": torch.from_numpy(scale_frames(np.ascontiguousarray(crop))),
            "vggish": torch.from_numpy(vggish.astype(np.float32)),
            "mfcc": torch.from_numpy(mfcc.astype(np.float32)),
            "label": torch.from_numpy(label),
            "mask": torch.from_numpy(mask),
            "index": torch.tensor(index),
        }

    def epoch_order(self, epoch: int, *, reshuffle: bool) -> list[int]:
        """Window order of an epoch: reshuffled per epoch, or one fixed shuffle (the reference's behaviour)."""
        rng = np.random.default_rng([self.seed, epoch if reshuffle else 0, 7919])
        return [int(i) for i in rng.permutation(len(self.windows))]
