"""What a synthetic dataset contains: presets, and the plan of its videos and trials (names, partitions, folders,
frame rates, the deliberate irregularities), before anything is rendered.

Naming follows the Aff-Wild2 distribution: a trial is named after its video, with ``_left``/``_right`` appended when
the video shows two people. Subject identity is implied by the name (see :func:`subject_of_trial`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from edgeaff.runtime.errors import InvalidInputError

TRAIN = "Train_Set"
VALIDATION = "Validation_Set"
MIN_VIDEOS = 5
MAX_VIDEOS = 200  # a bound on the disk a dataset may take (a few GB at 600 s per video)
"""The five videos that carry one irregularity each (see :func:`plan_videos`)."""


@dataclass(frozen=True)
class SynthPreset:
    """A dataset size.

    Attributes:
        name: preset name.
        videos: number of videos.
        seconds: nominal length of each video.
        frame_size: (width, height) of one-person videos; two-person videos are always 640×360.
        description: one line for ``--help``.
    """

    name: str
    videos: int
    seconds: float
    frame_size: tuple[int, int]
    description: str


DUO_FRAME_SIZE = (640, 360)
PRESETS = {
    "small": SynthPreset(
        "small", videos=5, seconds=8.0, frame_size=(320, 240), description="5 videos x 8 s at 320x240, for tests"
    ),
    "demo": SynthPreset(
        "demo",
        videos=14,
        seconds=24.0,
        frame_size=(480, 360),
        description="14 videos x 24 s at 480x360, enough for the demo model to learn",
    ),
}


@dataclass(frozen=True)
class TrialPlan:
    """One annotated face track.

    Attributes:
        name: trial name (annotation file stem and ``cropped_aligned`` folder).
        subject: the person (see :func:`subject_of_trial`).
        side: ``"left"``/``"right"`` in a two-person video, else ``None``.
        partition: ``Train_Set`` or ``Validation_Set``.
        label_rows: rows of the annotation file.
        unlabeled: -5 pattern: ``none``, ``run``, ``scattered`` or ``both``.
        missing_jpg: a labelled row whose jpg is left out, or ``None``.
    """

    name: str
    subject: str
    side: str | None
    partition: str
    label_rows: int
    unlabeled: str
    missing_jpg: int | None


@dataclass(frozen=True)
class VideoPlan:
    """One video file and its trials.

    Attributes:
        name: video stem.
        folder: ``raw_video``, ``batch1`` or ``batch2``.
        container: ``mp4`` or ``avi``.
        fps: frame rate.
        frames: video frames (equals the label rows except for the deliberate off-by-one video).
        size: (width, height).
        audio_rate: sample rate of the stored audio.
        audio_channels: 1 or 2.
        trials: one trial, or the ``_left`` and ``_right`` trials.
    """

    name: str
    folder: str
    container: str
    fps: int
    frames: int
    size: tuple[int, int]
    audio_rate: int
    audio_channels: int
    trials: tuple[TrialPlan, ...]

    @property
    def relative_path(self) -> str:
        """Path of the video file under the dataset root."""
        return f"{self.folder}/{self.name}.{self.container}"


_SIDE = re.compile(r"^(?P<base>.+?)(?P<side>_left|_right)?$")
_TAKE = re.compile(r"^(?P<subject>.+)_[a-z]$")


def subject_of_trial(trial: str) -> str:
    """The person a trial shows, from its name alone.

    Rule: split off a ``_left``/``_right`` suffix, then drop a take suffix ``_<one lowercase letter>`` from the
    rest, and put the side back. ``subj07_a`` and ``subj07_b`` are one person (``subj07``); ``duo03_a_left`` is
    ``duo03_left`` and ``duo03_a_right`` is ``duo03_right``, two people. Names without a take suffix (the real
    Aff-Wild2 names such as ``12-24-1920x1080`` or ``video59_right``) are their own subject, which is all the real
    distribution's names tell.

    Args:
        trial: trial name (annotation file stem).

    Returns:
        The subject key to group trials by.
    """
    match = _SIDE.match(trial)
    base, side = (match.group("base"), match.group("side") or "") if match else (trial, "")
    take = _TAKE.match(base)
    return (take.group("subject") if take else base) + side


def plan_videos(
    *, seed: int, videos: int, seconds: float, frame_size: tuple[int, int] = (480, 360)
) -> tuple[VideoPlan, ...]:
    """Lay out the videos of a dataset.

    The first five videos each carry one of the irregularities that a reader of Aff-Wild2 must handle:

    0. ``subj01_a``: raw_video, mp4, 30 fps, Train; scattered -5 rows (one with only valence -5, one with only arousal).
    1. ``subj01_b``: batch1, mp4, 25 fps, Train; the same person as video 0; a run of -5 rows in the middle.
    2. ``duo02_a``: batch2, mp4, 30 fps, 640×360, Train; two people, trials ``duo02_a_left``/``duo02_a_right``
       sharing the audio; one labelled jpg missing in ``_left``.
    3. ``subj03_a``: raw_video, **avi**, 30 fps, Validation; the video has one frame more than the label file.
    4. ``subj04_a``: raw_video, mp4, 30 fps, Validation; scattered -5 rows and a -5 run.

    Further videos (the demo preset) add people with one or two takes each, mostly in Train_Set, spread over the
    three folders, some at 25 fps, with varied -5 patterns.

    Args:
        seed: the dataset seed (only the irregularities' details and the extra videos' options depend on it).
        videos: number of videos (5-200).
        seconds: nominal duration of each video.
        frame_size: (width, height) of the one-person videos (even numbers).

    Returns:
        The plans, in generation order.

    Raises:
        InvalidInputError: for a number of videos outside 5-200 or a duration outside 2-600 s.
    """
    if videos < MIN_VIDEOS:
        raise InvalidInputError(f"--videos must be at least {MIN_VIDEOS} (one per irregularity), got {videos}")
    if videos > MAX_VIDEOS:
        raise InvalidInputError(f"--videos must be at most {MAX_VIDEOS}, got {videos}")
    if not 2.0 <= seconds <= 600.0:
        raise InvalidInputError(f"--seconds must be between 2 and 600, got {seconds:g}")
    if frame_size[0] % 2 or frame_size[1] % 2 or min(frame_size) < 64:
        raise InvalidInputError(f"frame size must be even and at least 64 pixels, got {frame_size[0]}x{frame_size[1]}")
    rng = np.random.default_rng([seed, 7])
    size = frame_size
    plans = [
        _single("subj01_a", "raw_video", fps=30, seconds=seconds, partition=TRAIN, pattern="scattered", size=size),
        _single("subj01_b", "batch1", fps=25, seconds=seconds, partition=TRAIN, pattern="run", size=size),
        _duo("duo02_a", "batch2", fps=30, seconds=seconds, partition=TRAIN, rng=rng),
        _single(
            "subj03_a",
            "raw_video",
            fps=30,
            seconds=seconds,
            partition=VALIDATION,
            pattern="none",
            size=size,
            container="avi",
            audio=(44_100, 2),
            extra_frame=True,
        ),
        _single("subj04_a", "raw_video", fps=30, seconds=seconds, partition=VALIDATION, pattern="both", size=size),
    ]
    subject = 5
    folders = ("raw_video", "raw_video", "batch1", "batch2")
    audio_formats = ((48_000, 2), (16_000, 1), (44_100, 2))
    while len(plans) < videos:
        takes = min(int(rng.integers(1, 3)), videos - len(plans))
        partition = VALIDATION if subject % 4 == 3 else TRAIN
        for take in range(takes):
            name = f"subj{subject:02d}_{'ab'[take]}"
            fps = 25 if rng.random() < 0.25 else 30
            pattern = str(rng.choice(["none", "run", "scattered", "both"]))
            folder = folders[int(rng.integers(0, len(folders)))]
            audio = audio_formats[int(rng.integers(0, len(audio_formats)))]
            plans.append(
                _single(
                    name, folder, fps=fps, seconds=seconds, partition=partition, pattern=pattern, size=size, audio=audio
                )
            )
        subject += 1
    return tuple(plans)


def _single(
    name: str,
    folder: str,
    *,
    fps: int,
    seconds: float,
    partition: str,
    pattern: str,
    size: tuple[int, int],
    container: str = "mp4",
    audio: tuple[int, int] = (16_000, 1),
    extra_frame: bool = False,
) -> VideoPlan:
    rows = round(seconds * fps)
    trial = TrialPlan(name, subject_of_trial(name), None, partition, rows, pattern, None)
    return VideoPlan(
        name=name,
        folder=folder,
        container=container,
        fps=fps,
        frames=rows + 1 if extra_frame else rows,
        size=size,
        audio_rate=audio[0],
        audio_channels=audio[1],
        trials=(trial,),
    )


def _duo(name: str, folder: str, *, fps: int, seconds: float, partition: str, rng: np.random.Generator) -> VideoPlan:
    rows = round(seconds * fps)
    missing = int(rng.integers(rows // 4, 3 * rows // 4))
    trials = tuple(
        TrialPlan(
            name=f"{name}_{side}",
            subject=subject_of_trial(f"{name}_{side}"),
            side=side,
            partition=partition,
            label_rows=rows,
            unlabeled="none",
            missing_jpg=missing if side == "left" else None,
        )
        for side in ("left", "right")
    )
    return VideoPlan(
        name=name,
        folder=folder,
        container="mp4",
        fps=fps,
        frames=rows,
        size=DUO_FRAME_SIZE,
        audio_rate=48_000,
        audio_channels=2,
        trials=trials,
    )
