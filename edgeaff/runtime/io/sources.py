"""Video sources for the runtime (``design.md`` §5): a URI in, timestamped frames (and audio) out.

``open_source(uri)`` returns a context manager; iterating it yields :class:`VideoFrame` items in order and, for
sources with sound, :class:`AudioChunk` items (mono float32 at the feature sample rate) interleaved ahead of the
frames that need them. Supported URIs:

=============================  ==================================================================================
``clip.mp4``, ``file://…``     a media file (mp4, avi, mkv, webm, …) decoded with PyAV, with its audio track
``cropped_aligned/<trial>``    a folder of aligned face images ``00001.jpg`` … (Aff-Wild2 layout); needs ``fps``
                               and takes its audio from ``audio`` (any media file), if given
``0``, ``/dev/video0``         a camera through OpenCV (V4L2 on Linux)
``csi://0``                    a Jetson CSI camera: a GStreamer ``nvarguscamerasrc`` pipeline through OpenCV
``rtsp://…``, ``http(s)://…``  a network stream through PyAV (with its audio track, if it has one)
=============================  ==================================================================================

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
import math
import re
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
        face: the model's face crop when the source already is aligned faces (folders), else ``None``.
        face_found: for such sources, whether the face image exists.
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
        width: frame width, if known.
        height: frame height, if known.
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


_SAFE = re.compile(r"[^A-Za-z0-9._-]+")


def safe_name(text: str) -> str:
    """``text`` reduced to characters that are safe in a file name (``_`` for runs of others)."""
    cleaned = _SAFE.sub("_", text).strip("._")
    return cleaned or "source"


_NETWORK = ((("rtsp://", "rtsps://"), SourceKind.RTSP), (("http://", "https://"), SourceKind.HTTP))


def classify(uri: str) -> tuple[SourceKind, str]:
    """The kind of source a URI names, and its target (path, device, sensor id or URL).

    Raises:
        InvalidInputError: an unsupported scheme, or a path that does not exist.
    """
    text = str(uri).strip()
    lowered = text.lower()
    for prefixes, kind in _NETWORK:
        if lowered.startswith(prefixes):
            return kind, text
    if lowered.startswith("csi://"):
        sensor = text[len("csi://") :]
        if not sensor.partition("?")[0].isdigit():
            raise InvalidInputError(f"'{text}': a CSI camera is csi://N with the sensor number N, e.g. csi://0")
        return SourceKind.CSI, sensor
    if text.isdigit():
        return SourceKind.CAMERA, text
    if re.fullmatch(r"/dev/video\d+", text):
        return SourceKind.CAMERA, text
    if lowered.startswith("file://"):
        text = text[len("file://") :]
    elif "://" in text:
        scheme = text.split("://", 1)[0]
        raise InvalidInputError(
            f"unsupported source scheme '{scheme}://'; use a file, a folder of face images, a camera (0, /dev/video0),"
            " csi://N, rtsp://… or http(s)://…"
        )
    path = Path(text)
    if path.is_dir():
        return SourceKind.FOLDER, text
    if not path.exists():
        raise InvalidInputError(f"source not found: {text} (not a file, folder, camera or stream URL)")
    return SourceKind.FILE, text


def open_source(
    uri: str | Path,
    *,
    fps: float | None = None,
    audio: str | Path | None = None,
    timeout_s: float = 10.0,
    sample_rate: int = 16000,
    crop_size: int = 48,
    reconnect: ReconnectPolicy | None = None,
) -> Source:
    """Open a source by URI (see the module docstring); enter the returned object before iterating.

    Args:
        uri: a file, ``file://`` path, folder of aligned faces, camera index, ``/dev/videoN``, ``csi://N`` or
            ``rtsp://`` URL.
        fps: frame rate of a folder of images (required there; ignored by other sources, which have timestamps).
        audio: audio for a folder of images (any file PyAV reads).
        timeout_s: live sources: longest wait for a frame before :class:`SourceTimeoutError`, or, with
            ``reconnect``, before the stream counts as dropped and is reopened.
        sample_rate: audio sample rate delivered (the features' 16 kHz).
        crop_size: side of the face crops a folder source delivers.
        reconnect: live sources (cameras, ``csi://``, network streams): reopen a dropped stream with this policy
            and yield a :class:`SourceGap` per outage; ``None`` ends at the first drop as before. Files and folders
            are never retried.

    Raises:
        InvalidInputError: bad URI or options; errors of the specific source when it is entered.

    Example:
        >>> with open_source("clip.mp4") as source:  # doctest: +SKIP
        ...     for item in source:
        ...         if isinstance(item, VideoFrame):
        ...             print(item.index, item.t_s)
    """
    if not _is_number(timeout_s) or not 0 < timeout_s <= MAX_GIVE_UP_S:
        raise InvalidInputError(
            f"the source time-out must be more than 0 and at most {MAX_GIVE_UP_S:g} s, got {timeout_s}"
        )
    kind, target = classify(str(uri))
    if kind is not SourceKind.FOLDER and (fps is not None or audio is not None):
        raise InvalidInputError("--fps and --audio apply to a folder of face images only; media files have their own")
    if kind is SourceKind.FILE:
        from edgeaff.runtime.io.media_file import MediaFileSource

        return MediaFileSource(target, uri=str(uri), sample_rate=sample_rate)
    if kind is SourceKind.FOLDER:
        from edgeaff.runtime.io.face_folder import FaceFolderSource

        return FaceFolderSource(target, fps=fps, audio=audio, sample_rate=sample_rate, crop_size=crop_size)
    if kind in (SourceKind.RTSP, SourceKind.HTTP):
        from edgeaff.runtime.io.network import NetworkStreamSource

        return NetworkStreamSource(target, timeout_s=timeout_s, sample_rate=sample_rate, reconnect=reconnect)
    from edgeaff.runtime.io.camera import CaptureSource

    return CaptureSource(kind, target, uri=str(uri), timeout_s=timeout_s, reconnect=reconnect)
