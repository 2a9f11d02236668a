"""``/metrics``: the server's counters in Prometheus' text format (prometheus_client, a registry per server).

==================================  =======  =====================================================================
``edgeaff_frames_total``            counter  predictions made on the live source
``edgeaff_frames_with_face_total``  counter  of which a face was found in the frame
``edgeaff_dropped_frames_total``    counter  frames the live source dropped because the pipeline fell behind
``edgeaff_dropped_messages_total``  counter  messages dropped from slow clients' queues
``edgeaff_clients``                 gauge    WebSocket clients connected
``edgeaff_source_up``               gauge    1 while the source delivers (running), else 0
``edgeaff_uploads_total{result}``   counter  clips received: done, refused, failed, busy
``edgeaff_uptime_seconds``          gauge    seconds since the server started
``edgeaff_latency_seconds``         histo.   frame read to prediction (stream mode)
==================================  =======  =====================================================================
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from edgeaff.serve.hub import Hub
from edgeaff.serve.status import FeedStatus

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 1.5, 2.5, 5.0, 10.0)
CONTENT_TYPE = CONTENT_TYPE_LATEST


class _Counts:
    def __init__(self, status: FeedStatus, hub: Hub, uploads: Callable[[], dict[str, int]]) -> None:
        self.status = status
        self.hub = hub
        self.uploads = uploads

    def collect(self) -> Iterator[Metric]:
        snapshot = self.status.snapshot()
        yield CounterMetricFamily("edgeaff_frames", "Predictions made on the live source.", value=snapshot["frames"])
        yield CounterMetricFamily(
            "edgeaff_frames_with_face", "Predictions whose frame had a face.", value=snapshot["frames_with_face"]
        )
        yield CounterMetricFamily(
            "edgeaff_dropped_frames",
            "Frames the live source dropped because the pipeline fell behind.",
            value=snapshot["dropped_frames"],
        )
        yield CounterMetricFamily(
            "edgeaff_dropped_messages", "Messages dropped from slow clients' queues.", value=self.hub.dropped
        )
        yield GaugeMetricFamily("edgeaff_clients", "WebSocket clients connected.", value=len(self.hub.subscribers))
        up = 1.0 if snapshot["source"]["state"] == "running" else 0.0
        yield GaugeMetricFamily("edgeaff_source_up", "1 while the live source delivers frames.", value=up)
        uploads = CounterMetricFamily("edgeaff_uploads", "Clips received on /predict.", labels=["result"])
        for result, count in sorted(self.uploads().items()):
            uploads.add_metric([result], count)
        yield uploads
        yield GaugeMetricFamily("edgeaff_uptime_seconds", "Seconds since the server started.",
                                value=snapshot["uptime_s"])  # fmt: skip


class ServerMetrics:
    """A Prometheus registry for one server: its counts (read when scraped) and the latency histogram."""

    def __init__(self, status: FeedStatus, hub: Hub, uploads: Callable[[], dict[str, int]]) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self.latency = Histogram(
            "edgeaff_latency_seconds",
            "Frame read to prediction on the live source (stream mode).",
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.registry.register(_Counts(status, hub, uploads))

    def observe(self, latency_ms: float | None) -> None:
        """Record one prediction's latency (thread-safe)."""
        if latency_ms is not None:
            self.latency.observe(latency_ms / 1000.0)

    def render(self) -> bytes:
        """The exposition text."""
        return bytes(generate_latest(self.registry))


def parse_exposition(text: str) -> dict[str, Any]:
    """``{sample name with labels: value}`` of an exposition text (for tests and quick checks)."""
    values: dict[str, Any] = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        name, _, value = line.rpartition(" ")
        values[name] = float(value)
    return values
