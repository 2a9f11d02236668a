"""``--publish mqtt://HOST:PORT/TOPIC``: every prediction as a JSON message (:mod:`.message`) to an MQTT broker.

Used by ``edgeaff infer`` (a :class:`~edgeaff.runtime.sinks.base.Sink` fed by :func:`write_results`) and by
``edgeaff serve`` (which publishes the same messages it streams to its WebSocket clients). The client is
paho-mqtt (the ``serve`` extra), imported only when a sink is made; its network thread reconnects by itself when
the broker goes away.

Memory stays bounded whatever the broker does: at most :data:`MAX_PENDING` messages may wait for the network (QoS
0) or for the broker's acknowledgement (QoS 1, 2); beyond that, and while disconnected at QoS 0, messages are
dropped and counted (``dropped`` in the summary).
"""

from __future__ import annotations

import contextlib
import dataclasses
import threading
import urllib.parse
from collections.abc import Iterator, Sequence
from types import TracebackType
from typing import Any

from edgeaff.runtime.errors import InvalidInputError, require
from edgeaff.runtime.pipeline.prediction import Prediction
from edgeaff.runtime.sinks.message import prediction_record, to_json

DEFAULT_PORT = 1883
DEFAULT_TLS_PORT = 8883
MAX_PENDING = 1000
"""Messages that may wait for the network or an acknowledgement; more are dropped and counted."""
CONNECT_TIMEOUT_S = 5.0
FLUSH_TIMEOUT_S = 5.0
_TOPIC_MAX_BYTES = 65535


@dataclasses.dataclass(frozen=True)
class MqttTarget:
    """Where ``--publish`` sends: broker, port, topic, TLS and credentials.

    Attributes:
        host: the broker's host name or address.
        port: its TCP port (1883, or 8883 with TLS, unless given).
        topic: the topic every message is published on (no wildcards).
        tls: ``mqtts://``: TLS with the system's certificate authorities.
        username: from ``mqtt://USER:PASSWORD@HOST/...`` (optional).
        password: likewise (never shown in summaries or messages).
    """

    host: str
    port: int
    topic: str
    tls: bool = False
    username: str | None = None
    password: str | None = dataclasses.field(default=None, repr=False)

    @property
    def url(self) -> str:
        """The target as a URL without the password."""
        user = f"{urllib.parse.quote(self.username)}@" if self.username else ""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{'mqtts' if self.tls else 'mqtt'}://{user}{host}:{self.port}/{self.topic}"


def parse_mqtt_url(text: str) -> MqttTarget:
    """``mqtt://HOST[:PORT]/TOPIC`` (or ``mqtts://`` for TLS; ``USER:PASSWORD@`` before the host if the broker
    wants them) as an :class:`MqttTarget`.

    Raises:
        InvalidInputError: another scheme, no host, a bad port, no topic or a topic with ``+`` or ``#``.

    Example:
        >>> parse_mqtt_url("mqtt://127.0.0.1:1884/lab/edgeaff").topic
        'lab/edgeaff'
    """
    parts = urllib.parse.urlsplit(text.strip())
    example = "e.g. mqtt://127.0.0.1:1883/edgeaff/predictions"
    if parts.scheme not in ("mqtt", "mqtts"):
        raise InvalidInputError(f"--publish {text!r}: give mqtt://HOST:PORT/TOPIC (or mqtts:// for TLS), {example}")
    try:
        port = parts.port
    except ValueError:
        raise InvalidInputError(f"--publish {text!r}: the port must be a number from 1 to 65535") from None
    if not parts.hostname:
        raise InvalidInputError(f"--publish {text!r}: no broker host; {example}")
    topic = urllib.parse.unquote(parts.path.lstrip("/"))
    if not topic or "+" in topic or "#" in text or "\x00" in topic or "?" in text:
        raise InvalidInputError(
            f"--publish {text!r}: the topic after the host must be a plain topic name (no '+', '#', '?' or empty), "
            f"{example}"
        )
    if len(topic.encode("utf-8")) > _TOPIC_MAX_BYTES:
        raise InvalidInputError(f"--publish: the topic is longer than MQTT allows ({_TOPIC_MAX_BYTES} bytes)")
    tls = parts.scheme == "mqtts"
    return MqttTarget(
        host=parts.hostname,
        port=port if port else (DEFAULT_TLS_PORT if tls else DEFAULT_PORT),
        topic=topic,
        tls=tls,
        username=urllib.parse.unquote(parts.username) if parts.username else None,
        password=urllib.parse.unquote(parts.password) if parts.password else None,
    )


def check_qos(qos: int) -> int:
    """An MQTT quality of service: 0 (at most once), 1 (at least once) or 2 (exactly once).

    Raises:
        InvalidInputError: any other value.
    """
    if isinstance(qos, bool) or qos not in (0, 1, 2):
        raise InvalidInputError(f"--qos must be 0, 1 or 2, got {qos!r}")
    return int(qos)


class MqttSink:
    """Publishes predictions to an MQTT broker. Use as a context manager (it connects on entry).

    Args:
        target: a :class:`MqttTarget` or its URL.
        qos: the quality of service of every message (0, 1 or 2).
        model_names: per-model names for the ``models`` field (when the pipeline gives per-model values).
        client_id: the MQTT client id (default: one the broker assigns).

    Raises:
        InvalidInputError: a bad URL or QoS; the broker cannot be reached or refuses the connection (on entry).
        MissingDependencyError: paho-mqtt is missing (``pip install 'edgeaff[serve]'``).
    """

    stage = "publish"

    def __init__(
        self,
        target: MqttTarget | str,
        *,
        qos: int = 0,
        model_names: Sequence[str] = (),
        client_id: str = "",
    ) -> None:
        self.target = parse_mqtt_url(target) if isinstance(target, str) else target
        self.qos = check_qos(qos)
        self.model_names = tuple(model_names)
        self.client_id = client_id
        self.published = 0
        self.dropped = 0
        self._pending = 0
        self._lock = threading.Lock()
        self._connected = threading.Event()
        self._refused: str | None = None
        self._client: Any = None
        self._last: Any = None

    # -- connection ------------------------------------------------------------------------------------------------

    def __enter__(self) -> MqttSink:
        mqtt = require("paho.mqtt.client", extra="serve", purpose="--publish (MQTT)")
        client = mqtt.Client(  # type: ignore[attr-defined]
            callback_api_version=mqtt.CallbackAPIVersion.VERSION2,  # type: ignore[attr-defined]
            client_id=self.client_id,
        )
        client.connect_timeout = CONNECT_TIMEOUT_S
        client.max_queued_messages_set(MAX_PENDING)
        client.reconnect_delay_set(1, 30)
        if self.target.username:
            client.username_pw_set(self.target.username, self.target.password)
        if self.target.tls:
            client.tls_set()
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish
        where = f"{self.target.host}:{self.target.port}"
        try:
            client.connect(self.target.host, self.target.port, keepalive=30)
        except (OSError, ValueError) as exc:
            reason = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
            raise InvalidInputError(
                f"--publish: cannot connect to the MQTT broker at {where} ({reason}); start the broker or fix the "
                "address"
            ) from None
        client.loop_start()
        self._client = client
        if not self._connected.wait(CONNECT_TIMEOUT_S) or self._refused is not None:
            self.close()
            raise InvalidInputError(
                f"--publish: the MQTT broker at {where} "
                + (f"refused the connection ({self._refused})" if self._refused else "did not answer in time")
                + "; check the broker, user name and password"
            )
        return self

    def _on_connect(self, client: Any, userdata: Any, flags: Any, reason: Any, properties: Any) -> None:
        if getattr(reason, "is_failure", False):
            self._refused = str(reason)
        self._connected.set()

    def _on_disconnect(self, client: Any, userdata: Any, flags: Any, reason: Any, properties: Any) -> None:
        return None  # paho's network thread reconnects by itself

    def _on_publish(self, client: Any, userdata: Any, mid: int, reason: Any, properties: Any) -> None:
        with self._lock:
            self._pending = max(0, self._pending - 1)

    # -- messages --------------------------------------------------------------------------------------------------

    def publish(self, payload: str) -> bool:
        """Send one message (thread-safe); ``False`` when it was dropped (too many pending, or no connection at
        QoS 0)."""
        if self._client is None:
            raise RuntimeError("MqttSink: use it in a 'with' block before publishing")
        with self._lock:
            if self._pending >= MAX_PENDING:
                self.dropped += 1
                return False
            self._pending += 1
        info = self._client.publish(self.target.topic, payload, qos=self.qos)
        if info.rc != 0:  # not connected (QoS 0), or paho's own queue is full
            with self._lock:
                self._pending = max(0, self._pending - 1)
                self.dropped += 1
            return False
        with self._lock:
            self.published += 1
        self._last = info
        return True

    def write(self, prediction: Prediction) -> None:
        """Publish one prediction (the :class:`~edgeaff.runtime.sinks.base.Sink` contract)."""
        self.publish(to_json(prediction_record(prediction, self.model_names)))

    def finish(self) -> dict[str, Any]:
        """Wait (up to 5 s) for the messages sent so far to go out; the summary's ``publish`` entry."""
        self.flush()
        return {"publish": self.summary()}

    def flush(self, timeout_s: float = FLUSH_TIMEOUT_S) -> None:
        """Wait up to ``timeout_s`` for the last message to be sent (QoS 0) or acknowledged (QoS 1, 2)."""
        last = self._last
        if last is not None:
            with contextlib.suppress(ValueError, RuntimeError):
                last.wait_for_publish(timeout_s)

    def summary(self) -> dict[str, Any]:
        """Where the messages went and how many were sent or dropped."""
        return {"url": self.target.url, "qos": self.qos, "published": self.published, "dropped": self.dropped}

    def close(self) -> None:
        """Disconnect and stop the network thread (idempotent)."""
        client, self._client = self._client, None
        if client is not None:
            with contextlib.suppress(Exception):
                client.disconnect()
            client.loop_stop()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


@contextlib.contextmanager
def publish_sinks(url: str | None, *, qos: int = 0, model_names: Sequence[str] = ()) -> Iterator[list[MqttSink]]:
    """The sinks ``--publish URL --qos N`` asks for (none without a URL), connected, closed on exit."""
    if url is None:
        check_qos(qos)
        yield []
        return
    with MqttSink(url, qos=qos, model_names=model_names) as sink:
        yield [sink]
