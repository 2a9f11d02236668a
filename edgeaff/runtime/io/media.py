"""Opening media files with PyAV: clear errors for bad inputs, and the stream facts the reference took from OpenCV.

The reference read a video's frame rate and frame count with OpenCV (``cv2.CAP_PROP_FPS``,
``cv2.CAP_PROP_FRAME_COUNT``) and aligned audio features to label rows with that frame rate (``reference.md``
§4.2-4.4). :func:`probe_media` reproduces OpenCV's FFmpeg backend with PyAV, so the runtime needs no OpenCV for it:

* fps: the stream's ``avg_frame_rate``; if unset, ``r_frame_rate``; if unset, ``1 / time_base``. OpenCV 4.0-4.7
  (the reference's era) and 4.9+ use ``avg_frame_rate`` first; only OpenCV 4.8 briefly used
  ``av_guess_frame_rate`` (which prefers ``r_frame_rate``). The two differ only for variable-frame-rate files.
* frame count: the stream's ``nb_frames`` if the container records it, else ``floor(duration_s * fps + 0.5)`` with
  the container's duration (all streams), falling back to the video stream's own duration. OpenCV returns a
  meaningless number when neither duration is known (raw elementary streams); here the packets are counted instead.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from edgeaff.runtime.errors import InvalidInputError, MissingDependencyError

# First bytes of common containers: a file that starts like one of these but cannot be opened is damaged, not
# "some other kind of file".
_MEDIA_SIGNATURES: tuple[tuple[int, bytes], ...] = (
    (4, b"ftyp"),  # MP4 / MOV / M4A / 3GP
    (0, b"RIFF"),  # WAV / AVI
    (0, b"\x1a\x45\xdf\xa3"),  # Matroska / WebM
    (0, b"OggS"),
    (0, b"FLV"),
    (0, b"fLaC"),
    (0, b"ID3"),  # MP3 with a tag
    (0, b"\x00\x00\x01\xba"),  # MPEG program stream
    (4, b"moov"),
    (4, b"mdat"),
    (4, b"free"),
    (4, b"wide"),
)


class MediaNotFoundError(InvalidInputError):
    """The media file does not exist (or is not a regular file)."""


class NotMediaError(InvalidInputError):
    """The file is not audio or video that FFmpeg can read."""


class CorruptMediaError(InvalidInputError):
    """The file looks like media but is damaged or truncated: it cannot be opened or decoded to the end."""


@dataclasses.dataclass(frozen=True)
class MediaInfo:
    """What a media file contains, with fps and frame count as OpenCV reports them.

    Attributes:
        fps: video frame rate (``cv2.CAP_PROP_FPS`` semantics), ``None`` without a video stream.
        frame_count: video frames (``cv2.CAP_PROP_FRAME_COUNT`` semantics), ``None`` without a video stream.
        duration_s: container duration in seconds (``None`` if the container does not record one).
        width: video width in pixels, ``None`` without a video stream.
        height: video height in pixels, ``None`` without a video stream.
        has_audio: whether the file has at least one audio stream.
    """

    fps: float | None
    frame_count: int | None
    duration_s: float | None
    width: int | None
    height: int | None
    has_audio: bool

    @property
    def has_video(self) -> bool:
        """Whether the file has a video stream."""
        return self.fps is not None


def import_av() -> Any:
    """Import PyAV, or raise :class:`MissingDependencyError` saying how to install it (a base dependency)."""
    try:
        import av
    except ImportError as exc:
        raise MissingDependencyError(
            f"reading audio/video files needs PyAV ({exc}); it is a base dependency of edgeaff: pip install 'av>=12'"
        ) from exc
    return av


def looks_like_media(path: Path) -> bool:
    """True when the file's first bytes match a common audio/video container signature."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(189)
    except OSError:
        return False
    if len(head) == 189 and head[0] == head[188] == 0x47:  # MPEG-TS: a sync byte every 188 bytes
        return True
    if len(head) >= 2 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0:  # MPEG audio frame sync
        return True
    return any(head[offset : offset + len(magic)] == magic for offset, magic in _MEDIA_SIGNATURES)


@contextmanager
def open_media(path: str | Path) -> Iterator[Any]:
    """Open a media file with PyAV, turning failures into one-line edgeaff errors.

    Yields:
        The open ``av.container.InputContainer`` (closed on exit).

    Raises:
        MediaNotFoundError: the path does not exist or is not a file.
        NotMediaError: FFmpeg cannot read it and it does not look like a media container.
        CorruptMediaError: it looks like a media container but FFmpeg cannot open it (damaged or truncated).
        InvalidInputError: it cannot be read (permissions).
    """
    av = import_av()
    file = Path(path)
    if not file.is_file():
        if file.exists() and not file.is_dir():  # a FIFO, socket or device: reading it could block or never end
            raise MediaNotFoundError(f"{file}: not a regular file (a pipe, socket or device); give a media file")
        raise MediaNotFoundError(f"media file not found: {file}")
    try:
        container = av.open(str(file), mode="r")
    except PermissionError as exc:
        raise InvalidInputError(f"{file}: cannot read the file ({exc.strerror}); check its permissions") from None
    except av.error.FFmpegError as exc:
        reason = getattr(exc, "strerror", None) or str(exc)
        if looks_like_media(file) and file.stat().st_size > 0:
            raise CorruptMediaError(
                f"{file}: looks like a media file but FFmpeg cannot open it ({reason}); "
                "it is probably truncated or damaged: re-download or re-encode it"
            ) from None
        raise NotMediaError(
            f"{file}: not an audio/video file FFmpeg can read ({reason}); pass a video (mp4, avi, mkv, webm) or wav"
        ) from None
    try:
        yield container
    finally:
        container.close()


def ffmpeg_reason(exc: BaseException) -> str:
    """The readable part of an FFmpeg (PyAV) error: its strerror when it has one."""
    return str(getattr(exc, "strerror", None) or exc)


def _rate(value: Any) -> float:
    """A fraction-like rate as float; 0.0 when unset."""
    if value is None:
        return 0.0
    try:
        number = float(value)
    except (TypeError, ZeroDivisionError):
        return 0.0
    return number if math.isfinite(number) and number > 0 else 0.0


def opencv_fps(stream: Any) -> float:
    """Frame rate of a PyAV video stream as OpenCV's FFmpeg backend reports it (see the module docstring)."""
    fps = _rate(stream.average_rate)
    if fps <= 0:
        fps = _rate(stream.base_rate)
    if fps <= 0 and stream.time_base is not None:
        fps = 1.0 / _rate(stream.time_base) if _rate(stream.time_base) > 0 else 0.0
    return fps


def probe_media(path: str | Path) -> MediaInfo:
    """Describe a media file: video fps/frame count as OpenCV reports them, size, duration, audio presence.

    Args:
        path: an audio or video file (mp4, avi, mkv, webm, wav, ...).

    Returns:
        The file's :class:`MediaInfo`.

    Raises:
        MediaNotFoundError, NotMediaError, CorruptMediaError: see :func:`open_media`.
        CorruptMediaError: the video stream has no usable frame rate.

    Example:
        >>> info = probe_media("talk.mp4")  # doctest: +SKIP
        >>> info.fps, info.frame_count, info.has_audio  # doctest: +SKIP
        (30.0, 1800, True)
    """
    with open_media(path) as container:
        duration_s = container.duration / 1_000_000 if container.duration else None
        has_audio = len(container.streams.audio) > 0
        if not container.streams.video:
            return MediaInfo(None, None, duration_s, None, None, has_audio)
        stream = container.streams.video[0]
        fps = opencv_fps(stream)
        if fps <= 0:
            raise CorruptMediaError(f"{path}: the video stream has no frame rate (no rate and no time base)")
        frame_count = int(stream.frames or 0)
        if frame_count == 0:
            seconds = duration_s
            if not seconds and stream.duration and stream.time_base is not None:
                seconds = float(stream.duration * stream.time_base)
            frame_count = math.floor(seconds * fps + 0.5) if seconds else _count_packets(container, stream)
        width = int(stream.codec_context.width)
        height = int(stream.codec_context.height)
    return MediaInfo(float(fps), frame_count, duration_s, width, height, has_audio)


def _count_packets(container: Any, stream: Any) -> int:
    """Number of video packets with data (one per frame for the codecs seen in practice)."""
    return sum(1 for packet in container.demux(stream) if packet.size)
