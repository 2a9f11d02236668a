"""Opening a source by URI: which kind of source a URI names, and the matching source object.

=============================  ==================================================================================
``clip.mp4``, ``file://…``     a media file (mp4, avi, mkv, webm, …) decoded with PyAV, with its audio track
``cropped_aligned/<trial>``    a folder of aligned face images ``00001.jpg`` … (Aff-Wild2 layout); needs ``fps``
                               and takes its audio from ``audio`` (any media file), if given
``0``, ``/dev/video0``         a camera through OpenCV (V4L2 on Linux)
``csi://0``                    a Jetson CSI camera: a GStreamer ``nvarguscamerasrc`` pipeline through OpenCV
``rtsp://…``, ``http(s)://…``  a network stream through PyAV (with its audio track, if it has one)
=============================  ==================================================================================

This module sits above the concrete sources (each imports only the shared types of :mod:`.sources`), so opening
a source never forms an import cycle.
"""

from __future__ import annotations

import re
from pathlib import Path

from edgeaff.runtime.errors import InvalidInputError
from edgeaff.runtime.io.camera import CaptureSource
from edgeaff.runtime.io.face_folder import FaceFolderSource
from edgeaff.runtime.io.media_file import MediaFileSource
from edgeaff.runtime.io.network import NetworkStreamSource
from edgeaff.runtime.io.sources import ReconnectPolicy, Source, SourceKind
from edgeaff.runtime.limits import check_timeout

LIVE_KINDS = ("camera", "csi", "rtsp", "http")
"""Source kinds that are read live (and may drop and reconnect)."""

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
        reconnect: live sources (cameras, ``csi://``, network streams): reopen a dropped stream with this policy
            and yield a :class:`SourceGap` per outage; ``None`` ends at the first drop. Files and folders are never
            retried.

    Raises:
        InvalidInputError: bad URI or options; errors of the specific source when it is entered.

    Example:
        >>> from edgeaff.runtime.io.sources import VideoFrame
        >>> with open_source("clip.mp4") as source:  # doctest: +SKIP
        ...     for item in source:
        ...         if isinstance(item, VideoFrame):
        ...             print(item.index, item.t_s)
    """
    check_timeout(timeout_s)
    kind, target = classify(str(uri))
    if kind is not SourceKind.FOLDER and (fps is not None or audio is not None):
        raise InvalidInputError("--fps and --audio apply to a folder of face images only; media files have their own")
    if kind is SourceKind.FILE:
        return MediaFileSource(target, uri=str(uri), sample_rate=sample_rate)
    if kind is SourceKind.FOLDER:
        return FaceFolderSource(target, fps=fps, audio=audio, sample_rate=sample_rate)
    if kind in (SourceKind.RTSP, SourceKind.HTTP):
        return NetworkStreamSource(target, timeout_s=timeout_s, sample_rate=sample_rate, reconnect=reconnect)
    return CaptureSource(kind, target, uri=str(uri), timeout_s=timeout_s, reconnect=reconnect)
