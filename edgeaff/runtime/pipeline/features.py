"""Per-frame features in frame order: face crops through the visual graph, audio through MFCC and VGGish.

Frames enter with their face crop; the visual graph embeds them in batches. Each frame then waits until its audio
features are ready (:mod:`edgeaff.runtime.audio.frame_audio`: about 1 s of look-ahead for VGGish), the VGGish graph
embeds its log-mel example (consecutive frames sharing an example share the call), and the frame leaves as a
:class:`ReadyFrame`, always in order. Every per-frame network runs once per frame. What waits is at most the
visual batch plus the audio look-ahead (:attr:`FeatureStage.max_pending`).
"""

from __future__ import annotations

import collections
import dataclasses
from collections.abc import Callable

import numpy as np

from edgeaff.runtime.audio.frame_audio import FrameAudio, FrameAudioFeatures, FrameKey
from edgeaff.runtime.backends.base import Runner
from edgeaff.runtime.pipeline.prediction import Box
from edgeaff.runtime.pipeline.timing import StageTimer

# A frame is on the constant-rate grid when its time is within this fraction of a frame of index / fps.
GRID_TOLERANCE = 0.25
# Frames that may wait for audio before the audio counts as stalled (a live stream that announced a sound track
# and stopped sending it): 10 s at 30 fps. Files never get there: their audio is read ahead of the frames.
MAX_WAITING_FRAMES = 300


class AlignmentClock:
    """Chooses how a frame's audio rows are found: by frame index (constant rate) or by timestamp.

    For a constant frame rate the reference's frame-index rule (``*_for_fps``) gives exactly the rows
    ``edgeaff prepare`` used. It is used while every frame so far sits on the ``index / fps`` grid (time measured
    from the first frame); from the first frame off the grid on (a variable frame rate), the timestamp rule.

    Args:
        fps: the source's nominal frame rate (``None``: timestamps only).
        by_index: whether the index rule may be used at all (``False`` for live sources).
    """

    def __init__(self, fps: float | None, *, by_index: bool) -> None:
        self.fps = fps if by_index and fps and fps > 0 else None
        self.constant = self.fps is not None
        self._first: float | None = None

    def key(self, index: int, t_s: float) -> FrameKey:
        """The :class:`FrameKey` of a frame."""
        self._first = t_s if self._first is None else self._first
        relative = max(t_s - self._first, 0.0)
        if self.constant and self.fps is not None and abs(relative - index / self.fps) <= GRID_TOLERANCE / self.fps:
            return FrameKey(index, relative, self.fps)
        self.constant = False
        return FrameKey(index, relative, None)


@dataclasses.dataclass
class FaceEntry:
    """One subject's face in a frame on its way through the feature stage: ``crop`` until it is embedded, then
    ``embedding``."""

    track: int | None
    found: bool
    box: Box | None
    crop: np.ndarray | None
    embedding: np.ndarray | None = None


@dataclasses.dataclass
class FrameState:
    """A frame on its way through the feature stage, with one face entry per subject (single-subject mode: one;
    multi-face mode: one per live track, possibly none). ``ended``: tracks that ended before this frame."""

    index: int
    t_s: float
    arrival: float
    faces: list[FaceEntry]
    key: FrameKey | None
    precomputed: tuple[np.ndarray, np.ndarray] | None = None
    image: np.ndarray | None = None
    gap: bool = False
    ended: tuple[int, ...] = ()

    @property
    def embedded(self) -> bool:
        """Every face of the frame has its embedding."""
        return all(face.embedding is not None for face in self.faces)


@dataclasses.dataclass(frozen=True)
class ReadyFace:
    """One subject's face in a ready frame: its track (``None``: single subject), whether a face was found, the
    box and the (M, E) embeddings."""

    track: int | None
    found: bool
    box: Box | None
    embedding: np.ndarray


@dataclasses.dataclass(frozen=True)
class ReadyFrame:
    """A frame with all its features: each subject's face embeddings and the raw VGGish (128,) / MFCC (39,) shared
    by all of them (``None``: no audio)."""

    index: int
    t_s: float
    arrival: float
    faces: tuple[ReadyFace, ...]
    vggish: np.ndarray | None
    mfcc: np.ndarray | None
    image: np.ndarray | None
    gap: bool = False
    ended: tuple[int, ...] = ()

    @property
    def audio(self) -> bool:
        """Whether real audio features came with the frame."""
        return self.vggish is not None


class FeatureStage:
    """Turns frames (with face crops) and audio into :class:`ReadyFrame` blocks, in order.

    Args:
        visual: entered runner of the visual graph.
        vggish: entered runner of the VGGish graph, or ``None`` when no audio features are needed.
        audio: the audio feature stream, or ``None`` (frames then carry no audio unless precomputed).
        emit: receives each block of ready frames, in frame order.
        timer: records ``visual``, ``audio_features`` and ``vggish``.
        visual_batch: frames per visual graph call (1 for the lowest latency); the crops of all their faces go
            together, in calls of at most ``max_crops`` crops.
        max_crops: most face crops per visual graph call (the engine profile's maximum).
        vggish_batch: examples per VGGish call at most.
        on_stall: called once if the audio stalls (more than :data:`MAX_WAITING_FRAMES` frames wait for it); from
            then on frames leave without audio (zero audio, ``audio=0``), so memory stays bounded.
    """

    def __init__(
        self,
        *,
        visual: Runner,
        vggish: Runner | None,
        audio: FrameAudio | None,
        emit: Callable[[list[ReadyFrame]], None],
        timer: StageTimer,
        visual_batch: int = 16,
        max_crops: int = 64,
        vggish_batch: int = 32,
        on_stall: Callable[[int], None] | None = None,
    ) -> None:
        self.visual = visual
        self.vggish = vggish
        self.audio = audio
        self.emit = emit
        self.timer = timer
        self.visual_batch = max(1, visual_batch)
        self.max_crops = max(1, max_crops)
        self.vggish_batch = max(1, vggish_batch)
        self.max_pending = 0
        self.stalled = False
        self._on_stall = on_stall
        self._pending: collections.deque[FrameState] = collections.deque()
        self._unembedded: list[FrameState] = []
        self._last_example: tuple[int, np.ndarray] | None = None

    def add_audio(self, samples: np.ndarray) -> None:
        """Feed audio samples; frames waiting for them may leave."""
        if self.audio is not None:
            with self.timer.measure("audio_features", frames=0):
                self.audio.push(samples)
            self._drain()

    def end_audio(self) -> None:
        """The audio ended (a short track, or the end of the source): frames after it take the clamped last rows."""
        if self.audio is not None and not self.audio.finished:
            with self.timer.measure("audio_features", frames=0):
                self.audio.finish()
            self._drain()

    def add_frame(self, frame: FrameState) -> None:
        """Queue a frame (with its crop); embeds a batch when one is full, then lets ready frames leave."""
        self._pending.append(frame)
        self._unembedded.append(frame)
        self.max_pending = max(self.max_pending, len(self._pending))
        if len(self._unembedded) >= self.visual_batch:
            self._embed()
        self._drain()
        if len(self._pending) > MAX_WAITING_FRAMES and self.audio is not None:
            self.stalled = True  # the audio stopped arriving: let the frames go without it
            self.audio = None
            if self._on_stall is not None:
                self._on_stall(len(self._pending))
            self._drain()

    def flush(self) -> None:
        """Embed the frames queued so far without waiting for a full batch, and let ready frames leave."""
        if self._unembedded:
            self._embed()
            self._drain()

    def finish(self) -> None:
        """End of the source: embed what is left, end the audio, and let every frame leave."""
        self._embed()
        self.end_audio()
        self._drain()

    def _embed(self) -> None:
        if not self._unembedded:
            return
        faces = [face for frame in self._unembedded for face in frame.faces]
        for begin in range(0, len(faces), self.max_crops):
            part = faces[begin : begin + self.max_crops]
            batch = np.stack([face.crop for face in part if face.crop is not None])
            with self.timer.measure("visual", frames=len(batch)):
                embeddings = self.visual.infer({"frames": batch})["embeddings"]
            for face, embedding in zip(part, embeddings, strict=True):
                face.embedding = embedding
                face.crop = None
        self._unembedded = []

    def _ready(self, frame: FrameState) -> bool:
        if not frame.embedded:
            return False
        if frame.precomputed is not None or self.audio is None or frame.key is None:
            return True
        return self.audio.ready(frame.key)

    def _drain(self) -> None:
        while self._pending and self._ready(self._pending[0]):
            block: list[FrameState] = []
            while self._pending and len(block) < self.vggish_batch and self._ready(self._pending[0]):
                block.append(self._pending.popleft())
            self.emit(self._complete(block))

    def _complete(self, block: list[FrameState]) -> list[ReadyFrame]:
        features: list[FrameAudioFeatures | None] = []
        for frame in block:
            if frame.precomputed is None and self.audio is not None and frame.key is not None:
                with self.timer.measure("audio_features", frames=1):
                    features.append(self.audio.take(frame.key))  # taken even without a face: releases old rows
            else:
                features.append(None)
        # VGGish runs only for frames somebody's prediction needs (multi-face mode can have frames without faces).
        vggish = self._vggish([f for f, frame in zip(features, block, strict=True) if f is not None and frame.faces])
        ready = []
        for frame, feature in zip(block, features, strict=True):
            v = m = None
            if frame.precomputed is not None:
                v, m = frame.precomputed
            elif feature is not None and frame.faces:
                v, m = vggish[feature.start_row], feature.mfcc
            faces = []
            for face in frame.faces:
                assert face.embedding is not None
                faces.append(ReadyFace(face.track, face.found, face.box, face.embedding))
            ready.append(
                ReadyFrame(
                    frame.index, frame.t_s, frame.arrival, tuple(faces), v, m, frame.image, frame.gap, frame.ended
                )
            )
        return ready

    def _vggish(self, features: list[FrameAudioFeatures]) -> dict[int, np.ndarray]:
        """Raw VGGish embeddings by example start row (each distinct example computed once)."""
        result: dict[int, np.ndarray] = {}
        if self._last_example is not None:
            result[self._last_example[0]] = self._last_example[1]
        todo: dict[int, np.ndarray] = {}
        for feature in features:
            if feature.start_row not in result:
                todo.setdefault(feature.start_row, feature.example)
        if todo and self.vggish is not None:
            starts = list(todo)
            with self.timer.measure("vggish", frames=len(starts)):
                output = self.vggish.infer({"log_mel": np.stack([todo[s] for s in starts])})["vggish"]
            result.update(zip(starts, output, strict=True))
        if features:
            last = features[-1].start_row
            self._last_example = (last, result[last])
        return result
