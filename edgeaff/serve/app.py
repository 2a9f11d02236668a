"""The web side of ``edgeaff serve``: the Starlette application and its endpoints.

=====================  ==========================================================================================
``GET /``              the dashboard (its assets under ``/static/``, shipped in the package)
``GET /health``        ``{"ok": true, "source": STATE}`` (no token needed: for liveness probes)
``GET /status``        source, counts, rate, latency percentiles, drops, clients, backend, precision, uptime
``GET /latest``        the most recent prediction message (503 before the first)
``GET /preview.jpg``   the most recent frame with its face box (503 before the first, 404 with ``--no-preview``)
``GET /metrics``       Prometheus metrics
``WS  /ws``            one JSON message per prediction (the :mod:`edgeaff.runtime.sinks.message` format, with
                       ``seq``, ``loop`` and ``emitted_at`` added)
``POST /predict``      a clip as the request body; its per-frame predictions (:mod:`edgeaff.serve.upload`)
=====================  ==========================================================================================
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import html
import threading
import urllib.parse
from collections.abc import AsyncIterator, Callable
from importlib import resources
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from edgeaff.serve.guard import Guard, presented_token
from edgeaff.serve.hub import Hub, Subscriber
from edgeaff.serve.metrics import CONTENT_TYPE, ServerMetrics
from edgeaff.serve.preview import preview_jpeg
from edgeaff.serve.settings import ServeSettings
from edgeaff.serve.status import FeedStatus
from edgeaff.serve.upload import UploadError, UploadService

ASSETS = {
    "dashboard.js": "text/javascript; charset=utf-8",
    "dashboard.css": "text/css; charset=utf-8",
    "uPlot.iife.min.js": "text/javascript; charset=utf-8",
    "uPlot.min.css": "text/css; charset=utf-8",
    "LICENSE-uPlot.txt": "text/plain; charset=utf-8",
    "favicon.svg": "image/svg+xml",
}
"""The dashboard's files (``edgeaff/serve/static/``), served by name from this table only."""


class LatestBox:
    """The most recent prediction message and prediction, set by the feed thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._value: tuple[int, str, Any] | None = None
        self._jpeg: tuple[int, bytes | None] | None = None

    def set(self, seq: int, message: str, prediction: Any) -> None:
        """Replace the latest prediction."""
        with self._lock:
            self._value = (seq, message, prediction)

    def get(self) -> tuple[int, str, Any] | None:
        """``(seq, message, prediction)`` or ``None`` before the first prediction."""
        with self._lock:
            return self._value

    def jpeg(self) -> bytes | bool | None:
        """The latest frame as a JPEG (encoded once per frame); ``False`` before the first prediction."""
        value = self.get()
        if value is None:
            return False
        seq, _, prediction = value
        cached = self._jpeg
        if cached is not None and cached[0] == seq:
            return cached[1]
        data = preview_jpeg(prediction)
        self._jpeg = (seq, data)
        return data


@dataclasses.dataclass
class ServerState:
    """Everything the endpoints share.

    Attributes:
        settings: the network side and its bounds.
        status: the feed's counters and state.
        hub: fan-out to WebSocket clients.
        metrics: the Prometheus registry.
        latest: the most recent prediction.
        uploads: the clip service (``None`` with ``--no-upload``).
        about: fixed facts for ``/status`` (backend, precision, bundle, models).
        on_startup: called on the event loop when the server starts (starts the feed).
        on_shutdown: called when it stops (stops the feed, frees the graphs).
    """

    settings: ServeSettings
    status: FeedStatus
    hub: Hub
    metrics: ServerMetrics
    latest: LatestBox
    uploads: UploadService | None
    about: dict[str, Any]
    on_startup: Callable[[], None] = lambda: None
    on_shutdown: Callable[[], None] = lambda: None


def _dashboard(state: ServerState) -> Callable[[Request], Any]:
    template = (resources.files("edgeaff.serve") / "static" / "index.html").read_text(encoding="utf-8")

    async def dashboard(request: Request) -> Response:
        token = presented_token(request.scope) if state.settings.token else None
        query = "" if token is None else "?" + urllib.parse.urlencode({"token": token})
        return Response(template.replace("{{query}}", html.escape(query)), media_type="text/html; charset=utf-8")

    return dashboard


def _assets() -> dict[str, tuple[bytes, str]]:
    folder = resources.files("edgeaff.serve") / "static"
    return {name: ((folder / name).read_bytes(), kind) for name, kind in ASSETS.items()}


def _error(status: int, message: str, **headers: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=headers or None)


def create_app(state: ServerState) -> Guard:
    """The ASGI application for ``state`` (wrapped in the token guard and security headers)."""
    endpoints = _Endpoints(state)
    routes = [
        Route("/", _dashboard(state)),
        Route("/static/{name}", endpoints.static),
        Route("/health", endpoints.health),
        Route("/status", endpoints.status),
        Route("/latest", endpoints.latest),
        Route("/preview.jpg", endpoints.preview),
        Route("/metrics", endpoints.metrics),
        Route("/predict", endpoints.predict, methods=["POST"]),
        WebSocketRoute("/ws", endpoints.stream),
    ]
    return Guard(Starlette(routes=routes, lifespan=endpoints.lifespan), token=state.settings.token)


class _Endpoints:
    """The server's HTTP and WebSocket endpoints and its lifespan, over one :class:`ServerState`."""

    def __init__(self, state: ServerState) -> None:
        self.state = state
        self.assets = _assets()

    async def static(self, request: Request) -> Response:
        found = self.assets.get(str(request.path_params["name"]))
        if found is None:
            return _error(404, "no such file")
        return Response(found[0], media_type=found[1])

    async def health(self, request: Request) -> Response:
        return JSONResponse({"ok": True, "source": self.state.status.state.value})

    async def status(self, request: Request) -> Response:
        snapshot = self.state.status.snapshot()
        clients = self.state.hub.info()
        uploads = None if self.state.uploads is None else dict(self.state.uploads.counts)
        extra = {"clients": clients, "dropped_messages": clients["dropped_messages"], "uploads": uploads}
        return JSONResponse({**snapshot, **self.state.about, **extra})

    async def latest(self, request: Request) -> Response:
        value = self.state.latest.get()
        if value is None:
            return _error(503, "no prediction yet", **{"Retry-After": "1"})
        return Response(value[1], media_type="application/json")

    async def preview(self, request: Request) -> Response:
        if not self.state.settings.preview:
            return _error(404, "the preview is off (--no-preview)")
        data = await run_in_threadpool(self.state.latest.jpeg)
        if data is False:
            return _error(503, "no frame yet", **{"Retry-After": "1"})
        if data is None or data is True:
            return _error(404, "this source has no frames to show")
        return Response(data, media_type="image/jpeg")

    async def metrics(self, request: Request) -> Response:
        return Response(self.state.metrics.render(), media_type=CONTENT_TYPE)

    async def predict(self, request: Request) -> Response:
        service = self.state.uploads
        if service is None:
            return _error(404, "uploads are off on this server (--no-upload)")
        declared = request.headers.get("content-length")
        try:
            size = int(declared) if declared is not None else None
        except ValueError:
            return _error(400, "Content-Length is not a number")
        if not service.try_begin():
            return _error(503, "another clip is being processed; try again when it is done", **{"Retry-After": "5"})
        try:
            path, container = await service.receive(request.stream(), size)
            result = await run_in_threadpool(service.predict, path, container)
        except UploadError as exc:
            return _error(exc.status, exc.message)
        finally:
            service.end()
        return JSONResponse(result)

    async def stream(self, websocket: WebSocket) -> None:
        client = websocket.client
        subscriber = self.state.hub.subscribe(f"{client.host}:{client.port}" if client else "client")
        if subscriber is None:
            await _refuse_websocket(websocket, self.state.hub.max_clients)
            return
        try:
            await websocket.accept()
            await _pump(websocket, subscriber)
        finally:
            self.state.hub.unsubscribe(subscriber)

    @contextlib.asynccontextmanager
    async def lifespan(self, app: Starlette) -> AsyncIterator[None]:
        self.state.hub.attach(asyncio.get_running_loop())
        self.state.on_startup()
        try:
            yield
        finally:
            self.state.hub.close()
            await run_in_threadpool(self.state.on_shutdown)


async def _refuse_websocket(websocket: WebSocket, limit: int) -> None:
    message = f"the server already has its {limit} clients (--max-clients); try again later"
    if "websocket.http.response" in websocket.scope.get("extensions", {}):
        await websocket.send_denial_response(_error(503, message))
    else:
        await websocket.close(code=1013, reason="too many clients")


async def _pump(websocket: WebSocket, subscriber: Subscriber) -> None:
    """Send the subscriber's messages until either side closes; whatever the client sends is read and ignored."""

    async def send() -> None:
        while True:
            message = await subscriber.next()
            if message is None:
                await websocket.close(code=1001, reason="server shutting down")
                return
            await websocket.send_text(message)

    async def receive() -> None:
        while True:
            event = await websocket.receive()
            if event["type"] == "websocket.disconnect":
                return

    tasks = [asyncio.create_task(send()), asyncio.create_task(receive())]
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        for task in done:
            with contextlib.suppress(WebSocketDisconnect, RuntimeError, OSError):
                task.result()
    finally:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, WebSocketDisconnect, RuntimeError, OSError):
                await task
