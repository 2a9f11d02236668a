"""What a :class:`~edgeaff.runtime.pipeline.pipeline.Pipeline` is asked to do: one frozen, validated description.

Every closed set is an enum (:class:`Mode` here; ``Backend`` in :mod:`edgeaff.runtime.backends.graphs`; ``Clip``
in :mod:`edgeaff.runtime.pipeline.ensemble`; ``DetectorKind`` and ``FaceSelect`` in :mod:`edgeaff.runtime.faces`),
and every number has a checked range, so a bad option fails before any graph is opened.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from edgeaff.runtime.backends.graphs import BackendOptions
from edgeaff.runtime.choices import Choice
from edgeaff.runtime.errors import InvalidInputError
from edgeaff.runtime.faces import MAX_FACES, DetectorKind, FaceSelect, TrackOptions
from edgeaff.runtime.limits import usable_cores
from edgeaff.runtime.pipeline.ensemble import Clip

MAX_VISUAL_BATCH = 64  # the engines' default profile for the visual graph
OFFLINE_BATCH = 16  # face crops per visual graph call when processing a file
STREAM_MAX_BATCH = 16  # stream mode: most frames gathered into one visual call while catching up
MAX_DETECT_EVERY = 10_000
DEFAULT_TRACK_TIMEOUT_S = TrackOptions().timeout_s


class Faces(Choice):
    """Whose valence and arousal are predicted (``--faces``).

    ``one`` (default): one subject, chosen by ``face_select``; every frame gets one prediction (``track`` is
    ``None``). ``all``: every face, each with its own track id and its own temporal state (at most ``max_faces``
    at once); a frame gets one prediction per live track.
    """

    __label__ = "face count"

    ONE = "one"
    ALL = "all"


class Mode(Choice):
    """How predictions are made.

    ``offline``: the reference's 300-frame windows (hop 200), overlapping predictions averaged, the folds merged by
    CCC-centering over the whole video: every prediction is final when the source ends. ``stream``: the causal
    streaming graph, one update per frame, folds merged by causal CCC-centering: each prediction is final as soon
    as its frame's features are (about 1 s after the frame with audio).
    """

    OFFLINE = "offline"
    STREAM = "stream"


@dataclasses.dataclass(frozen=True)
class PipelineOptions:
    """The settings of a :class:`Pipeline` (the same for every source it runs).

    Attributes:
        backend: backend, precision, threads, CUDA device, TensorRT cache and engine shapes.
        mode: :class:`Mode`, or ``None``: ``stream`` for live sources (cameras, streams, pushed frames), ``offline``
            for files and folders.
        face_detector: ``dnn`` (the bundle's BlazeFace) or ``haar`` (OpenCV's cascade).
        haar_cascade: a Haar cascade XML file instead of OpenCV's bundled one.
        detect_every: detect faces at least every N frames and track in between (1..10000).
        face_select: whom to follow when several faces are visible (``faces="all"``: which new faces come first
            when there are more than free slots).
        faces: ``one`` subject (default) or ``all`` faces, each with its own track (:class:`Faces`).
        max_faces: ``faces="all"``: the most faces followed at once (1..32, default 32); giving it implies
            ``faces="all"``.
        track_timeout_s: ``faces="all"``: a track whose face has not been seen for this long ends (0 < s <= 60);
            a face found again before, near where it is expected, keeps its track.
        clip: where predictions are clipped to [-1, 1]: ``late`` (after ensembling), ``early`` (each model) or
            ``none``.
        batch: frames per visual graph call (1..64). ``None``: offline, measured for this machine (``tune``, else
            16); in stream mode the frames already
            waiting, up to 16: a live source's frames that have arrived (one per call while the pipeline keeps up,
            more while it catches up; no frame waits for others to arrive), a file's next 16 (they are all there).
            A fixed batch in stream mode makes live frames wait for the batch to fill.
        per_model: attach each model's raw prediction to every :class:`Prediction` (``models``).
        images: attach the decoded frame (BGR) to every :class:`Prediction` (``image``), e.g. for drawing. Offline,
            frames wait for the end of the source: they are held JPEG-compressed in a temporary file (in
            ``spool_dir`` or the system's temporary folder) that is deleted when the run ends.
        spool_dir: where that temporary file goes.
        tune: offline, without ``batch``: the visual and VGGish graphs' batch sizes are measured once per machine
            and bundle and cached (:mod:`edgeaff.runtime.pipeline.tuning`; ONNX Runtime backends); ``False``: 16
            and 32. In stream mode, without ``--threads``: the streaming graph's thread count, likewise
            (:mod:`edgeaff.runtime.pipeline.stream_threads`; ONNX Runtime on the CPU); ``False``: 1.
        prefetch: read the source and run the face stage in a background thread, ahead of the graphs
            (:class:`~edgeaff.runtime.io.prefetch.Prefetcher`; the same predictions). ``None``: when this process may
            use two cores or more, where decoding and face tracking then overlap the graphs.
    """

    backend: BackendOptions = dataclasses.field(default_factory=BackendOptions)
    mode: Mode | None = None
    face_detector: DetectorKind = DetectorKind.DNN
    haar_cascade: Path | None = None
    detect_every: int = 10
    face_select: FaceSelect = FaceSelect.LARGEST
    faces: Faces = Faces.ONE
    max_faces: int | None = None
    track_timeout_s: float = DEFAULT_TRACK_TIMEOUT_S
    clip: Clip = Clip.LATE
    batch: int | None = None
    per_model: bool = False
    images: bool = False
    spool_dir: Path | None = None
    tune: bool = True
    prefetch: bool | None = None

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        if self.mode is not None:
            set_(self, "mode", Mode.parse(self.mode))
        set_(self, "face_detector", DetectorKind.parse(self.face_detector))
        set_(self, "face_select", FaceSelect.parse(self.face_select))
        set_(self, "faces", Faces.parse(self.faces))
        if self.max_faces is not None:
            if isinstance(self.max_faces, bool) or not 1 <= int(self.max_faces) <= MAX_FACES:
                raise InvalidInputError(f"--max-faces must be 1..{MAX_FACES}, got {self.max_faces}")
            set_(self, "faces", Faces.ALL)
        self.track_options()  # validates the time-out
        set_(self, "clip", Clip.parse(self.clip))
        if isinstance(self.detect_every, bool) or not 1 <= int(self.detect_every) <= MAX_DETECT_EVERY:
            raise InvalidInputError(f"--detect-every must be 1..{MAX_DETECT_EVERY}, got {self.detect_every}")
        if self.batch is not None and (isinstance(self.batch, bool) or not 1 <= int(self.batch) <= MAX_VISUAL_BATCH):
            raise InvalidInputError(f"--batch must be 1..{MAX_VISUAL_BATCH} (the engines' profile), got {self.batch}")
        if self.haar_cascade is not None and self.face_detector is not DetectorKind.HAAR:
            raise InvalidInputError("--haar-cascade applies to --face-detector haar only")

    @property
    def multi_face(self) -> bool:
        """Whether every face is followed with its own track (``faces="all"``)."""
        return self.faces is Faces.ALL

    def track_options(self) -> TrackOptions:
        """The multi-face tracker's options (``max_faces``: 32 unless given)."""
        return TrackOptions(
            max_faces=MAX_FACES if self.max_faces is None else int(self.max_faces), timeout_s=self.track_timeout_s
        )

    def max_crops(self) -> int:
        """Most face crops per visual graph call: the visual ``frames`` axis maximum of the engine profile
        (``--shape visual.frames=…`` or ``frames=…``), 64 by default."""
        shapes = self.backend.shapes or {}
        limit = shapes.get("visual.frames") or shapes.get("frames")
        return int(limit[2]) if limit is not None else MAX_VISUAL_BATCH

    def visual_batch(self, mode: Mode) -> int:
        """Most frames per visual graph call in ``mode`` (stream mode without ``batch``: a cap, see ``batch``)."""
        return self.batch or (OFFLINE_BATCH if mode is Mode.OFFLINE else STREAM_MAX_BATCH)

    def adaptive_batch(self, mode: Mode) -> bool:
        """Whether the visual graph runs on whatever frames are waiting (stream mode without a fixed ``batch``)."""
        return mode is Mode.STREAM and self.batch is None

    @property
    def prefetch_enabled(self) -> bool:
        """Whether sources are read ahead in a background thread (``prefetch``, or by the cores present)."""
        return self.prefetch if self.prefetch is not None else usable_cores() >= 2
