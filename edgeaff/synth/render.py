"""Rendering one planned video: its people, labels, voice track, frames, aligned crops and annotation files."""

from __future__ import annotations

import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from edgeaff.synth.faces import Identity, express, load_face_photos, make_identity, resize_identity
from edgeaff.synth.labels import TrialLabels, label_file_text, make_trial_labels
from edgeaff.synth.media import MEDIA_FORMATS, write_video
from edgeaff.synth.plan import TrialPlan, VideoPlan
from edgeaff.synth.scene import HeadPath, aligned_crop, apply_affine, background, head_path, paste_face, placement
from edgeaff.synth.voice import SAMPLE_RATE, Voice, limit, room_noise, speak

JPEG_QUALITY = 90
EYE_DISTANCE = {1: 0.13, 2: 0.16}
"""Mean inter-ocular distance as a fraction of the frame height, for videos with one or two people (before the
person's size factor): 47 and 58 px in a 360-line frame, large enough for BlazeFace's short-range model."""
PAN = {"left": (0.8, 0.45), "right": (0.45, 0.8)}
"""Stereo gains (left, right channel) of each person's voice in a two-person video."""


def identity_for(subject: str, order: int, seed: int) -> Identity:
    """The person behind a subject name: every trial of a subject in a dataset shows the same face and voice.

    Args:
        subject: subject name.
        order: the subject's rank among the dataset's subjects (alternates photographs and mirroring).
        seed: dataset seed.
    """
    photos = load_face_photos()
    rng = np.random.default_rng([seed, zlib.crc32(subject.encode("utf-8"))])
    photo = photos[order % len(photos)]
    mirrored = (order // len(photos)) % 2 == 1
    return make_identity(subject, photo, rng, mirrored=mirrored)


@dataclass(frozen=True)
class RenderedTrial:
    """What was written for one trial (for synth.json)."""

    plan: TrialPlan
    identity: Identity
    labels: TrialLabels
    landmarks: np.ndarray  # (label_rows, 5, 2) in video-frame pixels
    missing_jpgs: tuple[int, ...]


def render_video(
    plan: VideoPlan, identities: dict[str, Identity], root: Path, *, seed: int, index: int
) -> tuple[RenderedTrial, ...]:
    """Render one video with its trials into the dataset folder ``root``.

    Args:
        plan: the video.
        identities: person for each subject name in the plan.
        root: dataset root (``annotations/``, ``cropped_aligned/`` and the video folders are created as needed).
        seed: dataset seed.
        index: the video's position in the plan (seeds its randomness).

    Returns:
        One record per trial.
    """
    rng = np.random.default_rng([seed, 1000 + index])
    width, height = plan.size
    count = len(plan.trials)
    people = [
        resize_identity(person, EYE_DISTANCE[count] * height * person.size_factor / person.eye_distance)
        for person in (identities[trial.subject] for trial in plan.trials)
    ]
    labels = [make_trial_labels(rng, trial.label_rows, plan.fps, trial.unlabeled) for trial in plan.trials]
    valence = [_per_frame(item.valence, plan.frames) for item in labels]
    arousal = [_per_frame(item.arousal, plan.frames) for item in labels]
    paths = _head_paths(rng, plan, people, arousal)
    audio = _soundtrack(rng, plan, people, arousal)
    scenery = background(rng, width, height)

    crop_dirs = [root / "cropped_aligned" / trial.name for trial in plan.trials]
    for folder in crop_dirs:
        folder.mkdir(parents=True, exist_ok=True)
    landmarks = [np.zeros((trial.label_rows, 5, 2)) for trial in plan.trials]
    skipped: list[list[int]] = [[] for _ in plan.trials]

    def frames() -> Iterator[np.ndarray]:
        for frame_index in range(plan.frames):
            image = Image.fromarray(scenery)
            placed = []
            for person_index, person in enumerate(people):
                face, moved = express(person, valence[person_index][frame_index], arousal[person_index][frame_index])
                to_frame = placement(
                    paths[person_index],
                    frame_index,
                    photo_eye_centre=person.landmarks[:2].mean(axis=0),
                    width_factor=person.width_factor,
                )
                paste_face(image, face, to_frame)
                placed.append(apply_affine(to_frame, moved))
            for person_index, trial in enumerate(plan.trials):
                if frame_index >= trial.label_rows:
                    continue
                landmarks[person_index][frame_index] = placed[person_index]
                if frame_index == trial.missing_jpg:
                    skipped[person_index].append(frame_index)
                    continue
                crop = aligned_crop(image, placed[person_index])
                crop.save(crop_dirs[person_index] / f"{frame_index + 1:05d}.jpg", quality=JPEG_QUALITY)
            yield np.asarray(image)

    video_path = root / plan.relative_path
    video_path.parent.mkdir(parents=True, exist_ok=True)
    written = write_video(
        video_path,
        frames(),
        media=MEDIA_FORMATS[plan.container],
        fps=plan.fps,
        size=plan.size,
        audio=audio,
        sample_rate=SAMPLE_RATE,
        stored_rate=plan.audio_rate,
    )
    if written != plan.frames:  # pragma: no cover - the generator always yields plan.frames frames
        raise RuntimeError(f"{video_path}: wrote {written} frames, planned {plan.frames}")

    records = []
    for person_index, trial in enumerate(plan.trials):
        partition_dir = root / "annotations" / "VA_Set" / trial.partition
        partition_dir.mkdir(parents=True, exist_ok=True)
        (partition_dir / f"{trial.name}.txt").write_text(label_file_text(labels[person_index]), encoding="utf-8")
        records.append(
            RenderedTrial(
                plan=trial,
                identity=people[person_index],
                labels=labels[person_index],
                landmarks=landmarks[person_index],
                missing_jpgs=tuple(skipped[person_index]),
            )
        )
    return tuple(records)


def _per_frame(values: np.ndarray, frames: int) -> np.ndarray:
    """Label values for every video frame: frames past the label file repeat its last row."""
    if len(values) >= frames:
        return values[:frames]
    return np.concatenate([values, np.repeat(values[-1:], frames - len(values))])


def _head_paths(
    rng: np.random.Generator, plan: VideoPlan, people: list[Identity], arousal: list[np.ndarray]
) -> list[HeadPath]:
    width, height = plan.size
    count = len(people)
    paths = []
    for slot, person in enumerate(people):
        anchor_x = width * (slot + 0.5) / count + rng.uniform(-0.04, 0.04) * width
        anchor_y = height * rng.uniform(0.38, 0.46)
        scale = EYE_DISTANCE[count] * height * person.size_factor / person.eye_distance  # ~1 after resize_identity
        paths.append(
            head_path(
                rng,
                plan.frames,
                plan.fps,
                arousal[slot],
                anchor=(anchor_x, anchor_y),
                scale=scale,
                frame_size=(width // count, height),
            )
        )
    return paths


def _soundtrack(
    rng: np.random.Generator, plan: VideoPlan, people: list[Identity], arousal: list[np.ndarray]
) -> np.ndarray:
    """The video's audio at 16 kHz: each person's voice (panned in a two-person video) over a room noise floor."""
    samples = round(plan.frames / plan.fps * SAMPLE_RATE)
    channels = np.zeros((plan.audio_channels, samples), dtype=np.float32)
    for person, trial, curve in zip(people, plan.trials, arousal, strict=True):
        voice = speak(rng, curve, plan.fps, samples, Voice(person.voice_f0_hz, person.formant_factor))
        gains = PAN[trial.side] if trial.side is not None else (1.0, 1.0)
        for channel in range(plan.audio_channels):
            channels[channel] += gains[channel] * voice
    channels += room_noise(rng, samples)[None, :]
    return limit(channels)
