"""What every video source shares (``design.md`` §5): the items it yields, what it tells about itself, its protocol.

The concrete sources (one module each: ``media_file``, ``face_folder``, ``camera``, ``network``, ``prepared_trial``)
import only this module; :func:`edgeaff.runtime.io.open.open_source` picks one by URI. Iterating an entered source
yields :class:`VideoFrame` items in order and, for sources with sound, :class:`AudioChunk` items (mono float32 at the
feature sample rate) interleaved ahead of the frames that need them.

Timestamps: files give the container's presentation time of each frame (variable frame rates included, nothing
assumes a rate); network streams give their stream time from the first frame; OpenCV cameras give the arrival
time from the first frame. End of stream ends the iteration; a live source that delivers nothing for
``timeout_s`` raises :class:`SourceTimeoutError` instead, so the two are never confused.

Live sources opened with a :class:`ReconnectPolicy` (``open_source(uri, reconnect=ReconnectPolicy())``) survive a
dropped connection: they reopen the stream or camera with backoff, yield one :class:`SourceGap` between the last
frame before the drop and the first frame after it, and keep one timeline across the reconnections (the rule is in
:mod:`edgeaff.runtime.io.reconnect`). Consumers that do not know gaps skip them by type, as they skip anything
that is neither a :class:`VideoFrame` nor an :class:`AudioChunk`.
"""

from __future__ import annotations

import dataclasses
import enum
import hashlib
import math
import unicodedata
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType
from typing import Protocol, runtime_checkable

import numpy as np

from edgeaff.runtime.errors import EdgeaffError, InvalidInputError


class SourceKind(str, enum.Enum):
    """Where frames come from."""

    FILE = "file"
    FOLDER = "folder"
    CAMERA = "camera"
    CSI = "csi"
    RTSP = "rtsp"
    HTTP = "http"
    PREPARED = "prepared"
    PUSH = "push"


class SourceTimeoutError(EdgeaffError):
    """A live source delivered no frame within the time-out (not the same as its end)."""

    exit_code = 4


@dataclasses.dataclass(frozen=True)
class VideoFrame:
    """One decoded frame.

    Attributes:
        index: 0-based number of the frame in the source (live sources skip the numbers of dropped frames and,
            after a :class:`SourceGap`, of the frames estimated lost in it).
        t_s: presentation time in seconds (see the module docstring for each kind).
        image: (H, W, 3) uint8 BGR.
        arrival: ``time.perf_counter()`` when the frame was read (for latency).
        face: the aligned face image (RGB uint8, any size) when the source already is aligned faces (folders,
            prepared trials), else ``None``; the pipeline resizes it to the model's crop size.
        face_found: for such sources, whether the face image exists (``False``: the black crop is used).
        audio_features: raw ``(vggish (128,), mfcc (39,))`` when the source has them precomputed (prepared
            trials), else ``None`` (they are computed from the source's audio chunks).
    """

    index: int
    t_s: float
    image: np.ndarray
    arrival: float
    face: np.ndarray | None = None
    face_found: bool = False
    audio_features: tuple[np.ndarray, np.ndarray] | None = None


@dataclasses.dataclass(frozen=True)
class AudioChunk:
    """Consecutive mono samples in [-1, 1] at the feature sample rate (16 kHz); ``final`` marks the audio's end.

    A source sends a final chunk (possibly empty) as soon as its audio track ends, so frames after the end of a
    short audio track need not wait for the end of the video.
    """

    samples: np.ndarray
    final: bool = False


class GapReason(str, enum.Enum):
    """Why a live source lost its stream."""

    STALLED = "stalled"  # open, but nothing arrived for the time-out
    FAILED = "failed"  # a read failed (network or device error)
    ENDED = "ended"  # the stream or device closed (a live stream has no end of its own)


@dataclasses.dataclass(frozen=True)
class SourceGap:
    """A stretch of a live source's timeline without frames: the stream dropped and was reconnected.

    Yielded once per outage, after the last frame before the drop and before the first frame after it (with, in
    between, the silence that fills the gap on sources with audio).

    Attributes:
        start_s: time of the last frame before the drop (the source's timeline, as :attr:`VideoFrame.t_s`).
        end_s: time of the first frame after the reconnection; frames strictly between the two are missing.
        reason: why the stream was lost.
        attempts: times the source was reopened before a frame came again (the successful one included).
        lost_frames: frame numbers skipped, estimated from the nominal frame rate (0 when the rate is unknown):
            the first frame after the gap has index ``last index + lost_frames + 1``.
        detail: the error or event behind ``reason``, for messages (may be empty).
    """

    start_s: float
    end_s: float
    reason: GapReason
    attempts: int
    lost_frames: int = 0
    detail: str = ""

    @property
    def duration_s(self) -> float:
        """Seconds between the frames on either side of the gap."""
        return self.end_s - self.start_s


SourceItem = VideoFrame | AudioChunk | SourceGap
"""What iterating a source yields; files and folders never yield :class:`SourceGap`."""

# Bounds of the reconnect settings: generous for real deployments, but never unbounded.
MAX_RECONNECT_ATTEMPTS = 1_000_000
MAX_RECONNECT_INTERVAL_S = 3600.0
MAX_GIVE_UP_S = 86400.0
MAX_BACKOFF = 10.0


@dataclasses.dataclass(frozen=True)
class ReconnectPolicy:
    """How a live source retries after its stream drops (a read error, the end of a live stream, or silence).

    Before attempt ``n`` (1, 2, ...) of one outage the source waits
    ``min(interval_s * backoff ** (n - 1), max_interval_s)`` seconds, but never past the give-up time: the last
    attempt is made at ``give_up_s`` after the last frame, and if it brings no frame the source raises
    :class:`SourceTimeoutError`. The default (unlimited attempts, 0.5 s doubling to 8 s, giving up after 60 s
    without a frame) suits cameras and streams that restart within a minute.

    Attributes:
        attempts: most reopen attempts per outage, ``None`` for as many as fit in ``give_up_s``.
        interval_s: wait before the first attempt, in seconds (0.01 .. 3600).
        backoff: factor between successive waits (1 .. 10; 1 keeps the interval fixed).
        max_interval_s: longest wait between attempts (``interval_s`` .. 3600).
        give_up_s: seconds without a frame, counted from the last frame before the drop, after which the source
            gives up (0 < give_up_s <= 86400).

    Raises:
        InvalidInputError: a setting out of its range.
    """

    attempts: int | None = None
    interval_s: float = 0.5
    backoff: float = 2.0
    max_interval_s: float = 8.0
    give_up_s: float = 60.0

    def __post_init__(self) -> None:
        if self.attempts is not None and (
            isinstance(self.attempts, bool)
            or not isinstance(self.attempts, int)
            or not 1 <= self.attempts <= MAX_RECONNECT_ATTEMPTS
        ):
            raise InvalidInputError(
                f"reconnect attempts must be a whole number from 1 to {MAX_RECONNECT_ATTEMPTS} (or unlimited), "
                f"got {self.attempts!r}"
            )
        _check_range("reconnect interval", self.interval_s, 0.01, MAX_RECONNECT_INTERVAL_S, " s")
        _check_range("reconnect backoff factor", self.backoff, 1.0, MAX_BACKOFF, "")
        _check_range("longest reconnect interval", self.max_interval_s, self.interval_s, MAX_RECONNECT_INTERVAL_S,
                     " s (at least the first interval)")  # fmt: skip
        if not _is_number(self.give_up_s) or not 0 < self.give_up_s <= MAX_GIVE_UP_S:
            raise InvalidInputError(
                f"the reconnect give-up time must be more than 0 and at most {MAX_GIVE_UP_S:g} s, "
                f"got {self.give_up_s!r}"
            )

    def wait_before(self, attempt: int) -> float:
        """Seconds to wait before reopen attempt ``attempt`` (1-based) of one outage."""
        exponent = min(max(attempt - 1, 0), 64)  # the cap is reached long before; keeps the power finite
        return float(min(self.interval_s * self.backoff**exponent, self.max_interval_s))

    def allows(self, attempt: int) -> bool:
        """Whether attempt number ``attempt`` (1-based) of one outage may be made (the give-up time aside)."""
        return self.attempts is None or attempt <= self.attempts


_POLICY_KEYS = {
    "attempts": "attempts",
    "interval": "interval_s",
    "backoff": "backoff",
    "max-interval": "max_interval_s",
    "give-up": "give_up_s",
}


def parse_reconnect(text: str) -> ReconnectPolicy | None:
    """A reconnect policy from its command-line form; ``None`` for ``off``.

    The form is ``off``, ``on`` (the defaults) or comma-separated ``key=value`` settings over the defaults, with
    keys ``attempts`` (a number or ``unlimited``), ``interval``, ``backoff``, ``max-interval`` and ``give-up``
    (seconds), e.g. ``give-up=30,interval=1``.

    Raises:
        InvalidInputError: an unknown key, a malformed value or a value out of range.
    """
    spec = text.strip().lower()
    if spec in ("off", "no", "none", "0"):
        return None
    if spec in ("on", "yes", "default", ""):
        return ReconnectPolicy()
    settings: dict[str, float | int | None] = {}
    for part in spec.split(","):
        key, sep, value = (piece.strip() for piece in part.partition("="))
        if not sep or key not in _POLICY_KEYS:
            raise InvalidInputError(
                f"--reconnect: '{part.strip()}' is not a setting; use off, on or key=value pairs with keys "
                f"{', '.join(_POLICY_KEYS)} (e.g. give-up=30,interval=1)"
            )
        try:
            if key == "attempts":
                settings["attempts"] = None if value == "unlimited" else int(value)
            else:
                settings[_POLICY_KEYS[key]] = float(value)
        except ValueError:
            raise InvalidInputError(f"--reconnect: {key}={value} is not a number") from None
    return ReconnectPolicy(**settings)  # type: ignore[arg-type]


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _check_range(what: str, value: float, low: float, high: float, unit: str) -> None:
    if not _is_number(value) or not low <= value <= high:
        raise InvalidInputError(f"the {what} must be from {low:g} to {high:g}{unit}, got {value!r}")


@dataclasses.dataclass(frozen=True)
class Outages:
    """What a live source lost so far, for the summary.

    Attributes:
        reconnects: outages recovered from (one :class:`SourceGap` each).
        attempts: reopen attempts in all, the failed ones included.
        lost_s: seconds inside the gaps (sum of :attr:`SourceGap.duration_s`).
        lost_frames: frame numbers skipped in the gaps (sum of :attr:`SourceGap.lost_frames`).
    """

    reconnects: int = 0
    attempts: int = 0
    lost_s: float = 0.0
    lost_frames: int = 0


@dataclasses.dataclass(frozen=True)
class SourceInfo:
    """What is known about a source when it opens.

    Attributes:
        kind: the kind of source.
        uri: as given.
        name: a file-name-safe name for the outputs.
        live: frames arrive in real time (cameras, network streams).
        has_audio: audio chunks will be delivered.
        audio_note: why there is no audio, when there is none.
        fps: nominal frame rate (``None`` when unknown).
        frame_count: frames expected (files and folders), ``None`` for live sources.
        width: frame width, if known (of the frames as delivered, i.e. upright).
        height: frame height, if known.
        rotation: counter-clockwise quarter turn in degrees (0, 90, 180, 270) the source applied to the stored
            frames to deliver them upright (a video's display matrix; phone videos), 0 when none.
        mirrored: whether a left-right mirror was applied after that turn (display matrices can ask for one).
        paced: a file's frames are handed over at their own time, not as fast as they decode (a file played as a
            live feed, e.g. by ``edgeaff serve``): stream mode then embeds only the frames that have arrived instead
            of gathering the next ones first, as for live sources (:attr:`arrives_in_time`).
    """

    kind: SourceKind
    uri: str
    name: str
    live: bool
    has_audio: bool
    audio_note: str | None
    fps: float | None
    frame_count: int | None
    width: int | None = None
    height: int | None = None
    rotation: int = 0
    mirrored: bool = False
    paced: bool = False

    @property
    def arrives_in_time(self) -> bool:
        """Frames come at their own time (live sources and paced files), so waiting for more costs latency."""
        return self.live or self.paced

    @property
    def aligned_faces(self) -> bool:
        """The frames already are aligned faces (no face detection)."""
        return self.kind in (SourceKind.FOLDER, SourceKind.PREPARED)

    @property
    def precomputed_audio(self) -> bool:
        """The frames carry their audio features (prepared trials)."""
        return self.kind is SourceKind.PREPARED


class Source(Protocol):
    """An opened source: use as a context manager and iterate."""

    info: SourceInfo

    @property
    def dropped_frames(self) -> int:
        """Frames a live source dropped because the pipeline fell behind (0 for files)."""
        ...

    def __enter__(self) -> Source: ...

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None: ...

    def __iter__(self) -> Iterator[SourceItem]: ...


@runtime_checkable
class LiveSource(Source, Protocol):
    """A source that can lose its stream and reconnect (cameras, network streams)."""

    @property
    def outages(self) -> Outages:
        """Reconnections and lost time so far."""
        ...


STEM_MAX_BYTES = 120
"""Longest stem in UTF-8 bytes: with a hash suffix and ``.overlay.mp4`` it stays far below the usual 255."""
_HASH_CHARS = 8


def _keep(character: str) -> bool:
    """Letters and digits of any script (``表``, ``é``, ``٣``), and ``-``; nothing that is a separator or control."""
    return character.isalnum() or character == "-"


def safe_stem(text: str) -> str:
    """A file-name stem for outputs made from ``text`` (a source's file name or a URI): readable and confined.

    The rule:

    * the text is NFC-normalised; letters and digits of every script, ``-`` and single dots between them are
      kept (``表情.mp4`` gives ``表情`` from its stem ``表情``), every other run of characters (spaces, ``/``,
      ``\\``, ``:``, control characters, dots at either end) becomes one ``_``, and ``_`` at either end is dropped;
    * so the result never holds a path separator, never starts with a dot or ``-``, is never ``.`` or ``..`` and is
      never absolute; it is at most :data:`STEM_MAX_BYTES` bytes of UTF-8;
    * **collision-free**: when the text had to be changed in any way (or was empty), ``-`` and the first 8 hex digits
      of the sha256 of the original text are appended, so two different names never give the same stem
      (``a b`` → ``a_b-<hash>``, while ``a_b`` stays ``a_b``). Unchanged names stay exactly as they were.

    Example:
        >>> safe_stem("表情")
        '表情'
        >>> safe_stem("clip_01")
        'clip_01'
        >>> safe_stem("../etc/passwd").startswith("etc_passwd-")
        True
    """
    original = str(text)
    normal = unicodedata.normalize("NFC", original)
    pieces: list[str] = []
    pending = False  # a run of characters to replace
    for character in normal:
        if _keep(character) or (character == "." and pieces and not pending):
            if pending and pieces:
                pieces.append("_")
            pending = False
            pieces.append(character)
        else:
            pending = True
    stem = "".join(pieces)
    while stem and stem[-1] in "._":
        stem = stem[:-1]
    while ".." in stem:
        stem = stem.replace("..", ".")
    stem = stem.lstrip("._-")  # nothing hidden, nothing a command line takes for an option
    encoded = stem.encode("utf-8")
    if len(encoded) > STEM_MAX_BYTES:
        stem = encoded[:STEM_MAX_BYTES].decode("utf-8", errors="ignore")
    if stem == original and stem:
        return stem
    digest = hashlib.sha256(original.encode("utf-8", errors="surrogatepass")).hexdigest()[:_HASH_CHARS]
    return f"{stem or 'source'}-{digest}"


safe_name = safe_stem
"""The former name of :func:`safe_stem` (the same rule)."""


def resolve_output_name(output_dir: str | Path, name: str) -> Path:
    """The path prefix ``OUTPUT_DIR/NAME`` of a run's result files, refusing a ``--name`` that would leave ``-o``.

    ``name`` is used as given when it is a plain, safe stem (:func:`safe_stem` leaves it unchanged); anything that
    holds a path separator, is ``.``/``..``, absolute, hidden, empty, or has characters that need replacing is
    refused, with the safe stem it could use instead, rather than silently rewritten.

    Args:
        output_dir: the ``-o`` folder.
        name: the requested stem (``--name``).

    Returns:
        ``output_dir / name`` (the caller appends ``.csv``, ``.json``, ...).

    Raises:
        InvalidInputError: a name that is not a plain stem inside ``output_dir``.

    Example:
        >>> resolve_output_name("out", "clip01").as_posix()
        'out/clip01'
    """
    text = str(name)
    if not text or text in (".", "..") or "/" in text or "\\" in text or Path(text).is_absolute():
        raise InvalidInputError(
            f"--name {text!r} must be a plain file-name stem inside -o (no '/', '\\', '..' or absolute path), "
            f"e.g. {safe_stem(Path(text).name or text)!r}"
        )
    if safe_stem(text) != text:
        raise InvalidInputError(
            f"--name {text!r} has characters that are unsafe in a file name or starts with a dot; use letters, "
            f"digits, '-', '_' and inner dots, e.g. {safe_stem(text)!r}"
        )
    directory = Path(output_dir)
    target = directory / text
    if not target.resolve().parent == directory.resolve():
        raise InvalidInputError(f"--name {text!r} would write outside {directory}")
    return target
