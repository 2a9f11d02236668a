"""Scenes with several people, and the figures that score a multi-face tracker on them.

The people are the two public-domain photographs edgeaff's synthetic dataset ships (``collins``: Eileen Collins,
``hopper``: Grace Hopper; ``edgeaff/synth/assets``), cut out with the dataset's feathered head mask and composited
over a smooth background, later actors over earlier ones. Each actor follows a scripted path, so the true face
position of every person in every frame is known: the centre of the eyes and mouth corners, and the distance
between the eyes.

:func:`score_tracks` compares a tracker's output with that truth the CLEAR-MOT way (Bernardin and Stiefelhagen,
2008) and with the identity measures of Ristani et al. (2016): per frame, true faces and track boxes are matched by
the Hungarian algorithm on centre distance (a match needs the track's box centre within half an eye distance ×
``gate`` of the true centre), keeping last frame's pairs when they still qualify; an *identity switch* is a true
face matched to another track than the last time it was matched.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from functools import cache

import numpy as np
from face_scenes import background
from scipy.optimize import linear_sum_assignment

from edgeaff.synth.faces import Identity, load_face_photos, make_identity

Position = tuple[float, float, float]  # eye-mouth centre x, y in frame pixels, and eye distance in frame pixels


@cache
def person(name: str) -> Identity:
    """The photograph ``name`` (``collins`` or ``hopper``) as an RGBA cut-out with its landmarks (fixed tint)."""
    photo = next(p for p in load_face_photos() if p.name == name)
    return make_identity(name, photo, np.random.default_rng(7), mirrored=False)


@dataclasses.dataclass(frozen=True)
class Actor:
    """A person and where they are in each frame (``None``: out of the picture)."""

    name: str
    path: Callable[[int], Position | None]


def _placement(identity: Identity, position: Position) -> np.ndarray:
    """2×3 map from the photo to the frame putting the face's centre at ``position`` with its eye distance."""
    points = identity.landmarks
    centre = points[[0, 1, 3, 4]].mean(axis=0)
    scale = position[2] / identity.eye_distance
    shift = np.array(position[:2]) - scale * centre
    return np.array([[scale, 0.0, shift[0]], [0.0, scale, shift[1]]])


def render(
    actors: Sequence[Actor], index: int, *, size: tuple[int, int] = (640, 360), seed: int = 3
) -> tuple[np.ndarray, dict[int, Position]]:
    """Frame ``index`` (BGR uint8, ``size`` = (width, height)) and the true position of each visible actor."""
    import cv2

    width, height = size
    frame = _background(width, height, seed).astype(np.float32)
    truth: dict[int, Position] = {}
    for number, actor in enumerate(actors):
        position = actor.path(index)
        if position is None:
            continue
        identity = person(actor.name)
        matrix = _placement(identity, position)
        rgba = cv2.warpAffine(identity.image, matrix, (width, height), flags=cv2.INTER_AREA, borderValue=(0, 0, 0, 0))
        alpha = rgba[:, :, 3:4].astype(np.float32) / 255.0
        frame = frame * (1 - alpha) + rgba[:, :, 2::-1].astype(np.float32) * alpha  # RGB -> BGR
        truth[number] = position
    return np.clip(frame + 0.5, 0, 255).astype(np.uint8), truth


@cache
def _background(width: int, height: int, seed: int) -> np.ndarray:
    return background(height, width, seed=seed)


def linear(start: tuple[float, float], end: tuple[float, float], frames: int, eyes: float) -> Callable[[int], Position]:
    """A face moving at constant speed from ``start`` (frame 0) to ``end`` (frame ``frames - 1``)."""

    def at(index: int) -> Position:
        f = min(max(index / max(frames - 1, 1), 0.0), 1.0)
        return (start[0] + f * (end[0] - start[0]), start[1] + f * (end[1] - start[1]), eyes)

    return at


def drifting(centre: tuple[float, float], eyes: float, *, phase: float = 0.0) -> Callable[[int], Position]:
    """A face that stays near ``centre``, drifting a few pixels (a person sitting still)."""

    def at(index: int) -> Position:
        return (centre[0] + 6 * np.sin(index / 13.0 + phase), centre[1] + 3 * np.cos(index / 17.0 + phase), eyes)

    return at


def absent_in(path: Callable[[int], Position], frames: range) -> Callable[[int], Position | None]:
    """``path``, except out of the picture during ``frames``."""
    return lambda index: None if index in frames else path(index)


@dataclasses.dataclass(frozen=True)
class TrackScore:
    """CLEAR-MOT and identity figures of a tracker on one scene."""

    truths: int  # true faces over all frames
    matches: int
    misses: int
    false_positives: int
    switches: int
    idf1: float

    @property
    def mota(self) -> float:
        """1 - (misses + false positives + identity switches) / true faces."""
        return 1.0 - (self.misses + self.false_positives + self.switches) / max(self.truths, 1)


def score_tracks(
    truth: Sequence[dict[int, Position]], tracks: Sequence[dict[int, tuple[float, float]]], *, gate: float = 1.0
) -> TrackScore:
    """Score per-frame track centres (``{track: (x, y)}``, found faces only) against per-frame truths."""
    last: dict[int, int] = {}  # true person -> track matched the last time
    matches = misses = false_positives = switches = 0
    pair_counts: dict[tuple[int, int], int] = {}
    for people, found in zip(truth, tracks, strict=True):
        person_ids, track_ids = list(people), list(found)
        cost = np.full((len(person_ids), len(track_ids)), 1e6)
        for r, p in enumerate(person_ids):
            x, y, eyes = people[p]
            for c, t in enumerate(track_ids):
                distance = float(np.hypot(found[t][0] - x, found[t][1] - y))
                if distance <= gate * eyes / 2:
                    cost[r, c] = distance - (1e3 if last.get(p) == t else 0.0)  # keep last frame's pairs
        rows, cols = linear_sum_assignment(cost) if cost.size else ([], [])
        paired = [(person_ids[r], track_ids[c]) for r, c in zip(rows, cols, strict=True) if cost[r, c] < 1e5]
        for p, t in paired:
            if p in last and last[p] != t:
                switches += 1
            last[p] = t
            pair_counts[p, t] = pair_counts.get((p, t), 0) + 1
        matches += len(paired)
        misses += len(person_ids) - len(paired)
        false_positives += len(track_ids) - len(paired)
    truths = sum(len(people) for people in truth)
    detections = sum(len(found) for found in tracks)
    return TrackScore(truths, matches, misses, false_positives, switches, _idf1(pair_counts, truths, detections))


def _idf1(pair_counts: dict[tuple[int, int], int], truths: int, detections: int) -> float:
    """IDF1: 2·IDTP / (true faces + track detections), IDTP from the one-to-one person↔track assignment that
    maximises the frames they share."""
    if not pair_counts:
        return 0.0
    people = sorted({p for p, _ in pair_counts})
    tracks = sorted({t for _, t in pair_counts})
    shared = np.zeros((len(people), len(tracks)))
    for (p, t), count in pair_counts.items():
        shared[people.index(p), tracks.index(t)] = count
    rows, cols = linear_sum_assignment(-shared)
    return 2.0 * float(shared[rows, cols].sum()) / max(truths + detections, 1)
