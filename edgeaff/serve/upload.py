"""``POST /predict``: a short clip, sent as the request body, through a pipeline with the live view's settings.

The checks come before any decoding, cheapest first:

1. the declared size (``Content-Length``) against ``--max-upload-mb`` (413 at once), then the bytes actually
   received, counted as they arrive (413 as soon as they pass the limit; nothing more is read);
2. the content: the first bytes must be the signature of a video container edgeaff knows (:data:`CONTAINERS`:
   MP4/MOV, Matroska/WebM, AVI, MPEG-TS, MPEG-PS, FLV, Ogg), else 415. The container found is then the only
   demuxer FFmpeg may use (its playlist and concatenation demuxers, which open other files or URLs, never run on
   an upload);
3. the container's header (no frame decoded): a video stream, its duration (at most ``--max-upload-s``; a clip
   whose duration cannot be told is refused), frame size and rate (422 otherwise).

The body goes to a file of the server's private temporary folder (mode 0700) under a name ``tempfile`` makes;
nothing from the request becomes part of a path. The file is deleted when the clip is done. One clip is processed
at a time (a second gets 503), on a second pipeline with the live view's settings (its own graph sessions, so the
live feed never waits), and the answer lists every frame's prediction in the message format of the WebSocket
stream.

Why a signature table here when :mod:`edgeaff.runtime.io.media` has one: that one accepts audio files too and
only words an error message; this one admits video containers only and names the demuxer to force.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import tempfile
import threading
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from edgeaff.runtime import EdgeaffError, Pipeline, PipelineOptions
from edgeaff.runtime.sinks.message import prediction_record

SNIFF_BYTES = 512
MAX_FPS = 120.0
"""Clips with a higher frame rate are refused (they would multiply the work and the answer)."""
MAX_PIXELS = 4096 * 4096
"""Largest frame (width × height) an upload may have."""

CONTAINERS: tuple[tuple[str, str], ...] = (
    ("mov", "MP4/MOV"),
    ("matroska", "Matroska/WebM"),
    ("avi", "AVI"),
    ("mpegts", "MPEG-TS"),
    ("mpeg", "MPEG-PS"),
    ("flv", "FLV"),
    ("ogg", "Ogg"),
)
"""FFmpeg demuxer name and what it is, for the containers an upload may be in."""

_ISO_BOXES = (b"ftyp", b"moov", b"mdat", b"free", b"wide", b"skip")


class UploadError(Exception):
    """An upload refused: the HTTP status and one sentence for the client."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def sniff_container(head: bytes) -> str | None:
    """The FFmpeg demuxer for a video container recognised from its first bytes, or ``None``.

    Example:
        >>> sniff_container(b"\\x00\\x00\\x00\\x20ftypisom" + bytes(20))
        'mov'
        >>> sniff_container(b"%PDF-1.7") is None
        True
    """
    tests = (
        (len(head) >= 8 and head[4:8] in _ISO_BOXES, "mov"),
        (head.startswith(b"\x1a\x45\xdf\xa3"), "matroska"),
        (head.startswith(b"RIFF") and head[8:12] == b"AVI ", "avi"),
        (len(head) >= 189 and head[0] == head[188] == 0x47, "mpegts"),  # a sync byte every 188 bytes
        (head.startswith(b"\x00\x00\x01\xba"), "mpeg"),
        (head.startswith(b"FLV\x01"), "flv"),
        (head.startswith(b"OggS"), "ogg"),
    )
    return next((name for matched, name in tests if matched), None)


@dataclasses.dataclass(frozen=True)
class ClipInfo:
    """What a clip's container header says (nothing decoded)."""

    container: str
    duration_s: float
    width: int
    height: int
    fps: float | None


def probe_clip(path: Path, container: str, *, max_seconds: float) -> ClipInfo:
    """Read the container's header with the demuxer ``container`` only and check the clip against the limits.

    Raises:
        UploadError: 422 for no video stream, an unknown or too long duration, too large frames or rate; 415 when
            FFmpeg cannot read the header with that demuxer.
    """
    import av

    try:
        handle = av.open(str(path), mode="r", format=container)
    except (av.error.FFmpegError, ValueError) as exc:
        reason = getattr(exc, "strerror", None) or type(exc).__name__
        message = f"the upload starts like {_label(container)} but cannot be read as one ({reason})"
        raise UploadError(415, message) from None
    with handle:
        if not handle.streams.video:
            raise UploadError(422, "the upload has no video stream; send a video clip")
        stream = handle.streams.video[0]
        duration = None
        if stream.duration is not None and stream.time_base is not None:
            duration = float(stream.duration * stream.time_base)
        elif handle.duration is not None:
            duration = handle.duration / 1_000_000
        rate = stream.average_rate or stream.base_rate
        fps = float(rate) if rate else None
        if (duration is None or duration <= 0) and stream.frames and fps:
            duration = stream.frames / fps
        width, height = int(stream.codec_context.width or 0), int(stream.codec_context.height or 0)
    if duration is None or duration <= 0:
        raise UploadError(422, "the clip's duration cannot be told from its header; re-encode it (e.g. to MP4)")
    if duration > max_seconds:
        raise UploadError(422, f"the clip is {duration:.1f} s long; the limit is {max_seconds:g} s (--max-upload-s)")
    if width * height > MAX_PIXELS:
        raise UploadError(422, f"frames of {width}×{height} are larger than the {MAX_PIXELS} pixels allowed")
    if fps is not None and fps > MAX_FPS:
        raise UploadError(422, f"a frame rate of {fps:g} fps is above the {MAX_FPS:g} fps allowed")
    return ClipInfo(container, duration, width, height, fps)


def _label(container: str) -> str:
    return dict(CONTAINERS).get(container, container)


class UploadService:
    """Receives clips and runs them (see the module docstring); one at a time.

    Args:
        bundle: the bundle of the live pipeline (already loaded).
        options: the live pipeline's options (frames are not kept: ``images`` is turned off).
        temp_dir: the server's private temporary folder.
        max_bytes: largest upload.
        max_seconds: longest clip.
    """

    def __init__(self, bundle: Any, options: PipelineOptions, *, temp_dir: Path, max_bytes: int,
                 max_seconds: float) -> None:  # fmt: skip
        self.bundle = bundle
        self.options = dataclasses.replace(options, images=False)
        self.temp_dir = temp_dir
        self.max_bytes = max_bytes
        self.max_seconds = max_seconds
        self.counts = {"done": 0, "refused": 0, "failed": 0, "busy": 0}
        self._busy = threading.Lock()
        self._pipeline: Pipeline | None = None

    def try_begin(self) -> bool:
        """Claim the upload slot; ``False`` when a clip is being processed (the caller answers 503)."""
        if self._busy.acquire(blocking=False):
            return True
        self.counts["busy"] += 1
        return False

    def end(self) -> None:
        """Release the slot claimed by :meth:`try_begin`."""
        self._busy.release()

    async def receive(self, chunks: AsyncIterator[bytes], declared: int | None) -> tuple[Path, str]:
        """Store the body in a private temporary file, checking size and signature as it arrives.

        Returns:
            The file and the container found.

        Raises:
            UploadError: 413 too large, 415 not a video container, 400 empty. The file is removed then.
        """
        if declared is not None and declared > self.max_bytes:
            raise self._refuse(413, self._too_large())
        descriptor, name = tempfile.mkstemp(suffix=".clip", dir=self.temp_dir)
        path = Path(name)
        received = 0
        head = b""
        container: str | None = None
        try:
            with os.fdopen(descriptor, "wb") as handle:
                async for chunk in chunks:
                    received += len(chunk)
                    if received > self.max_bytes:
                        raise self._refuse(413, self._too_large())
                    if container is None:
                        head += chunk[: SNIFF_BYTES - len(head)]
                        if len(head) >= SNIFF_BYTES:
                            container = self._sniff(head)
                    handle.write(chunk)
            if received == 0:
                raise self._refuse(400, "the request has no body; send the clip's bytes as the body (Content-Type "
                                   "video/mp4 or application/octet-stream)")  # fmt: skip
            if container is None:
                container = self._sniff(head)
        except BaseException:
            path.unlink(missing_ok=True)
            raise
        return path, container

    def _sniff(self, head: bytes) -> str:
        container = sniff_container(head)
        if container is None:
            known = ", ".join(label for _, label in CONTAINERS)
            raise self._refuse(415, f"the upload is not a video file edgeaff reads (recognised containers: {known})")
        return container

    def _too_large(self) -> str:
        return f"the upload is larger than the limit of {self.max_bytes // (1024 * 1024)} MiB (--max-upload-mb)"

    def _refuse(self, status: int, message: str) -> UploadError:
        self.counts["refused"] += 1
        return UploadError(status, message)

    def predict(self, path: Path, container: str) -> dict[str, Any]:
        """Check the clip's header and run it (blocking: call it from a worker thread); the file is removed.

        Raises:
            UploadError: 422/415 from :func:`probe_clip`, or 422 when the pipeline cannot read the clip.
        """
        try:
            try:
                clip = probe_clip(path, container, max_seconds=self.max_seconds)
            except UploadError:
                self.counts["refused"] += 1
                raise
            cap = int(self.max_seconds * min(clip.fps or MAX_FPS, MAX_FPS)) + 1
            try:
                if self._pipeline is None:
                    self._pipeline = Pipeline(self.bundle, options=self.options)
                    self._pipeline.open()
                run = self._pipeline.run(str(path), max_frames=cap)
                names = self._pipeline.model_names
                predictions = [prediction_record(p, names) for p in run]
                report = run.report()
            except EdgeaffError as exc:
                self.counts["failed"] += 1
                message = str(exc).replace(str(path), "the upload")
                raise UploadError(422, message) from None
            self.counts["done"] += 1
            return {
                "container": _label(clip.container),
                "duration_s": clip.duration_s,
                "width": clip.width,
                "height": clip.height,
                "fps": clip.fps,
                "mode": report.get("mode"),
                "frames": len(predictions),
                "frames_with_face": report.get("frames_with_face"),
                "frames_with_audio": report.get("frames_with_audio"),
                "ended": report.get("ended"),
                "predictions": predictions,
            }
        finally:
            path.unlink(missing_ok=True)

    def close(self) -> None:
        """Free the upload pipeline's graph sessions."""
        if self._pipeline is not None:
            with contextlib.suppress(Exception):
                self._pipeline.close()
            self._pipeline = None
