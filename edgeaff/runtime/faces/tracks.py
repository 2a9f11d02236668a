"""Every face in the picture, each with a stable track id: births, re-identification and deaths.

:class:`FaceTracks` follows up to ``max_faces`` faces at once. Each track is followed exactly as the single-subject
:class:`~edgeaff.runtime.faces.stage.FaceStage` follows its subject (a :class:`~edgeaff.runtime.faces.follower.
Follower`: optical flow between detections, periodic re-detection in a region around the face first, then in the
whole frame by overlap with its last box, the whole-frame find detected again in its region), so a person who
never meets anyone gets the crops a single-subject stage restricted to that person gets. On top of that, per frame:

1. **Association.** Tracks whose own search failed share one whole-frame detection; detections are assigned to
   them by overlap with their last box (IoU ≥ ``same_subject_iou``), by the Hungarian algorithm (SciPy's
   ``linear_sum_assignment``) so that two tracks never take the same face.
2. **Lost tracks.** A track whose face is not found is *lost*: its frames are faceless (the black crop, ``found``
   false) while the whole frame is searched every frame. A detection near where the track is expected (its last box
   moved on at its recent velocity: within ``reid_distance`` face sizes, size within a factor ``reid_scale``) and,
   once the track has an appearance template, looking like it (``min_similarity``) gives the track its face back.
   Lost tracks are matched to such detections by the Hungarian algorithm on distance and appearance.
3. **Deaths.** A track lost for more than ``timeout_s`` seconds ends and frees its slot: a person who comes back
   later gets a new track (re-identification only within the time-out, near the expected place).
4. **Births.** Whole-frame detections (at least every ``detect_every`` frames while a slot is free, every frame
   while nobody is followed or a track is lost) that belong to no track start new tracks once a closer look in
   their region confirms them (``refine_in_region``; this keeps face-like background texture out). When there are
   more new faces than free slots, the stage's ``select`` policy orders them (the largest first by default); the
   rest are not followed (:attr:`FaceTracks.overflow` says how many were left out at most).
5. **One face, one track.** When the faces of two tracks overlap (IoU ≥ ``same_subject_iou``: two faces crossing,
   or optical flow that slid onto the other face), the track whose appearance template matches its face better
   keeps it (without templates: the fresh detection, then the older track) and the other is lost for that frame.
   A face that overlaps another one by IoU ≥ 0.1 and no longer looks like its track (``min_similarity``: covered
   by the other face) is lost too.

The appearance template is a normalised grey 24×24 thumbnail of the aligned face crop, averaged over the frames in
which the track's face was *alone* (overlapping no other track's face by IoU ≥ 0.1); normalised cross-correlation
compares two of them (measured on the test photos: 0.90-0.97 for the same person at other positions and sizes,
0.42-0.45 between the two people, about 0.7 for a face half out from behind another). The position and velocity
that predict where a lost face comes back are also taken from the frames in which it was alone.
"""

from __future__ import annotations

import collections
import dataclasses
import math
from collections.abc import Callable
from typing import Any

import numpy as np

from edgeaff.runtime.errors import InvalidInputError, MissingDependencyError
from edgeaff.runtime.faces.detection import FaceDetection, FaceSelect, box_iou
from edgeaff.runtime.faces.follower import Follower
from edgeaff.runtime.faces.stage import FaceResult, FaceStage
from edgeaff.runtime.faces.tracking import KltTracker

MAX_FACES = 32  # the most faces followed at once (each costs a visual-graph crop and its temporal state per frame)
MAX_TIMEOUT_S = 60.0
FALLBACK_RATE = 30.0  # frames per second assumed when frames come without times
_TEMPLATE_SIDE = 24
_HISTORY = 10  # frames a velocity is fitted over
_TEMPLATE_RATE = 0.2  # weight of a new frame in the running appearance template
_FAR = 1e6  # cost of a forbidden pairing
_CLOSE_IOU = 0.1  # two faces overlapping this much are not "alone" (people sitting close may touch less)


@dataclasses.dataclass(frozen=True)
class TrackOptions:
    """How many faces to follow and when a lost face is the same person again.

    Attributes:
        max_faces: the most faces followed at once (1..32).
        timeout_s: a track lost for longer than this ends (0 < s <= 60).
        reid_distance: a lost face is found again within this many face sizes of where it is expected.
        reid_scale: ... and with a size within this factor of its last size.
        min_similarity: ... and, once the track has an appearance template, a normalised cross-correlation with it
            of at least this (-1..1; -1 turns the appearance check off).
        appearance: use appearance templates at all (found-again checks and overlap conflicts).
    """

    max_faces: int = 8
    timeout_s: float = 2.0
    reid_distance: float = 1.0
    reid_scale: float = 1.5
    min_similarity: float = 0.55
    appearance: bool = True

    def __post_init__(self) -> None:
        if isinstance(self.max_faces, bool) or not 1 <= int(self.max_faces) <= MAX_FACES:
            raise InvalidInputError(f"max_faces must be 1..{MAX_FACES}, got {self.max_faces}")
        if not (math.isfinite(self.timeout_s) and 0 < self.timeout_s <= MAX_TIMEOUT_S):
            raise InvalidInputError(f"the track time-out must be in (0, {MAX_TIMEOUT_S:g}] s, got {self.timeout_s}")
        if not (0 < self.reid_distance <= 10 and 1 <= self.reid_scale <= 10 and -1 <= self.min_similarity <= 1):
            raise InvalidInputError(
                "tracks: 0 < reid_distance <= 10, 1 <= reid_scale <= 10, -1 <= min_similarity <= 1; got "
                f"{self.reid_distance}, {self.reid_scale}, {self.min_similarity}"
            )


@dataclasses.dataclass(frozen=True)
class TrackedFace:
    """One live track in one frame: its id and its face (``face.found`` false while the track is lost)."""

    track: int
    face: FaceResult


@dataclasses.dataclass(frozen=True)
class TracksResult:
    """What :meth:`FaceTracks.process` gives for one frame.

    Attributes:
        faces: every live track (found or lost), by id.
        started: ids of the tracks born in this frame.
        ended: ids of the tracks that ended since the previous frame (their last frame was an earlier one).
        visible: faces the whole-frame detection found in this frame (``None``: it did not run).
    """

    faces: tuple[TrackedFace, ...]
    started: tuple[int, ...]
    ended: tuple[int, ...]
    visible: int | None


class _Track:
    """One track's state.

    ``anchor`` is where the face was last seen alone (overlapping no other track's face) and ``velocity`` its
    motion then, fitted over the last :data:`_HISTORY` such frames: positions next to another face are not trusted
    for predicting where a lost face comes back.
    """

    def __init__(self, track_id: int, follower: Follower, t: float) -> None:
        self.id = track_id
        self.follower = follower
        self.first_t = t
        self.seen_t = t  # when the face was last found
        self.anchor: FaceDetection | None = None
        self.anchor_t = t
        self.velocity = np.zeros(2)  # box centre, pixels per second
        self.template: np.ndarray | None = None
        self._history: collections.deque[tuple[float, float, float]] = collections.deque(maxlen=_HISTORY)

    @property
    def lost(self) -> bool:
        return self.follower.last is None

    def expected(self, t: float, horizon_s: float) -> tuple[np.ndarray, float]:
        """Where the face is expected at ``t`` and the seconds since it was last seen alone."""
        assert self.anchor is not None
        elapsed = max(t - self.anchor_t, 0.0)
        return np.asarray(self.anchor.center) + self.velocity * min(elapsed, horizon_s), elapsed

    def found(self, face: FaceDetection, t: float, *, alone: bool, consecutive: bool) -> None:
        """The face was found at time ``t``; ``alone``: overlapping no other face; ``consecutive``: also found
        alone in the frame before."""
        self.seen_t = t
        if not alone:
            self._history.clear()
            return
        if not consecutive:
            self._history.clear()
        self._history.append((t, *face.center))
        self.anchor, self.anchor_t = face, t
        if len(self._history) >= 2:
            points = np.array(self._history)
            times = points[:, 0] - points[:, 0].mean()
            spread = float(times @ times)
            if spread > 0:
                self.velocity = times @ (points[:, 1:] - points[:, 1:].mean(axis=0)) / spread


@dataclasses.dataclass
class _Work:
    """One frame on its way through :meth:`FaceTracks.process`: the faces given to tracks so far."""

    frame: np.ndarray
    t: float
    index: int
    faces: dict[int, FaceDetection]
    detected: set[int]
    attempted: set[int]

    def take(self, track_id: int, face: FaceDetection) -> None:
        """Give ``face`` (a fresh detection) to track ``track_id``."""
        self.faces[track_id] = face
        self.detected.add(track_id)
        self.attempted.add(track_id)


class FaceTracks:
    """Follow every face (up to ``max_faces``) with a stable id; see the module docstring.

    Args:
        stage: an open :class:`FaceStage`: its detector, options (``detect_every``, ``select``, region search) and
            alignment are used; its own subject is not.
        options: :class:`TrackOptions`.
        new_tracker: makes the optical-flow tracker of each new track (default: a :class:`KltTracker` with the
            stage's tracker options).

    Example:
        >>> with FaceStage.dnn("bundle/face_detector.onnx") as stage:  # doctest: +SKIP
        ...     tracks = FaceTracks(stage, TrackOptions(max_faces=4))
        ...     for t_s, frame_bgr in frames:
        ...         for face in tracks.process(frame_bgr, t_s).faces:
        ...             face.track, face.face.crop, face.face.found
    """

    def __init__(
        self,
        stage: FaceStage,
        options: TrackOptions | None = None,
        *,
        new_tracker: Callable[[], Any] | None = None,
    ) -> None:
        self.stage = stage
        self.options = options or TrackOptions()
        self._new_tracker = new_tracker or (lambda: KltTracker(stage.options.tracker))
        self._tracks: dict[int, _Track] = {}
        self._next_id = 0
        self._since_whole = 0
        self._frames = 0
        self._ended: list[int] = []
        self.counts = {"detected": 0, "tracked": 0, "missing": 0}
        self.started = 0
        self.overflow = 0
        self.overflow_frame: int | None = None

    @property
    def live(self) -> tuple[int, ...]:
        """Ids of the live tracks."""
        return tuple(self._tracks)

    def reset(self) -> None:
        """End every track (a cut, or a live stream that dropped); they are reported as ended with the next frame.
        Ids are never reused."""
        self._ended.extend(self._tracks)
        self._tracks.clear()
        self._since_whole = 0

    def process(self, frame_bgr: np.ndarray, t_s: float | None = None) -> TracksResult:
        """Every followed face in one BGR uint8 frame shown at ``t_s`` seconds (``None``: frames 1/30 s apart).

        Raises:
            InvalidInputError: the frame is not (H, W, 3) uint8.
            RuntimeError: the stage is not open.
        """
        self.stage.check_frame(frame_bgr)
        t = float(t_s) if t_s is not None else self._frames / FALLBACK_RATE
        index = self._frames
        self._frames += 1
        ended = self._expire(t)
        work = _Work(frame_bgr, t, index, {}, set(), set())
        pending = self._follow(work)
        started, visible = self._detect_whole(work, pending)
        self._one_face_one_track(frame_bgr, work.faces, work.detected, work.attempted)
        self._occluded(frame_bgr, work.faces, work.detected, work.attempted)
        results = self._settle(work, t_s)
        return TracksResult(results, tuple(started), tuple(ended), visible)

    # -- the steps ----------------------------------------------------------------------------------------------

    def _expire(self, t: float) -> list[int]:
        """Ends the tracks lost for longer than the timeout; returns their ids (with those ended since the last
        frame)."""
        ended, self._ended = self._ended, []
        for track in list(self._tracks.values()):
            if track.lost and t - track.seen_t > self.options.timeout_s:
                ended.append(track.id)
                del self._tracks[track.id]
        return ended

    def _follow(self, work: _Work) -> list[_Track]:
        """Follows every visible track into this frame (tracker, then a search near its last box); returns the
        tracks found by neither."""
        stage, frame_bgr = self.stage, work.frame
        pending: list[_Track] = []
        for track in self._tracks.values():
            if track.lost:
                continue
            face = track.follower.track(frame_bgr, stage.options.detect_every)
            if face is not None:
                work.faces[track.id] = face
                continue
            work.attempted.add(track.id)
            last = track.follower.last
            assert last is not None
            near = stage.search_near(frame_bgr, last) if stage.options.refresh_in_region else None
            if near is not None:
                work.faces[track.id] = near
                work.detected.add(track.id)
            else:
                pending.append(track)
        return pending

    def _detect_whole(self, work: _Work, pending: list[_Track]) -> tuple[list[int], int | None]:
        """Runs the detector over the whole frame when a track is missing or lost, when there is none, or every
        ``detect_every`` frames while fewer than ``max_faces`` are followed: claims faces for pending and lost
        tracks and starts new ones. Returns the new track ids and how many faces the detector saw (``None``: it did
        not run)."""
        stage, opts, frame_bgr = self.stage, self.options, work.frame
        lost = [t_ for t_ in self._tracks.values() if t_.lost]
        due = self._since_whole >= stage.options.detect_every and len(self._tracks) < opts.max_faces
        self._since_whole += 1
        if not (pending or lost or not self._tracks or due):
            return [], None
        self._since_whole = 1
        everywhere = list(stage.detector.detect(frame_bgr))
        free = self._assign_pending(frame_bgr, pending, everywhere, work.faces, work.detected)
        searching = lost + [t_ for t_ in pending if t_.id not in work.faces]
        free = self._unclaimed(free, work.faces)
        if not free or not (searching or len(self._tracks) < opts.max_faces):
            return [], len(everywhere)
        # Seen closer in its region (keypoints at a higher resolution); faces it does not confirm are left out
        # (face-like background texture).
        free = self._unclaimed([r for r in (stage.refine(frame_bgr, d) for d in free) if r is not None], work.faces)
        return self._births(work, self._find_lost(work, searching, free)), len(everywhere)

    def _settle(self, work: _Work, t_s: float | None) -> tuple[TrackedFace, ...]:
        """Each track's result for this frame; updates the tracks (position, appearance) and the counts."""
        stage, frame_bgr, faces = self.stage, work.frame, work.faces
        alone = {i for i, face in faces.items() if _alone(face, i, faces)}
        results = []
        for track in self._tracks.values():
            face = faces.get(track.id)
            was_alone = not track.lost and track.anchor_t == track.seen_t
            track.follower.settle(
                frame_bgr, face, attempted=track.id in work.attempted, detect_every=stage.options.detect_every
            )
            result = stage.result(frame_bgr, face, detected=track.id in work.detected, t_s=t_s)
            if face is not None:
                track.found(face, work.t, alone=track.id in alone, consecutive=was_alone)
                if self.options.appearance and track.id in alone:
                    track.template = _blend(track.template, _thumbnail(result.crop))
            self.counts["missing" if face is None else "detected" if result.detected else "tracked"] += 1
            results.append(TrackedFace(track.id, result))
        return tuple(results)

    def _assign_pending(
        self,
        frame_bgr: np.ndarray,
        pending: list[_Track],
        everywhere: list[FaceDetection],
        faces: dict[int, FaceDetection],
        detected: set[int],
    ) -> list[FaceDetection]:
        """Tracks whose region search failed take the whole-frame detections overlapping their last box; returns
        the detections left."""
        threshold = self.stage.options.same_subject_iou
        cost = np.full((len(pending), len(everywhere)), _FAR)
        for row, track in enumerate(pending):
            last = track.follower.last
            assert last is not None
            for col, candidate in enumerate(everywhere):
                overlap = _iou(last, candidate)
                if overlap >= threshold:
                    cost[row, col] = 1.0 - overlap
        taken: set[int] = set()
        for row, col in _assign(cost):
            chosen = everywhere[col]
            faces[pending[row].id] = self.stage.refine(frame_bgr, chosen) or chosen
            detected.add(pending[row].id)
            taken.add(col)
        return [d for i, d in enumerate(everywhere) if i not in taken]

    def _unclaimed(self, found: list[FaceDetection], faces: dict[int, FaceDetection]) -> list[FaceDetection]:
        """The detections that overlap no face a track already has in this frame."""
        threshold = self.stage.options.same_subject_iou
        return [d for d in found if not any(_iou(d, f) >= threshold for f in faces.values())]

    def _find_lost(self, work: _Work, searching: list[_Track], free: list[FaceDetection]) -> list[FaceDetection]:
        """Lost tracks take the free detections near where they are expected and looking like them."""
        opts = self.options
        candidates = [track for track in searching if track.anchor is not None]
        if not candidates or not free:
            return free
        thumbs: dict[int, np.ndarray] = {}
        cost = np.full((len(candidates), len(free)), _FAR)
        for row, track in enumerate(candidates):
            anchor = track.anchor
            assert anchor is not None
            size = max(anchor.width, anchor.height, 1.0)
            expected, elapsed = track.expected(work.t, opts.timeout_s)
            reach = opts.reid_distance * max(1.0, elapsed)  # the uncertainty grows with the time out of sight
            for col, candidate in enumerate(free):
                distance = float(np.linalg.norm(np.asarray(candidate.center) - expected)) / size
                ratio = max(candidate.width, 1.0) / max(anchor.width, 1.0)
                if distance > reach or not 1 / opts.reid_scale <= ratio <= opts.reid_scale:
                    continue
                similarity = 1.0
                if opts.appearance and track.template is not None:
                    if col not in thumbs:
                        thumbs[col] = self._thumbnail(work.frame, candidate)
                    similarity = float(track.template @ thumbs[col])
                    if similarity < opts.min_similarity:
                        continue
                cost[row, col] = distance + (1.0 - similarity)
        taken: set[int] = set()
        for row, col in _assign(cost):
            track = candidates[row]
            work.take(track.id, free[col])
            taken.add(col)
        return [d for i, d in enumerate(free) if i not in taken]

    def _births(self, work: _Work, free: list[FaceDetection]) -> list[int]:
        """New tracks for the (confirmed) faces left, in the stage's selection order, while slots are free."""
        started: list[int] = []
        height, width = work.frame.shape[:2]
        left_out = 0
        for candidate in order_faces(free, self.stage.options.select, (width, height)):
            if any(_iou(candidate, f) >= self.stage.options.same_subject_iou for f in work.faces.values()):
                continue  # a refined birth may land on a face already taken in this frame
            if len(self._tracks) >= self.options.max_faces:
                left_out += 1
                continue
            track = _Track(self._next_id, Follower(self._new_tracker()), work.t)
            self._next_id += 1
            self._tracks[track.id] = track
            work.take(track.id, candidate)
            started.append(track.id)
            self.started += 1
        if left_out > self.overflow:
            self.overflow = left_out
            self.overflow_frame = work.index if self.overflow_frame is None else self.overflow_frame
        return started

    def _one_face_one_track(
        self,
        frame_bgr: np.ndarray,
        faces: dict[int, FaceDetection],
        detected: set[int],
        attempted: set[int],
    ) -> None:
        """Two tracks whose faces overlap: one keeps the face, the other is lost in this frame."""
        threshold = self.stage.options.same_subject_iou
        ids = sorted(faces)
        pairs = sorted(
            ((_iou(faces[a], faces[b]), a, b) for i, a in enumerate(ids) for b in ids[i + 1 :]),
            reverse=True,
        )
        for overlap, a, b in pairs:
            if overlap < threshold or a not in faces or b not in faces:
                continue
            loser = self._loser(frame_bgr, faces, detected, a, b)
            del faces[loser]
            detected.discard(loser)
            attempted.add(loser)

    def _occluded(
        self,
        frame_bgr: np.ndarray,
        faces: dict[int, FaceDetection],
        detected: set[int],
        attempted: set[int],
    ) -> None:
        """A face next to another one that no longer looks like its track (covered by the other face, or optical
        flow that slid onto it) is lost in this frame."""
        if not self.options.appearance:
            return
        for track_id in [i for i, face in faces.items() if not _alone(face, i, faces)]:
            template = self._tracks[track_id].template
            if template is None:
                continue
            if float(template @ self._thumbnail(frame_bgr, faces[track_id])) < self.options.min_similarity:
                del faces[track_id]
                detected.discard(track_id)
                attempted.add(track_id)

    def _loser(self, frame_bgr: np.ndarray, faces: dict[int, FaceDetection], detected: set[int], a: int, b: int) -> int:
        track_a, track_b = self._tracks[a], self._tracks[b]
        if self.options.appearance and track_a.template is not None and track_b.template is not None:
            sim_a = float(track_a.template @ self._thumbnail(frame_bgr, faces[a]))
            sim_b = float(track_b.template @ self._thumbnail(frame_bgr, faces[b]))
            if sim_a != sim_b:
                return b if sim_a > sim_b else a
        if (a in detected) != (b in detected):
            return b if a in detected else a
        return max(a, b)  # the younger track gives way

    def _thumbnail(self, frame_bgr: np.ndarray, face: FaceDetection) -> np.ndarray:
        return _thumbnail(self.stage.result(frame_bgr, face, detected=True, t_s=None).crop)


def order_faces(faces: list[FaceDetection], policy: FaceSelect, frame_size: tuple[int, int]) -> list[FaceDetection]:
    """``faces`` in the order ``policy`` prefers them (the one :func:`select_subject` picks first)."""
    policy = FaceSelect.parse(policy)
    if policy is FaceSelect.LARGEST:
        return sorted(faces, key=lambda d: -d.area)
    if policy is FaceSelect.LEFT:
        return sorted(faces, key=lambda d: d.center[0])
    if policy is FaceSelect.RIGHT:
        return sorted(faces, key=lambda d: -d.center[0])
    cx, cy = frame_size[0] / 2, frame_size[1] / 2
    return sorted(faces, key=lambda d: (d.center[0] - cx) ** 2 + (d.center[1] - cy) ** 2)


def _iou(a: FaceDetection, b: FaceDetection) -> float:
    return float(box_iou(a.box, b.box[None])[0])


def _alone(face: FaceDetection, track_id: int, faces: dict[int, FaceDetection]) -> bool:
    """No other track's face overlaps this one by :data:`_CLOSE_IOU` or more."""
    return all(other == track_id or _iou(face, f) < _CLOSE_IOU for other, f in faces.items())


def _assign(cost: np.ndarray) -> list[tuple[int, int]]:
    """Minimum-cost pairs (row, column) of ``cost``, leaving out forbidden pairs."""
    if cost.size == 0:
        return []
    try:
        from scipy.optimize import linear_sum_assignment
    except ImportError as exc:
        raise MissingDependencyError(
            f"following several faces needs SciPy ({exc}); install it with: pip install 'scipy>=1.10'"
        ) from exc
    rows, cols = linear_sum_assignment(cost)
    return [(int(r), int(c)) for r, c in zip(rows, cols, strict=True) if cost[r, c] < _FAR]


def _thumbnail(crop_rgb: np.ndarray) -> np.ndarray:
    """The appearance descriptor of an aligned face crop: grey, 24×24 (block means), zero mean, unit norm."""
    grey = crop_rgb.astype(np.float32).mean(axis=2)
    side = grey.shape[0] - grey.shape[0] % _TEMPLATE_SIDE
    block = side // _TEMPLATE_SIDE
    small = grey[:side, :side].reshape(_TEMPLATE_SIDE, block, _TEMPLATE_SIDE, block).mean(axis=(1, 3)).ravel()
    small = small - small.mean()
    norm = float(np.linalg.norm(small))
    return small / norm if norm > 0 else small


def _blend(template: np.ndarray | None, thumbnail: np.ndarray) -> np.ndarray:
    if template is None:
        return thumbnail
    mixed = (1 - _TEMPLATE_RATE) * template + _TEMPLATE_RATE * thumbnail
    norm = float(np.linalg.norm(mixed))
    return mixed / norm if norm > 0 else mixed
