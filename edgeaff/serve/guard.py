"""The server's front door, as ASGI middleware: the token check and the security headers of every response.

With a token, every request but ``/health`` must carry it, as ``Authorization: Bearer TOKEN`` or as the query
parameter ``token`` (for the browser: the dashboard passes it on to its own requests and its WebSocket). It is
compared in constant time (:func:`hmac.compare_digest`). A missing or wrong token gets ``401`` with the one word
``unauthorized`` and nothing else, before any route runs; a WebSocket handshake gets the same ``401`` (the ASGI
denial response) or, on a server without that extension, is refused.

Every HTTP response also gets headers that keep a browser from sniffing types, framing the dashboard, or sending
its URL (which may hold the token) to another site as a referrer; and a content security policy that lets the
dashboard load only its own scripts, styles, images and connections.
"""

from __future__ import annotations

import hmac
import urllib.parse
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

OPEN_PATHS = frozenset({"/health"})
"""Paths served without the token."""

SECURITY_HEADERS: tuple[tuple[bytes, bytes], ...] = (
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
    (b"cache-control", b"no-store"),
    (
        b"content-security-policy",
        b"default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' blob:; connect-src 'self'; "
        b"base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
    ),
)

_UNAUTHORIZED = b"unauthorized\n"
_CHALLENGE = [
    (b"content-type", b"text/plain; charset=utf-8"),
    (b"content-length", str(len(_UNAUTHORIZED)).encode()),
    (b"www-authenticate", b'Bearer realm="edgeaff"'),
]


def presented_token(scope: Scope) -> str | None:
    """The token a request carries: its ``Authorization: Bearer`` header, else its ``token`` query parameter."""
    for name, value in scope.get("headers", []):
        if name == b"authorization":
            scheme, _, credentials = value.decode("latin-1").partition(" ")
            if scheme.lower() == "bearer" and credentials.strip():
                return credentials.strip()
    query = urllib.parse.parse_qs(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True)
    values = query.get("token")
    return values[0] if values else None


def token_matches(presented: str | None, token: str) -> bool:
    """Constant-time comparison of a presented token with the server's."""
    if presented is None:
        return False
    return hmac.compare_digest(presented.encode("utf-8", "surrogateescape"), token.encode("utf-8"))


class Guard:
    """Token check (when ``token`` is set) and security headers around ``app``."""

    def __init__(self, app: ASGIApp, *, token: str | None) -> None:
        self.app = app
        self.token = token

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        allowed = (
            self.token is None or scope.get("path") in OPEN_PATHS or token_matches(presented_token(scope), self.token)
        )
        if kind == "http":
            if not allowed:
                await _send_all(send, 401, _CHALLENGE, _UNAUTHORIZED, secure=True)
                return
            await self.app(scope, receive, _with_headers(send))
            return
        if allowed:
            await self.app(scope, receive, send)
            return
        message = await receive()  # websocket.connect
        if message.get("type") != "websocket.connect":
            return
        if "websocket.http.response" in scope.get("extensions", {}):
            await send({"type": "websocket.http.response.start", "status": 401, "headers": _CHALLENGE})
            await send({"type": "websocket.http.response.body", "body": _UNAUTHORIZED})
        else:
            await send({"type": "websocket.close", "code": 1008})


def _with_headers(send: Send) -> Send:
    async def wrapped(message: Message) -> None:
        if message["type"] == "http.response.start":
            names = {name.lower() for name, _ in message.get("headers", [])}
            extra = [(name, value) for name, value in SECURITY_HEADERS if name not in names]
            message["headers"] = [*message.get("headers", []), *extra]
        await send(message)

    return wrapped


async def _send_all(send: Send, status: int, headers: list[tuple[bytes, bytes]], body: bytes, *, secure: bool) -> None:
    extra = list(SECURITY_HEADERS) if secure else []
    await send({"type": "http.response.start", "status": status, "headers": [*headers, *extra]})
    await send({"type": "http.response.body", "body": body})
