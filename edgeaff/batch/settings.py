"""What a batch runs with, and how a rerun recognises results that are complete and current.

Each video's summary JSON (written last, after every other result file is in place) carries a ``batch`` entry: the
video's size and modification time when it was read, and the digest of the settings that decide the results (the
bundle's manifest, backend, precision, mode, face detector and tracking, clipping, visual batch, the result files
asked for, ``--max-frames``). A rerun skips a video exactly when its summary holds the same entry and every result
file the summary lists is still there; anything else (no summary, another video under that name, other settings,
a missing file) is run again. Threads, the device, the worker count and Ray do not enter the digest: they change
how fast results come, not what they are meant to be.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
from pathlib import Path
from typing import Any

from edgeaff.batch.discover import BatchItem
from edgeaff.runtime import InvalidInputError, Outputs, PipelineOptions, Prediction
from edgeaff.runtime.files import read_json, sha256_file

STAMP_KEY = "batch"
"""The summary entry a batch adds."""
SUMMARY_MAX_BYTES = 64 * 1024 * 1024


@dataclasses.dataclass(frozen=True)
class BatchSettings:
    """Everything a worker needs to run any video of the batch (picklable; the same for every worker).

    Attributes:
        bundle: the bundle folder.
        options: the pipeline's options (each worker's threads are set by the batch).
        outputs: the result files per video.
        max_frames: stop each video after this many frames.
        digest: sha256 of :meth:`decisive` (filled in by :meth:`create`).
    """

    bundle: Path
    options: PipelineOptions
    outputs: Outputs = dataclasses.field(default_factory=Outputs)
    max_frames: int | None = None
    digest: str = ""

    @classmethod
    def create(
        cls,
        bundle: str | Path,
        options: PipelineOptions,
        *,
        outputs: Outputs | None = None,
        max_frames: int | None = None,
    ) -> BatchSettings:
        """Validated settings with their digest.

        Raises:
            InvalidInputError: no bundle manifest at ``bundle``, printing live (``outputs.live``) in a batch, or
                result files the options cannot give (an overlay needs ``images``, per-model files ``per_model``).
        """
        outputs = outputs or Outputs()
        manifest = Path(bundle) / "manifest.json"
        if not manifest.is_file():
            raise InvalidInputError(f"--bundle {bundle}: no manifest.json there; pass a folder 'edgeaff export' wrote")
        if outputs.live:
            raise InvalidInputError("--live prints one source's predictions as they come; it does not apply to a batch")
        if outputs.overlay and not options.images:
            raise InvalidInputError("an overlay needs the frames: make the options with images=True")
        if outputs.per_model and not options.per_model:
            raise InvalidInputError("per-model results need options with per_model=True")
        settings = cls(Path(bundle), options, outputs, max_frames)
        return dataclasses.replace(settings, digest=_digest(settings.decisive(sha256_file(manifest))))

    def decisive(self, manifest_sha256: str) -> dict[str, Any]:
        """The settings that decide the results (module docstring), as a JSON-ready mapping."""
        options = self.options
        cascade = options.haar_cascade
        return {
            "bundle_manifest_sha256": manifest_sha256,
            "backend": str(options.backend.backend),
            "precision": str(options.backend.precision),
            "mode": None if options.mode is None else str(options.mode),
            "face_detector": str(options.face_detector),
            "haar_cascade_sha256": None if cascade is None else sha256_file(cascade),
            "detect_every": options.detect_every,
            "face_select": str(options.face_select),
            "clip": str(options.clip),
            "batch": options.batch,
            "outputs": {
                "per_model": self.outputs.per_model,
                "overlay": self.outputs.overlay,
                "plot": self.outputs.plot,
            },
            "max_frames": self.max_frames,
        }


def _digest(document: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(document, sort_keys=True).encode()).hexdigest()


def video_stamp(path: str | Path) -> dict[str, int]:
    """The identity of a video file for resuming: its size and modification time (nanoseconds).

    Raises:
        OSError: the file cannot be examined.
    """
    status = os.stat(path)
    return {"size": int(status.st_size), "mtime_ns": int(status.st_mtime_ns)}


def stamp(item: BatchItem, settings: BatchSettings, video: dict[str, int]) -> dict[str, Any]:
    """The summary entry that marks ``item``'s results as made from this video with these settings."""
    return {"video": item.key, "file": video, "settings_sha256": settings.digest}


class StampSink:
    """A sink that adds the batch stamp to the run's summary (it consumes no prediction)."""

    stage = "batch"

    def __init__(self, entry: dict[str, Any]) -> None:
        self.entry = entry

    def write(self, prediction: Prediction) -> None:
        """Nothing to do per frame."""

    def finish(self) -> dict[str, Any]:
        """The stamp, under :data:`STAMP_KEY`."""
        return {STAMP_KEY: self.entry}


def completed_summary(item: BatchItem, settings: BatchSettings) -> dict[str, Any] | None:
    """``item``'s summary if its results are complete and current (module docstring), else ``None``."""
    if not item.summary.is_file():
        return None
    try:
        document = read_json(item.summary, max_bytes=SUMMARY_MAX_BYTES)
        expected = stamp(item, settings, video_stamp(item.video))
    except (InvalidInputError, OSError):
        return None
    if not isinstance(document, dict) or document.get(STAMP_KEY) != expected:
        return None
    outputs = document.get("outputs")
    if not isinstance(outputs, dict):
        return None
    for path in outputs.values():
        if not isinstance(path, str) or not (item.out_dir / Path(path).name).is_file():
            return None
    return document


def forget(item: BatchItem) -> None:
    """Remove ``item``'s summary when it is a batch's (so results about to be redone never look complete)."""
    if not item.summary.is_file() or item.summary.is_symlink():
        return
    with contextlib.suppress(InvalidInputError, OSError):
        document = read_json(item.summary, max_bytes=SUMMARY_MAX_BYTES)
        if isinstance(document, dict) and STAMP_KEY in document:
            item.summary.unlink()
