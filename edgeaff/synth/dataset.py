"""``edgeaff synth``: write a complete synthetic dataset in the Aff-Wild2 layout, atomically, with ``synth.json``."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import edgeaff
from edgeaff.runtime import limits
from edgeaff.runtime.errors import InvalidInputError
from edgeaff.runtime.files import read_json, remove_stale_work_directories, work_directory
from edgeaff.runtime.processes import process_pool
from edgeaff.synth.faces import Identity
from edgeaff.synth.media import MEDIA_FORMATS
from edgeaff.synth.plan import PRESETS, VideoPlan, plan_videos
from edgeaff.synth.render import RenderedTrial, identity_for, render_video
from edgeaff.synth.scene import ARCFACE_TEMPLATE
from edgeaff.synth.voice import SAMPLE_RATE

MANIFEST = "synth.json"
# trial,subject — the identities Aff-Wild2 does not ship; `edgeaff prepare --subjects` reads it for the folds.
SUBJECTS = "subjects.csv"
FORMAT = "edgeaff-synth"
VERSION = 1
SUBJECT_RULE = (
    "subject = trial name without a _left/_right suffix and without a take suffix _<one lowercase letter>, "
    "with the side suffix put back (subj07_a, subj07_b -> subj07; duo02_a_left -> duo02_left)"
)


@dataclass(frozen=True)
class SynthSummary:
    """What ``generate_dataset`` wrote.

    Attributes:
        root: the dataset folder.
        preset: preset name.
        seed: seed.
        videos: number of video files.
        trials: number of annotated trials.
        frames: video frames over all videos.
        label_rows: annotation rows over all trials.
        jpgs: aligned crops written.
        size_bytes: bytes on disk.
        seconds: wall time of the generation.
    """

    root: Path
    preset: str
    seed: int
    videos: int
    trials: int
    frames: int
    label_rows: int
    jpgs: int
    size_bytes: int
    seconds: float


def generate_dataset(
    out_dir: str | os.PathLike[str],
    *,
    preset: str = "small",
    seed: int = 0,
    videos: int | None = None,
    seconds: float | None = None,
    force: bool = False,
    workers: int = 1,
) -> SynthSummary:
    """Generate a synthetic Aff-Wild2-style dataset.

    The folder is built beside ``out_dir`` in a marked work folder (``.NAME.partial-…``) and renamed into place
    when complete, so an interrupted run never leaves something that looks like a dataset; the next run removes
    what a killed one left. ``force`` replaces only an earlier synthetic dataset (its ``synth.json`` says so).

    Args:
        out_dir: dataset root to create (``annotations/``, ``cropped_aligned/``, ``raw_video/``, ``batch1/``,
            ``batch2/``, ``synth.json``).
        preset: ``small`` or ``demo`` (see :data:`edgeaff.synth.plan.PRESETS`).
        seed: seed; the same seed gives the same dataset.
        videos: override the preset's number of videos (at least 5).
        seconds: override the preset's video length.
        force: replace ``out_dir`` if it is an earlier synthetic dataset.
        workers: videos rendered in parallel processes, 1 .. the usable cores (the result does not depend on it).

    Returns:
        A summary of what was written.

    Raises:
        InvalidInputError: unknown preset, bad sizes or worker count, a non-empty ``out_dir`` without ``force``, or
            with ``force`` one that is not a synthetic dataset.

    Example:
        >>> summary = generate_dataset("/tmp/affwild2-synth", preset="small", seed=0)  # doctest: +SKIP
    """
    if preset not in PRESETS:
        raise InvalidInputError(f"unknown preset {preset!r}; choose one of: {', '.join(PRESETS)}")
    limits.check_workers(workers)
    limits.check_seed(seed)
    chosen = PRESETS[preset]
    plans = plan_videos(
        seed=seed,
        videos=chosen.videos if videos is None else videos,
        seconds=chosen.seconds if seconds is None else seconds,
        frame_size=chosen.frame_size,
    )
    target = Path(out_dir)
    _check_target(target, force=force)
    started = time.perf_counter()
    remove_stale_work_directories(target.parent, _partial_prefix(target))
    remove_stale_work_directories(target.parent, _old_prefix(target))
    with work_directory(target.parent, _partial_prefix(target)) as building:
        rendered = _render_all(plans, _identities(plans, seed), building.path, seed=seed, workers=workers)
        manifest = _manifest(plans, rendered, preset=preset, seed=seed)
        (building.path / MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n", encoding="utf-8")
        (building.path / SUBJECTS).write_text(_subjects_csv(manifest), encoding="utf-8")
        building.unmark()
        _replace(building.path, target, force=force)
    trials = [record for records in rendered.values() for record in records]
    return SynthSummary(
        root=target,
        preset=preset,
        seed=seed,
        videos=len(plans),
        trials=len(trials),
        frames=sum(plan.frames for plan in plans),
        label_rows=sum(record.labels.rows for record in trials),
        jpgs=sum(record.labels.rows - len(record.missing_jpgs) for record in trials),
        size_bytes=sum(path.stat().st_size for path in target.rglob("*") if path.is_file()),
        seconds=time.perf_counter() - started,
    )


def _partial_prefix(target: Path) -> str:
    return f".{target.name}.partial-"


def _old_prefix(target: Path) -> str:
    return f".{target.name}.old-"


def is_synthetic_dataset(path: Path) -> bool:
    """Whether ``path`` is a folder holding a ``synth.json`` that ``edgeaff synth`` wrote."""
    manifest = path / MANIFEST
    if path.is_symlink() or not path.is_dir() or manifest.is_symlink() or not manifest.is_file():
        return False
    try:
        document = read_json(manifest)
    except InvalidInputError:
        return False
    return isinstance(document, dict) and document.get("format") == FORMAT


def _check_target(target: Path, *, force: bool) -> None:
    if target.is_symlink() or (target.exists() and not target.is_dir()):
        raise InvalidInputError(f"{target} exists and is not a folder; choose another output folder")
    if not target.is_dir() or not any(target.iterdir()):
        return
    if not force:
        raise InvalidInputError(
            f"{target} is not empty; choose an empty or new folder, or pass --force to replace an earlier synthetic "
            "dataset"
        )
    if not is_synthetic_dataset(target):
        raise InvalidInputError(
            f"{target} is not a synthetic dataset (no {MANIFEST} of edgeaff synth): --force only replaces one; "
            "nothing was changed: choose an empty or new folder"
        )


def _replace(building: Path, target: Path, *, force: bool) -> None:
    """Rename the finished folder onto ``target``; with ``force`` an earlier synthetic dataset is moved aside first and
    deleted after, without it only an empty one is replaced (checked again: files may have appeared meanwhile)."""
    _check_target(target, force=force)
    with work_directory(target.parent, _old_prefix(target)) as old:
        if target.exists() and not any(target.iterdir()):
            target.rmdir()
        elif target.exists():
            os.replace(target, old.path / "previous")
        os.replace(building, target)
        shutil.rmtree(old.path, ignore_errors=True)
    with contextlib.suppress(OSError):
        fd = os.open(target.parent, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _render_all(
    plans: tuple[VideoPlan, ...], identities: dict[str, Identity], root: Path, *, seed: int, workers: int
) -> dict[str, tuple[RenderedTrial, ...]]:
    """Render every video, in this process or in a pool of ``workers`` processes (each video is independent)."""
    if workers == 1:
        return {
            plan.name: render_video(plan, identities, root, seed=seed, index=index) for index, plan in enumerate(plans)
        }
    with process_pool(min(workers, len(plans))) as pool:
        futures = {
            plan.name: pool.submit(render_video, plan, identities, root, seed=seed, index=index)
            for index, plan in enumerate(plans)
        }
        try:
            return {name: future.result() for name, future in futures.items()}
        except BaseException:
            pool.shutdown(wait=True, cancel_futures=True)
            raise


def _identities(plans: tuple[VideoPlan, ...], seed: int) -> dict[str, Identity]:
    subjects: list[str] = []
    for plan in plans:
        for trial in plan.trials:
            if trial.subject not in subjects:
                subjects.append(trial.subject)
    return {subject: identity_for(subject, order, seed) for order, subject in enumerate(subjects)}


def _subjects_csv(manifest: dict[str, Any]) -> str:
    rows = [f"{trial},{info['subject']}" for trial, info in sorted(manifest["trials"].items())]
    return "trial,subject\n" + "\n".join(rows) + "\n"


def _manifest(
    plans: tuple[VideoPlan, ...], rendered: dict[str, tuple[RenderedTrial, ...]], *, preset: str, seed: int
) -> dict[str, Any]:
    videos: dict[str, Any] = {}
    trials: dict[str, Any] = {}
    for plan in plans:
        videos[plan.name] = {
            "path": plan.relative_path,
            "fps": plan.fps,
            "frames": plan.frames,
            "seconds": plan.frames / plan.fps,
            "size": list(plan.size),
            "video_codec": MEDIA_FORMATS[plan.container].video_codec,
            "audio": {
                "codec": MEDIA_FORMATS[plan.container].audio_codec,
                "sample_rate": plan.audio_rate,
                "channels": plan.audio_channels,
                "synthesis_rate": SAMPLE_RATE,
            },
            "trials": [trial.name for trial in plan.trials],
        }
        for record in rendered[plan.name]:
            labels = record.labels
            trials[record.plan.name] = {
                "video": plan.name,
                "partition": record.plan.partition,
                "subject": record.plan.subject,
                "side": record.plan.side,
                "identity": {"photo": record.identity.photo, "mirrored": record.identity.mirrored},
                "fps": plan.fps,
                "label_rows": labels.rows,
                "video_frames": plan.frames,
                "decimals": labels.decimals,
                "unlabeled_rows": list(labels.unlabeled_rows),
                "half_unlabeled_rows": [[row, column] for row, column in labels.half_unlabeled],
                "missing_jpgs": list(record.missing_jpgs),
                "valence": labels.valence.tolist(),
                "arousal": labels.arousal.tolist(),
                "landmarks": [[round(float(value), 2) for value in row.ravel()] for row in record.landmarks],
            }
    return {
        "format": FORMAT,
        "version": VERSION,
        "edgeaff_version": edgeaff.__version__,
        "preset": preset,
        "seed": seed,
        "subject_rule": SUBJECT_RULE,
        "landmark_order": ["left_eye", "right_eye", "nose", "left_mouth", "right_mouth"],
        "aligned_template_112": ARCFACE_TEMPLATE.tolist(),
        "label_semantics": (
            "valence/arousal are the clean values written to the annotation file (rounded to 'decimals'); rows in "
            "unlabeled_rows are written as -5 (both columns, or only the named column for half_unlabeled_rows); "
            "landmarks are per label row in video-frame pixels (pixel-centre coordinates), x1 y1 ... x5 y5"
        ),
        "videos": videos,
        "trials": trials,
    }
