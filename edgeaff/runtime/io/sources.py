"""What every video source shares (``design.md`` §5): the items it yields, what it tells about itself, its protocol.

The concrete sources (one module each: ``media_file``, ``face_folder``, ``camera``, ``network``, ``prepared_trial``)
import only this module; :func:`edgeaff.runtime.io.open.open_source` picks one by URI. Iterating an entered source
yields :class:`VideoFrame` items in order and, for sources with sound, :class:`AudioChunk` items (mono float32 at the
feature sample rate) interleaved ahead of the frames that need them.

Timestamps: files give the container's presentation time of each frame (variable frame rates included, nothing
assumes a rate); network streams give their stream time from the first frame; OpenCV cameras give the arrival
time from the first frame. End of stream ends the iteration; a live source that delivers nothing for
``timeout_s`` raises :class:`SourceTimeoutError` instead, so the two are never confused.
"""

from __future__ import annotations

import dataclasses
import enum
import re
from collections.abc import Iterator
from types import TracebackType
from typing import Protocol

import numpy as np

from edgeaff.runtime.errors import EdgeaffError


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
        index: 0-based number of the frame in the source (live sources skip the numbers of dropped frames).
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

    def __iter__(self) -> Iterator[VideoFrame | AudioChunk]: ...


_SAFE = re.compile(r"[^A-Za-z0-9._-]+")


def safe_name(text: str) -> str:
    """``text`` reduced to characters that are safe in a file name (``_`` for runs of others)."""
    cleaned = _SAFE.sub("_", text).strip("._")
    return cleaned or "source"
