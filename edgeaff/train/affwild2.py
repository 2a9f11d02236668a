"""Discovery of the official Aff-Wild2 layout (``reference.md`` §4.1-4.2).

::

    AFFWILD2_ROOT/annotations/VA_Set/{Train_Set,Validation_Set}/<trial>.txt   header + one row per video frame
    AFFWILD2_ROOT/cropped_aligned/<trial>/<00001>.jpg                          aligned faces, 1-based
    AFFWILD2_ROOT/{raw_video,batch1,batch2}/<video>.{mp4,avi,mkv,webm}

Trials ``<video>_left`` / ``<video>_right`` are the two subjects of one video and share its audio. A trial's
subject is its video's name unless a subject map says otherwise (Aff-Wild2 ships no identity list).
"""

from __future__ import annotations

import csv
import dataclasses
import json
from pathlib import Path

import numpy as np

from edgeaff.runtime.artifacts.prepared import TRAIN_PARTITION, VALIDATION_PARTITION
from edgeaff.runtime.errors import InvalidInputError

PARTITIONS = (TRAIN_PARTITION, VALIDATION_PARTITION)
VIDEO_FOLDERS = ("raw_video", "batch1", "batch2")
VIDEO_EXTENSIONS = (".mp4", ".avi", ".mkv", ".webm")
TWO_SUBJECT_SUFFIXES = ("_left", "_right")
UNLABELLED = -5.0


@dataclasses.dataclass(frozen=True)
class RawTrial:
    """One annotated trial of the raw dataset."""

    name: str
    partition: str
    annotation: Path
    faces_dir: Path
    video: Path
    video_name: str
    subject: str


def video_name_of(trial: str) -> str:
    """``12-24-1920x1080_left`` → ``12-24-1920x1080``."""
    for suffix in TWO_SUBJECT_SUFFIXES:
        if trial.endswith(suffix):
            return trial[: -len(suffix)]
    return trial


def load_subject_map(path: str | Path) -> dict[str, str]:
    """Read ``trial → subject`` from a JSON object or a two-column CSV (``trial,subject``, header optional).

    Raises:
        InvalidInputError: unreadable or malformed file.
    """
    file = Path(path)
    if not file.is_file():
        raise InvalidInputError(f"--subjects: file not found: {file}")
    text = file.read_text()
    if file.suffix.lower() == ".json":
        try:
            mapping = json.loads(text)
        except json.JSONDecodeError as exc:
            raise InvalidInputError(f"{file}: invalid JSON ({exc})") from None
        if not isinstance(mapping, dict):
            raise InvalidInputError(f"{file}: expected a JSON object mapping trial names to subject ids")
        return {str(k): str(v) for k, v in mapping.items()}
    rows = [row for row in csv.reader(text.splitlines()) if row]
    if rows and [c.strip().lower() for c in rows[0][:2]] == ["trial", "subject"]:
        rows = rows[1:]
    if any(len(row) < 2 for row in rows):
        raise InvalidInputError(f"{file}: expected two columns, trial,subject")
    return {row[0].strip(): row[1].strip() for row in rows}


def _find_video(root: Path, video_name: str) -> Path | None:
    for folder in VIDEO_FOLDERS:
        for extension in VIDEO_EXTENSIONS:
            candidate = root / folder / f"{video_name}{extension}"
            if candidate.is_file():
                return candidate
    return None


def discover_trials(
    root: str | Path, *, subjects: dict[str, str] | None = None
) -> tuple[list[RawTrial], dict[str, str]]:
    """List the annotated trials of an Aff-Wild2-layout tree.

    Returns:
        The trials (sorted by partition, then name) and ``{trial: reason}`` for trials that cannot be prepared
        (no video found).

    Raises:
        InvalidInputError: the annotation folders are missing.
    """
    base = Path(root)
    annotation_root = base / "annotations" / "VA_Set"
    if not annotation_root.is_dir():
        raise InvalidInputError(
            f"{base} does not look like Aff-Wild2: expected annotations/VA_Set/{{Train_Set,Validation_Set}}/*.txt"
        )
    trials: list[RawTrial] = []
    problems: dict[str, str] = {}
    for partition in PARTITIONS:
        for annotation in sorted((annotation_root / partition).glob("*.txt")):
            name = annotation.stem
            video_name = video_name_of(name)
            video = _find_video(base, video_name)
            if video is None:
                folders = ", ".join(VIDEO_FOLDERS)
                problems[name] = f"no video '{video_name}' with a known extension in {folders}"
                continue
            subject = (subjects or {}).get(name, video_name)
            trials.append(
                RawTrial(name, partition, annotation, base / "cropped_aligned" / name, video, video_name, subject)
            )
    if not trials and not problems:
        raise InvalidInputError(f"no annotation files under {annotation_root}/{{Train_Set,Validation_Set}}")
    return trials, problems


def read_labels(path: Path) -> tuple[np.ndarray, np.ndarray, int]:
    """Read a VA annotation file.

    Returns:
        ``(labels, rows, total)``: (N, 2) float32 [valence, arousal] of the labelled rows, their 0-based row
        indices in the file (= video frame indices), and the number of rows. A row is labelled when neither value
        is -5 (reference §4.2).

    Raises:
        InvalidInputError: missing header or malformed rows.
    """
    lines = path.read_text().splitlines()
    if not lines or [c.strip().lower() for c in lines[0].split(",")] != ["valence", "arousal"]:
        raise InvalidInputError(f"{path}: expected the header 'valence,arousal'")
    values = []
    for number, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        try:
            valence, arousal = (float(v) for v in line.split(","))
        except ValueError:
            raise InvalidInputError(f"{path}:{number}: expected two numbers, got {line!r}") from None
        values.append((valence, arousal))
    table = np.asarray(values, dtype=np.float64).reshape(-1, 2)
    keep = np.flatnonzero((table[:, 0] != UNLABELLED) & (table[:, 1] != UNLABELLED))
    if keep.size == 0:
        raise InvalidInputError(f"{path}: no labelled rows (every row has a -5)")
    return table[keep].astype(np.float32), keep.astype(np.int64), len(table)
