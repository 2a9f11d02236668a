"""What ``edgeaff serve`` is asked to do: the source, the network side and every bound, validated once.

No option may make the server take unbounded memory, threads or disk: clients, per-client queues, upload size and
duration all have ranges (the ``MAX_`` constants below), and a value outside them is one ``error:`` line before
anything starts.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import re
import socket

from edgeaff.runtime import InvalidInputError, ReconnectPolicy, Source, open_source
from edgeaff.runtime.limits import check_float_range, check_int_range, check_timeout

MIB = 1024 * 1024

MAX_CLIENTS = 1000
"""Most WebSocket clients ``--max-clients`` may allow."""
MAX_QUEUE = 10_000
"""Most messages ``--queue`` may let wait per client."""
MAX_UPLOAD_MB = 1024
"""Largest ``--max-upload-mb``."""
MAX_UPLOAD_S = 600.0
"""Longest ``--max-upload-s``."""

TOKEN_PATTERN = re.compile(r"[A-Za-z0-9._~+/=-]{16,512}")
"""A token: 16 to 512 characters that pass through URLs and headers unchanged."""


@dataclasses.dataclass(frozen=True)
class SourceSpec:
    """The live source: what ``edgeaff infer`` would read, and how to play a file.

    Attributes:
        uri: a camera (``0``, ``/dev/video0``), ``csi://N``, ``rtsp://…``, ``http(s)://…``, a media file or a folder
            of aligned faces.
        loop: play a file (or folder) again from the start when it ends, for as long as the server runs.
        fps: frame rate of a folder of face images.
        audio: audio for a folder of face images.
        timeout_s: live sources: longest wait for a frame (with ``reconnect``: before the stream counts as dropped).
        reconnect: live sources: reopen a dropped stream with this policy (``None``: the source ends at the first
            drop).
    """

    uri: str
    loop: bool = False
    fps: float | None = None
    audio: str | None = None
    timeout_s: float = 10.0
    reconnect: ReconnectPolicy | None = dataclasses.field(default_factory=ReconnectPolicy)

    def __post_init__(self) -> None:
        if not str(self.uri).strip():
            raise InvalidInputError("give a source: a camera, csi://N, rtsp://…, http(s)://… or a file")
        check_timeout(self.timeout_s)

    def open(self) -> Source:
        """A new (not yet entered) source object; cheap, and the check of the URI itself.

        Raises:
            InvalidInputError: an unknown scheme, a file or folder that does not exist, options that do not fit.
        """
        return open_source(self.uri, fps=self.fps, audio=self.audio, timeout_s=self.timeout_s,
                           reconnect=self.reconnect)  # fmt: skip


@dataclasses.dataclass(frozen=True)
class ServeSettings:
    """The server's network side and its bounds.

    Attributes:
        host: the address to listen on (``127.0.0.1`` unless told otherwise).
        port: the TCP port (0: any free one; the URL printed at start names it).
        token: when set, every endpoint but ``/health`` needs it (``Authorization: Bearer TOKEN`` or ``?token=``).
        max_clients: WebSocket clients at once (more are refused).
        queue: messages each client may have waiting; when a client falls behind, its oldest are dropped.
        max_upload_mb: largest clip ``POST /predict`` accepts, in MiB.
        max_upload_s: longest clip it accepts, in seconds.
        uploads: whether ``POST /predict`` is served at all.
        preview: whether the latest frame is kept for the dashboard's preview (``/preview.jpg``).
    """

    host: str = "127.0.0.1"
    port: int = 8080
    token: str | None = dataclasses.field(default=None, repr=False)
    max_clients: int = 32
    queue: int = 64
    max_upload_mb: int = 32
    max_upload_s: float = 60.0
    uploads: bool = True
    preview: bool = True

    def __post_init__(self) -> None:
        check_int_range(self.port, option="--port", low=0, high=65535, note="0 picks a free port")
        check_int_range(self.max_clients, option="--max-clients", low=1, high=MAX_CLIENTS)
        check_int_range(self.queue, option="--queue", low=1, high=MAX_QUEUE, note="messages waiting per client")
        check_int_range(self.max_upload_mb, option="--max-upload-mb", low=1, high=MAX_UPLOAD_MB)
        check_float_range(self.max_upload_s, option="--max-upload-s", low=1.0, high=MAX_UPLOAD_S)
        if not self.host or any(c.isspace() for c in self.host):
            raise InvalidInputError(f"--host {self.host!r} is not a host name or address")
        if self.token is not None and not TOKEN_PATTERN.fullmatch(self.token):
            raise InvalidInputError(
                "--token must be 16 to 512 characters of letters, digits and . _ ~ + / = - (e.g. the output of "
                "'openssl rand -hex 24')"
            )

    @property
    def max_upload_bytes(self) -> int:
        """``max_upload_mb`` in bytes."""
        return self.max_upload_mb * MIB

    @property
    def loopback(self) -> bool:
        """Whether the server listens on the loopback interface only."""
        return is_loopback(self.host)


def is_loopback(host: str) -> bool:
    """Whether ``host`` (an address or ``localhost``) is reachable from this machine only."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        try:
            return all(ipaddress.ip_address(info[4][0]).is_loopback for info in socket.getaddrinfo(host, None))
        except (OSError, ValueError):
            return False
