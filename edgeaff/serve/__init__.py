"""``edgeaff serve``: live predictions over the network (WebSocket, HTTP, MQTT) and a browser dashboard.

A layer over the public runtime API (:mod:`edgeaff.runtime` and its sinks), like ``edgeaff infer``: one
:class:`~edgeaff.runtime.Pipeline` runs on a live source in a background thread (:mod:`.feed`), its predictions
fan out to WebSocket clients through bounded per-client queues (:mod:`.hub`), and a Starlette application served
by uvicorn (:mod:`.app`, :mod:`.server`) answers ``/health``, ``/status``, ``/latest``, ``/preview.jpg``,
``/metrics``, ``POST /predict`` and the dashboard. It needs the ``serve`` extra (``pip install 'edgeaff[serve]'``);
nothing here is imported by the runtime. See ``docs/serve.md``.
"""

from edgeaff.serve.settings import ServeSettings, SourceSpec

__all__ = ["ServeSettings", "SourceSpec"]
