"""Cameras through OpenCV: USB/V4L2 cameras (``0``, ``/dev/video0``) and Jetson CSI cameras (``csi://N``).

A CSI camera is read through a GStreamer pipeline (``nvarguscamerasrc`` → ``nvvidconv`` → BGR ``appsink``), which
needs an OpenCV built with GStreamer: JetPack's OpenCV is, the ``opencv-python`` wheels from PyPI are not (the
error says so). ``csi://0?width=1920&height=1080&fps=30`` chooses the sensor mode (default 1280×720 at 30 fps).

Frames are read in a background thread (:class:`~edgeaff.runtime.io.live_reader.LiveReader`); their timestamps are
arrival times from the first frame. Cameras have no audio here.

With a :class:`ReconnectPolicy` a camera that fails a read (unplugged, a USB reset, a GStreamer pipeline error) or
whose read returns only after ``timeout_s`` (the late frame is dropped: it may be stale) is released and reopened
with backoff (:mod:`edgeaff.runtime.io.reconnect`); arrival times then keep counting from the very first frame. A
read that never returns cannot be interrupted through OpenCV: then the reader's backstop time-out ends the source.
"""

from __future__ import annotations

import sys
import time
import urllib.parse
from collections.abc import Callable
from typing import Any

from edgeaff.runtime.errors import EdgeaffError, InvalidInputError, MissingDependencyError
from edgeaff.runtime.io.reconnect import ReconnectingSource, ReopenFailedError, Session, StreamLostError
from edgeaff.runtime.io.sources import (
    GapReason,
    ReconnectPolicy,
    SourceInfo,
    SourceKind,
    VideoFrame,
    safe_name,
)

CSI_DEFAULTS = {"width": 1280, "height": 720, "fps": 30}


def import_cv2() -> Any:
    """Import OpenCV or raise :class:`MissingDependencyError` (a base dependency; JetPack's on a Jetson)."""
    try:
        import cv2
    except ImportError as exc:
        raise MissingDependencyError(
            f"cameras need OpenCV ({exc}): pip install 'opencv-python-headless<5' (on a Jetson use JetPack's OpenCV)"
        ) from exc
    return cv2


def has_gstreamer(cv2: Any) -> bool:
    """Whether this OpenCV was built with GStreamer (from ``cv2.getBuildInformation()``)."""
    for line in str(cv2.getBuildInformation()).splitlines():
        if line.strip().startswith("GStreamer:"):
            return line.split(":", 1)[1].strip().upper().startswith("YES")
    return False


def csi_pipeline(sensor: str) -> str:
    """The GStreamer pipeline of ``csi://N[?width=W&height=H&fps=F]`` (``sensor`` is what follows ``csi://``).

    Raises:
        InvalidInputError: a malformed sensor number or option.
    """
    number, _, query = sensor.partition("?")
    if not number.isdigit():
        raise InvalidInputError(f"csi://{sensor}: the sensor must be a number, e.g. csi://0")
    settings = dict(CSI_DEFAULTS)
    for key, values in urllib.parse.parse_qs(query, strict_parsing=bool(query)).items():
        if key not in settings or not values[-1].isdigit() or int(values[-1]) <= 0:
            raise InvalidInputError(f"csi://{sensor}: options are width, height and fps as positive integers")
        settings[key] = int(values[-1])
    return (
        f"nvarguscamerasrc sensor-id={number} ! video/x-raw(memory:NVMM), width={settings['width']}, "
        f"height={settings['height']}, framerate={settings['fps']}/1, format=NV12 ! nvvidconv ! "
        "video/x-raw, format=BGRx ! videoconvert ! video/x-raw, format=BGR ! appsink drop=true max-buffers=2"
    )


class CaptureSource(ReconnectingSource):
    """A camera read with ``cv2.VideoCapture`` in a background thread. Use through :func:`.open.open_source`.

    Args:
        kind: :attr:`SourceKind.CAMERA` or :attr:`SourceKind.CSI`.
        target: camera index or device path, or the CSI sensor (with options).
        uri: as the user gave it.
        timeout_s: longest wait for a frame; with ``reconnect`` the camera then counts as lost.
        capture: an already created ``cv2.VideoCapture``-like object (tests, custom pipelines); ``None`` opens one.
        reconnect: reopen a lost camera with this policy (``None``: the first failed read ends the source).
        opener: makes a new ``cv2.VideoCapture``-like object, for the first open without ``capture`` and for every
            reopen (tests, custom pipelines); ``None`` opens the camera ``target`` names.
    """

    def __init__(
        self,
        kind: SourceKind,
        target: str,
        *,
        uri: str,
        timeout_s: float = 10.0,
        capture: Any = None,
        reconnect: ReconnectPolicy | None = None,
        opener: Callable[[], Any] | None = None,
    ) -> None:
        self.kind = kind
        self.target = target
        self.timeout_s = timeout_s
        self.reconnect = reconnect
        self._opener = opener
        self._capture = capture
        name = f"csi{target.partition('?')[0]}" if kind is SourceKind.CSI else f"camera{safe_name(target)}"
        self.info = SourceInfo(kind, uri, safe_name(name), True, False, "cameras are read without audio", None, None)

    def _open(self) -> Any:
        if self._opener is not None:
            return self._opener()
        cv2 = import_cv2()
        if self.kind is SourceKind.CSI:
            if not has_gstreamer(cv2):
                raise MissingDependencyError(
                    f"{self.info.uri}: CSI cameras are read through GStreamer, and this OpenCV ({cv2.__version__}) "
                    "was built without it; on a Jetson use JetPack's OpenCV (python3-opencv), not the PyPI wheel"
                )
            return cv2.VideoCapture(csi_pipeline(self.target), cv2.CAP_GSTREAMER)
        device: int | str = int(self.target) if self.target.isdigit() else self.target
        backend = cv2.CAP_V4L2 if sys.platform.startswith("linux") else cv2.CAP_ANY
        return cv2.VideoCapture(device, backend)

    def __enter__(self) -> CaptureSource:
        capture = self._capture if self._capture is not None else self._open()
        if not capture.isOpened():
            capture.release()
            raise EdgeaffError(
                f"cannot open the camera {self.info.uri}; check that it is connected, not in use by another program, "
                "and that you may read it (e.g. membership of the 'video' group)"
            )
        self._capture = capture
        fps = float(capture.get(5) or 0.0)  # cv2.CAP_PROP_FPS
        width, height = int(capture.get(3) or 0), int(capture.get(4) or 0)  # CAP_PROP_FRAME_WIDTH / HEIGHT
        self.info = SourceInfo(
            self.kind, self.info.uri, self.info.name, True, False, self.info.audio_note,
            fps if fps > 0 else None, None, width or None, height or None,
        )  # fmt: skip
        self._start()
        return self

    def _release(self) -> None:
        capture, self._capture = self._capture, None
        if capture is not None:
            capture.release()

    def _first_session(self, stopping: Callable[[], bool]) -> Session:
        return self._session(self._capture, stopping)

    def _reopen(self, stopping: Callable[[], bool]) -> Session:
        try:
            capture = self._open()
        except EdgeaffError as exc:
            raise ReopenFailedError(f"cannot reopen it: {exc}") from None
        if not capture.isOpened():
            capture.release()
            raise ReopenFailedError("it cannot be opened")
        self._capture = capture
        return self._session(capture, stopping)

    def _session(self, capture: Any, stopping: Callable[[], bool]) -> Session:
        """One open capture's frames, on its own clock (arrival time from its first frame, index from 0)."""
        start: float | None = None
        previous = time.perf_counter()
        index = 0
        try:
            while not stopping():
                ok, image = capture.read()
                arrival = time.perf_counter()
                if not ok or image is None:
                    if stopping():
                        return
                    if self.reconnect is not None:
                        raise StreamLostError(GapReason.FAILED, "a read failed" if index else "no frame after opening")
                    if index == 0:
                        raise EdgeaffError(f"the camera {self.info.uri} opened but delivers no frames")
                    return  # the device stopped delivering: end of stream
                if self.reconnect is not None and arrival - previous > self.timeout_s:
                    raise StreamLostError(GapReason.STALLED, f"no frame for {arrival - previous:.1f} s")
                previous = arrival
                start = arrival if start is None else start
                if image.ndim == 2:
                    image = image[:, :, None].repeat(3, axis=2)
                yield VideoFrame(index, arrival - start, image[:, :, :3].copy(), arrival)
                index += 1
        finally:
            if self._capture is capture:
                self._capture = None
            capture.release()
