"""``edgeaff serve``: a pipeline on a live source, served over HTTP and WebSockets by uvicorn until stopped.

:func:`serve` opens the pipeline (so a bad bundle or option fails before anything listens), binds the socket,
starts the feed thread with the server and runs until Ctrl-C or SIGTERM, then shuts down in order: no new
connections, WebSocket clients closed (code 1012, "service restart"), the feed stopped, graph sessions freed, the
temporary folder removed, MQTT flushed and disconnected.
"""

from __future__ import annotations

import dataclasses
import signal
import socket
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import Any

from edgeaff.runtime import InvalidInputError, Mode, Pipeline, PipelineOptions, Prediction, load_bundle
from edgeaff.runtime.errors import require
from edgeaff.runtime.sinks.message import prediction_record, to_json
from edgeaff.runtime.sinks.mqtt import publish_sinks
from edgeaff.serve.app import LatestBox, ServerState, create_app
from edgeaff.serve.feed import LiveFeed, redact_uri
from edgeaff.serve.hub import Hub
from edgeaff.serve.metrics import ServerMetrics
from edgeaff.serve.settings import ServeSettings, SourceSpec
from edgeaff.serve.status import FeedStatus
from edgeaff.serve.upload import UploadService

SHUTDOWN_GRACE_S = 5
"""Seconds open connections get to close at shutdown."""
WS_PING_S = 20.0
"""WebSocket keep-alive: a client that answers no ping for this long is closed."""
WS_MAX_MESSAGE = 4096
"""Largest message a client may send (clients have nothing to send; this bounds what they can)."""
SEND_BUFFER = 128 * 1024
"""The kernel's send buffer of each connection (Linux doubles it): with the per-client queue and the event loop's
64 KiB transport buffer, all a client that stops reading can hold (the kernel would otherwise grow it to 4 MiB)."""


class ShutdownSignalError(Exception):
    """SIGTERM arrived (the server has shut down cleanly by then)."""


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host:port``.

    Raises:
        InvalidInputError: the address cannot be used (in use, not this machine's, not allowed).
    """
    try:
        family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
        sock = socket.create_server((host.strip("[]"), port), family=family, backlog=128)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SEND_BUFFER)  # accepted connections inherit it
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise InvalidInputError(f"cannot listen on {host}:{port} ({reason}); choose another --host or --port") from None
    return sock


def url_of(sock: socket.socket) -> str:
    """``http://HOST:PORT/`` of a bound socket."""
    host, port = sock.getsockname()[:2]
    return f"http://{f'[{host}]' if ':' in host else host}:{port}/"


def serve(
    bundle_path: str | Path,
    options: PipelineOptions,
    source: SourceSpec,
    settings: ServeSettings,
    *,
    publish: str | None = None,
    qos: int = 0,
    echo: Callable[[str], None] = print,
    on_listening: Callable[[str], None] | None = None,
) -> None:
    """Serve predictions on ``source`` until Ctrl-C or SIGTERM (see the module docstring).

    Args:
        bundle_path: the bundle directory.
        options: pipeline options (the mode is always stream; ``images`` follows ``settings.preview``).
        source: the live source.
        settings: host, port, token and bounds.
        publish: also publish every message to this MQTT URL.
        qos: the MQTT quality of service.
        echo: where notes and the start and stop lines go.
        on_listening: called with the server's URL once the socket is bound.

    Raises:
        InvalidInputError: bad options, a bundle that does not load, an address that cannot be used, an MQTT broker
            that cannot be reached.
        MissingDependencyError: the ``serve`` extra is not installed.
    """
    uvicorn: Any = require("uvicorn", extra="serve", purpose="edgeaff serve")
    options = dataclasses.replace(options, mode=Mode.STREAM, images=settings.preview)
    source.open()  # the URI is checked before anything else starts
    bundle = load_bundle(bundle_path)
    pipeline = Pipeline(bundle, options=options, on_note=echo)
    with pipeline, publish_sinks(publish, qos=qos, model_names=pipeline.model_names) as publishers, \
            tempfile.TemporaryDirectory(prefix="edgeaff-serve-") as temp:  # fmt: skip
        sock = bind(settings.host, settings.port)
        status = FeedStatus()
        hub = Hub(queue=settings.queue, max_clients=settings.max_clients)
        uploads = None
        if settings.uploads:
            uploads = UploadService(
                bundle, options, temp_dir=Path(temp), max_bytes=settings.max_upload_bytes,
                max_seconds=settings.max_upload_s,
            )  # fmt: skip
        metrics = ServerMetrics(status, hub, (lambda: dict(uploads.counts)) if uploads else dict)
        latest = LatestBox()
        names = pipeline.model_names

        def on_prediction(prediction: Prediction, seq: int, loop: int) -> None:
            record = {"seq": seq, "loop": loop, **prediction_record(prediction, names), "emitted_at": time.time()}
            message = to_json(record)
            latest.set(seq, message, prediction)
            metrics.observe(prediction.latency_ms)
            hub.post(message)
            for sink in publishers:
                sink.publish(message)

        feed = LiveFeed(pipeline, source, status=status, on_prediction=on_prediction)

        def shutdown() -> None:
            if not feed.stop(timeout_s=source.timeout_s + 2.0):
                echo("warning: the live source did not stop in time; leaving it to the process exit")
            if uploads is not None:
                uploads.close()

        about = _about(pipeline, options, settings)
        state = ServerState(settings, status, hub, metrics, latest, uploads, about, on_startup=feed.start,
                            on_shutdown=shutdown)  # fmt: skip
        config = uvicorn.Config(
            create_app(state),
            ws="websockets-sansio",
            lifespan="on",
            access_log=False,
            log_level="warning",
            server_header=False,
            proxy_headers=False,
            limit_concurrency=settings.max_clients + 32,
            timeout_graceful_shutdown=SHUTDOWN_GRACE_S,
            ws_max_size=WS_MAX_MESSAGE,
            ws_ping_interval=WS_PING_S,
            ws_ping_timeout=WS_PING_S,
        )
        server = uvicorn.Server(config)
        url = url_of(sock)
        if not settings.loopback and settings.token is None:
            echo(f"warning: listening on {settings.host} without --token: anyone who can reach this machine sees "
                 "the predictions and the preview")  # fmt: skip
        echo(f"serving {redact_uri(source.uri)} on {url} (dashboard), "
             f"{url}ws (WebSocket), {url}status; Ctrl-C to stop")  # fmt: skip
        if on_listening is not None:
            on_listening(url)
        reason = _run(server, sock)
        if feed.running:
            shutdown()
        echo(f"stopped ({reason}); {status.snapshot()['frames']} predictions served")


def _run(server: Any, sock: socket.socket) -> str:
    """Run uvicorn until it stops; how it was stopped. SIGTERM and Ctrl-C end it cleanly (uvicorn shuts down, then
    re-raises the signal, which lands here)."""
    previous = None
    if threading.current_thread() is threading.main_thread():
        previous = signal.signal(signal.SIGTERM, _raise_stopped)
    try:
        server.run(sockets=[sock])
        return "server exit"
    except KeyboardInterrupt:
        return "Ctrl-C"
    except ShutdownSignalError:
        return "SIGTERM"
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
        sock.close()


def _raise_stopped(signum: int, frame: FrameType | None) -> None:
    raise ShutdownSignalError(signal.Signals(signum).name)


def _about(pipeline: Pipeline, options: PipelineOptions, settings: ServeSettings) -> dict[str, Any]:
    backend = options.backend
    return {
        "backend": str(backend.backend),
        "precision": str(backend.precision),
        "mode": str(options.mode),
        "bundle": {"models": list(pipeline.model_names), "multimodal": bool(pipeline.bundle.multimodal)},
        "token_required": settings.token is not None,
        "limits": {
            "max_clients": settings.max_clients,
            "queue": settings.queue,
            "max_upload_mb": settings.max_upload_mb,
            "max_upload_s": settings.max_upload_s,
        },
    }
