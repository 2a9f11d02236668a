"""A media file as a source, decoded with PyAV: its video frames, and its audio track.

The file is opened twice: one container decodes the video, a second one decodes the audio exactly as
:func:`edgeaff.runtime.io.audio_track.decode_audio` does (best audio stream, libswresample to mono s16 at 16 kHz, then
``/ 32768``), so the runtime sees the samples ``edgeaff prepare`` saw. Audio is delivered in chunks just ahead of the
frames that need it (:data:`AUDIO_LEAD_S`), so memory stays bounded however the file interleaves its streams.

Orientation: phone videos are stored sideways with a display matrix (side data) saying how to show them. The
matrix of the first frame is read when the source opens (:func:`display_orientation`) and every frame is turned
upright with it (:func:`upright`) before anything else sees it, so faces are detected on the upright picture and the
overlay is upright too. :attr:`SourceInfo.rotation` and :attr:`SourceInfo.mirrored` say what was applied, and
``width``/``height`` are the upright frame's. Only quarter turns and mirrors are applied; a matrix with another
angle (never written by cameras) is ignored, and ``rotation`` stays 0.
"""

from __future__ import annotations

import itertools
import math
import time
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np

from edgeaff.runtime.errors import InvalidInputError
from edgeaff.runtime.io.audio_track import AUDIO_LEAD_S, AudioTrackReader
from edgeaff.runtime.io.media import CorruptMediaError, ffmpeg_reason, import_av, open_media, opencv_fps
from edgeaff.runtime.io.sources import AudioChunk, SourceInfo, SourceKind, VideoFrame, safe_stem

# Frames a file may come up short of its recorded frame count before it counts as truncated.
FRAME_COUNT_SLACK = 2
_FIXED_ONE = 65536.0  # the display matrix's 16.16 fixed-point 1.0


def display_orientation(frame: Any) -> tuple[int, int, int, int] | None:
    """The quarter-turn display transform of a decoded PyAV frame, or ``None`` (no matrix, identity, other angle).

    Returns:
        ``(a, b, c, d)`` in {-1, 0, 1}: the linear part of FFmpeg's display matrix, mapping a stored pixel
        ``(x, y)`` (y down) to the displayed ``(a·x + c·y, b·x + d·y)``, up to a translation.
    """
    av = import_av()
    entry = frame.side_data.get(av.sidedata.sidedata.Type.DISPLAYMATRIX)
    if entry is None:
        return None
    matrix = np.frombuffer(bytes(entry), dtype="<i4")
    if matrix.size != 9:
        return None
    values = [float(matrix[i]) / _FIXED_ONE for i in (0, 1, 3, 4)]
    signs = [round(v) for v in values]
    if any(abs(v - s) > 0.01 for v, s in zip(values, signs, strict=True)) or any(abs(s) > 1 for s in signs):
        return None  # not a quarter turn (or scaled): left as decoded
    a, b, c, d = signs
    if abs(a * d - b * c) != 1 or (a, b, c, d) == (1, 0, 0, 1):
        return None
    return a, b, c, d


def orientation_angles(transform: tuple[int, int, int, int] | None) -> tuple[int, bool]:
    """``(rotation, mirrored)`` of a transform from :func:`display_orientation`: the counter-clockwise quarter turn
    in degrees (0, 90, 180, 270) applied to the stored picture, then a left-right mirror if ``mirrored``."""
    if transform is None:
        return 0, False
    a, b, c, d = transform
    mirrored = a * d - b * c < 0
    if mirrored:  # undo the mirror applied after the turn: R = H·L with H = diag(-1, 1)
        a, c = -a, -c
    degrees = round(math.degrees(math.atan2(c, a))) % 360  # R = [[cos, sin], [-sin, cos]] for a CCW turn, y down
    return degrees, mirrored


def upright(image: np.ndarray, transform: tuple[int, int, int, int] | None) -> np.ndarray:
    """``image`` (H, W, C) as it is meant to be displayed (see :func:`display_orientation`); unchanged for ``None``."""
    if transform is None:
        return image
    a, b, c, d = transform
    if a == 0:  # a transposition: displayed x comes from stored y and y from x
        turned = image.transpose(1, 0, 2)
        flip_columns, flip_rows = c < 0, b < 0
    else:
        turned = image
        flip_columns, flip_rows = a < 0, d < 0
    if flip_columns:
        turned = turned[:, ::-1]
    if flip_rows:
        turned = turned[::-1]
    return np.ascontiguousarray(turned)


class MediaFileSource:
    """A video file decoded with PyAV (see the module docstring). Use through :func:`.open.open_source`."""

    def __init__(self, path: str | Path, *, uri: str, sample_rate: int = 16000) -> None:
        self.path = Path(path)
        self.sample_rate = sample_rate
        self.dropped_frames = 0
        self._uri = uri
        self._media: Any = None
        self._container: Any = None
        self._stream: Any = None
        self._decoder: Iterator[Any] | None = None
        self._first: Any = None
        self._transform: tuple[int, int, int, int] | None = None
        self.info = SourceInfo(SourceKind.FILE, uri, safe_stem(self.path.stem), False, False, None, None, None)

    def __enter__(self) -> MediaFileSource:
        self._media = open_media(self.path)
        self._container = self._media.__enter__()
        try:
            if not self._container.streams.video:
                raise InvalidInputError(f"{self.path}: has no video stream; edgeaff infer needs a video")
            self._stream = self._container.streams.video[0]
            fps = opencv_fps(self._stream)
            has_audio = bool(self._container.streams.audio)
            context = self._stream.codec_context
            self._open_decoder()
            rotation, mirrored = orientation_angles(self._transform)
            width, height = int(context.width) or None, int(context.height) or None
            if self._transform is not None and self._transform[0] == 0:
                width, height = height, width
            self.info = SourceInfo(
                kind=SourceKind.FILE,
                uri=self._uri,
                name=safe_stem(self.path.stem),
                live=False,
                has_audio=has_audio,
                audio_note=None if has_audio else "the file has no audio track",
                fps=fps if fps > 0 else None,
                frame_count=int(self._stream.frames) or None,
                width=width,
                height=height,
                rotation=rotation,
                mirrored=mirrored,
            )
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def _open_decoder(self) -> None:
        """Start decoding and read the first frame, whose display matrix gives the orientation of all frames."""
        av = import_av()
        self._decoder = self._container.decode(self._stream)
        try:
            self._first = next(self._decoder, None)
        except av.error.FFmpegError as exc:
            raise CorruptMediaError(
                f"{self.path}: video decoding failed after 0 frames ({ffmpeg_reason(exc)}); the file is damaged or "
                "truncated: re-download it or re-encode it"
            ) from None
        self._transform = None if self._first is None else display_orientation(self._first)

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._media is not None:
            media, self._media = self._media, None
            media.__exit__(exc_type, exc, tb)

    def __iter__(self) -> Iterator[VideoFrame | AudioChunk]:
        if self._container is None or self._decoder is None:
            raise RuntimeError("MediaFileSource: use it in a 'with' block before iterating")
        av = import_av()
        audio = AudioTrackReader(self.path, sample_rate=self.sample_rate).chunks() if self.info.has_audio else None
        delivered = 0  # audio samples handed out
        decoded = 0
        first: float | None = None
        previous = 0.0
        step = 1.0 / self.info.fps if self.info.fps else 1.0 / 30.0
        try:
            opening, self._first = self._first, None
            frames = self._decoder if opening is None else itertools.chain([opening], self._decoder)
            for frame in frames:
                t_s = float(frame.time) if frame.time is not None else (previous + step if decoded else 0.0)
                first = t_s if first is None else first
                while audio is not None and delivered < (t_s - first + AUDIO_LEAD_S) * self.sample_rate:
                    chunk = next(audio, None)
                    if chunk is None:
                        audio = None
                        yield AudioChunk(np.zeros(0, np.float32), final=True)
                        break
                    delivered += len(chunk)
                    yield AudioChunk(chunk)
                image = upright(frame.to_ndarray(format="bgr24"), self._transform)
                yield VideoFrame(decoded, t_s, image, time.perf_counter())
                decoded += 1
                previous = t_s
        except av.error.FFmpegError as exc:
            raise CorruptMediaError(
                f"{self.path}: video decoding failed after {decoded} frames ({ffmpeg_reason(exc)}); the file is "
                "damaged or truncated: re-download it or re-encode it"
            ) from None
        self._check_complete(decoded)
        if audio is not None:
            for chunk in audio:
                yield AudioChunk(chunk)
            yield AudioChunk(np.zeros(0, np.float32), final=True)

    def _check_complete(self, decoded: int) -> None:
        if decoded == 0:
            raise CorruptMediaError(f"{self.path}: no video frame could be decoded; the file is damaged or empty")
        expected = self.info.frame_count
        if expected is not None and decoded < expected - FRAME_COUNT_SLACK:
            raise CorruptMediaError(
                f"{self.path}: only {decoded} of the {expected} frames the file declares could be decoded; it is "
                "truncated or damaged: re-download it or re-encode it"
            )
