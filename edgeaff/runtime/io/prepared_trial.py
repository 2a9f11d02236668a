"""A prepared trial (``edgeaff prepare`` output) as a source: its stored face crops and raw audio features.

``edgeaff infer --prepared TRIAL_DIR`` runs the bundle on exactly the arrays training and validation used, so its
per-model outputs can be compared with the PyTorch models' (the export parity check extended to whole trials).
Frame ``i`` is the trial's ``i``-th stored row at ``i / fps`` (fps from ``trial.json``, or ``dataset.json`` one
folder up); a frame "has a face" when its stored crop is not the black crop prepare uses for missing faces.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType

import numpy as np

from edgeaff.runtime.artifacts.prepared import TrialArrays, load_trial_arrays
from edgeaff.runtime.errors import InvalidInputError
from edgeaff.runtime.io.sources import AudioChunk, SourceInfo, SourceKind, VideoFrame, safe_name
from edgeaff.runtime.spec import FeatureSpec


def trial_fps(trial_dir: Path) -> float | None:
    """The trial's video frame rate from ``trial.json`` or the dataset's ``dataset.json``; ``None`` if unknown."""
    candidates = [(trial_dir / "trial.json", None), (trial_dir.parent / "dataset.json", trial_dir.name)]
    for path, trial in candidates:
        try:
            document = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        entry = document.get("trials", {}).get(trial) if trial is not None else document
        if isinstance(entry, dict) and isinstance(entry.get("fps"), (int, float)) and entry["fps"] > 0:
            return float(entry["fps"])
    return None


class PreparedTrialSource:
    """Frames and precomputed audio features of one prepared trial directory.

    Args:
        trial_dir: ``PREPARED_DIR/<trial>`` with ``frame.npy``, ``mfcc.npy``, ``vggish.npy``.
        spec: the bundle's feature spec (crop size and feature widths are checked against it).
    """

    def __init__(self, trial_dir: str | Path, *, spec: FeatureSpec) -> None:
        self.trial_dir = Path(trial_dir)
        self.spec = spec
        self.dropped_frames = 0
        self._arrays: TrialArrays | None = None
        self.info = SourceInfo(SourceKind.PREPARED, str(trial_dir), safe_name(self.trial_dir.name), False, True, None,
                               None, None)  # fmt: skip

    def __enter__(self) -> PreparedTrialSource:
        if not self.trial_dir.is_dir():
            raise InvalidInputError(f"--prepared {self.trial_dir}: not a prepared trial directory")
        self._arrays = load_trial_arrays(self.trial_dir, spec=self.spec)
        fps = trial_fps(self.trial_dir)
        size = self.spec.face.image_size
        self.info = SourceInfo(
            SourceKind.PREPARED, self.info.uri, self.info.name, False, True, None, fps, self._arrays.length, size, size
        )
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._arrays = None

    def __iter__(self) -> Iterator[VideoFrame | AudioChunk]:
        arrays = self._arrays
        if arrays is None:
            raise RuntimeError("PreparedTrialSource: use it in a 'with' block before iterating")
        fps = self.info.fps or 30.0
        for index in range(arrays.length):
            crop = np.asarray(arrays.frame[index])
            features = (np.asarray(arrays.vggish[index], np.float32), np.asarray(arrays.mfcc[index], np.float32))
            yield VideoFrame(
                index,
                index / fps,
                np.ascontiguousarray(crop[:, :, ::-1]),
                time.perf_counter(),
                face=crop,
                face_found=bool(crop.any()),
                audio_features=features,
            )
