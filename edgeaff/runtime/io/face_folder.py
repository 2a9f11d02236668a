"""A folder of aligned face images as a source: the dataset's ``cropped_aligned/<trial>/00001.jpg`` layout.

Image ``NNNNN.jpg`` is frame ``NNNNN - 1`` at time ``(NNNNN - 1) / fps``; frames run from the first to the highest
number, and a missing number is a frame without a face (the pipeline uses the black crop, as ``edgeaff prepare``
does). Each image is already the face, so the face stage is skipped: the pipeline resizes the image to the model's
size with Pillow's bicubic filter (:func:`edgeaff.runtime.faces.image.resize_face`), exactly as prepared. Audio
comes from ``audio`` (any media file with a sound track, e.g. the trial's video), decoded like ``edgeaff prepare``
decodes it.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType

import numpy as np

from edgeaff.runtime.errors import InvalidInputError
from edgeaff.runtime.io.audio_track import AUDIO_LEAD_S, AudioTrackReader
from edgeaff.runtime.io.media import probe_media
from edgeaff.runtime.io.sources import AudioChunk, SourceInfo, SourceKind, VideoFrame, safe_name

# The most frames a folder may number (about 18.5 h at 30 fps): a stray high number would otherwise make millions of
# frames without a face.
MAX_FOLDER_FRAMES = 2_000_000
_NUMBERED = re.compile(r"^(\d+)\.(jpe?g|png|bmp)$", re.IGNORECASE)


def holds_face_images(folder: str | Path) -> bool:
    """Whether ``folder`` directly holds numbered face images (``00001.jpg``, …): a face-folder source, as opposed
    to a folder of videos."""
    try:
        with os.scandir(folder) as entries:
            return any(_NUMBERED.match(entry.name) for entry in entries)
    except OSError:
        return False


def _read_rgb(path: Path) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            return np.asarray(image.convert("RGB"), dtype=np.uint8)
    except (UnidentifiedImageError, OSError) as exc:
        raise InvalidInputError(f"{path}: not a readable image ({exc})") from None


def _image_size(path: Path) -> tuple[int, int]:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            return int(image.width), int(image.height)
    except (UnidentifiedImageError, OSError) as exc:
        raise InvalidInputError(f"{path}: not a readable image ({exc})") from None


class FaceFolderSource:
    """Numbered aligned-face images plus optional audio. Use through :func:`.open.open_source`."""

    def __init__(
        self,
        folder: str | Path,
        *,
        fps: float | None,
        audio: str | Path | None = None,
        sample_rate: int = 16000,
    ) -> None:
        self.folder = Path(folder)
        self.audio = Path(audio) if audio is not None else None
        self.sample_rate = sample_rate
        self.dropped_frames = 0
        self._fps = fps
        self._files: dict[int, Path] = {}
        self.info = SourceInfo(
            SourceKind.FOLDER, str(folder), safe_name(self.folder.name), False, False, None, fps, None
        )

    def __enter__(self) -> FaceFolderSource:
        files = {}
        for path in self.folder.iterdir():
            match = _NUMBERED.match(path.name)
            if match and path.is_file() and int(match.group(1)) > 0:
                files[int(match.group(1)) - 1] = path
        if not files:
            raise InvalidInputError(
                f"{self.folder}: no numbered face images (00001.jpg, 00002.jpg, …); pass a video file or a folder in "
                "the cropped_aligned layout"
            )
        if max(files) + 1 > MAX_FOLDER_FRAMES:
            raise InvalidInputError(
                f"{self.folder}: the images are numbered up to {max(files) + 1}, more than the {MAX_FOLDER_FRAMES} "
                "frames edgeaff reads from a folder (every missing number would become a frame without a face); "
                "check the numbering"
            )
        fps = self._fps
        has_audio = False
        if self.audio is not None:
            info = probe_media(self.audio)
            if not info.has_audio:
                raise InvalidInputError(f"--audio {self.audio}: the file has no audio track")
            has_audio = True
            fps = fps if fps is not None else info.fps
        if fps is None or not fps > 0:
            raise InvalidInputError(
                f"{self.folder}: a folder of face images needs its frame rate: pass --fps (or --audio with the video)"
            )
        self._files = files
        width, height = _image_size(files[min(files)])
        self.info = SourceInfo(
            kind=SourceKind.FOLDER,
            uri=self.info.uri,
            name=self.info.name,
            live=False,
            has_audio=has_audio,
            audio_note=None if has_audio else "no --audio file was given for the face images",
            fps=float(fps),
            frame_count=max(files) + 1,
            width=width,
            height=height,
        )
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._files = {}

    def __iter__(self) -> Iterator[VideoFrame | AudioChunk]:
        if not self._files or self.info.fps is None or self.info.frame_count is None:
            raise RuntimeError("FaceFolderSource: use it in a 'with' block before iterating")
        audio = AudioTrackReader(self.audio, sample_rate=self.sample_rate).chunks() if self.audio else None
        delivered = 0
        blank: np.ndarray | None = None
        for index in range(self.info.frame_count):
            t_s = index / self.info.fps
            while audio is not None and delivered < (t_s + AUDIO_LEAD_S) * self.sample_rate:
                chunk = next(audio, None)
                if chunk is None:
                    audio = None
                    yield AudioChunk(np.zeros(0, np.float32), final=True)
                    break
                delivered += len(chunk)
                yield AudioChunk(chunk)
            path = self._files.get(index)
            if path is None:
                size = (self.info.height or 112, self.info.width or 112, 3)
                blank = blank if blank is not None else np.zeros(size, np.uint8)
                yield VideoFrame(index, t_s, blank, time.perf_counter(), face=None, face_found=False)
                continue
            rgb = _read_rgb(path)
            blank = np.zeros_like(rgb)
            image = np.ascontiguousarray(rgb[:, :, ::-1])
            yield VideoFrame(index, t_s, image, time.perf_counter(), face=rgb, face_found=True)
        if audio is not None:
            for chunk in audio:
                yield AudioChunk(chunk)
            yield AudioChunk(np.zeros(0, np.float32), final=True)
