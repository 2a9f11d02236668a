"""Frame-to-WebSocket latency of a running ``edgeaff serve``: from the moment a frame is read (a camera's read, or
a file's frame handed over at its time) to the moment a WebSocket client on this machine has the message.

Each message carries ``emitted_at`` (the server's wall clock when the prediction was made) and ``latency_ms``
(frame read to prediction), so for a client on the same machine (one clock)::

    frame to client = (received - emitted_at) + latency_ms / 1000

Usage (the server already running, e.g. ``edgeaff serve --bundle B --source clip.mp4 --loop``)::

    python benchmarks/serve_latency.py ws://127.0.0.1:8080/ws [--messages 600] [--token T]

Prints p50/p90/p99/max of the frame-to-client latency and of its two parts (pipeline, WebSocket hop) as JSON.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
from websockets.sync.client import connect


def measure(url: str, messages: int, token: str | None) -> dict[str, dict[str, float]]:
    """Receive ``messages`` predictions from ``url`` and summarise their latencies in milliseconds."""
    headers = {"Authorization": f"Bearer {token}"} if token else None
    pipeline, hop = [], []
    with connect(url, additional_headers=headers, open_timeout=30, max_size=2**20) as socket:
        for _ in range(messages):
            text = socket.recv(timeout=60)
            received = time.time()
            message = json.loads(text)
            if message.get("latency_ms") is None:
                continue
            pipeline.append(float(message["latency_ms"]))
            hop.append((received - float(message["emitted_at"])) * 1000.0)
    total = np.array(pipeline) + np.array(hop)

    def stats(values: np.ndarray) -> dict[str, float]:
        p50, p90, p99 = np.percentile(values, [50, 90, 99])
        return {"p50": round(float(p50), 2), "p90": round(float(p90), 2), "p99": round(float(p99), 2),
                "max": round(float(values.max()), 2)}  # fmt: skip

    return {
        "messages": {"count": len(total)},
        "frame_to_client_ms": stats(total),
        "frame_to_prediction_ms": stats(np.array(pipeline)),
        "prediction_to_client_ms": stats(np.array(hop)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("url", help="the server's WebSocket, e.g. ws://127.0.0.1:8080/ws")
    parser.add_argument("--messages", type=int, default=600)
    parser.add_argument("--token")
    args = parser.parse_args()
    print(json.dumps(measure(args.url, args.messages, args.token), indent=2))


if __name__ == "__main__":
    main()
