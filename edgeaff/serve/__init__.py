"""``edgeaff serve``: live predictions over the network (WebSocket, HTTP, MQTT) and a browser dashboard.

A layer over the public runtime API (:mod:`edgeaff.runtime` and its sinks), like ``edgeaff infer``: one
:class:`~edgeaff.runtime.Pipeline` runs on a live source in a background thread (:mod:`.feed`), its predictions
fan out to WebSocket clients through bounded per-client queues (:mod:`.hub`), and a Starlette application served
by uvicorn (:mod:`.app`, :mod:`.server`) answers ``/health``, ``/status``, ``/latest``, ``/preview.jpg``,
``/metrics``, ``POST /predict`` and the dashboard. It needs the ``serve`` extra (``pip install 'edgeaff[serve]'``);
nothing here is imported by the runtime. See ``docs/serve.md``.
"""

from edgeaff.runtime import MissingDependencyError
from edgeaff.serve.settings import ServeSettings, SourceSpec

SERVE_MODULES = ("starlette", "uvicorn", "websockets", "prometheus_client")
"""What the ``serve`` extra brings, imported by the web side (paho-mqtt only with ``--publish``)."""


def require_serve_extra() -> None:
    """Check that the ``serve`` extra is installed, before anything imports it.

    Raises:
        MissingDependencyError: a module of the extra is missing (the message says what to install).
    """
    import importlib

    missing = []
    for name in SERVE_MODULES:
        try:
            importlib.import_module(name)
        except ImportError:
            missing.append(name)
    if missing:
        raise MissingDependencyError(
            f"edgeaff serve needs {', '.join(missing)} (the serve extra); install it with: pip install 'edgeaff[serve]'"
        )


__all__ = ["SERVE_MODULES", "ServeSettings", "SourceSpec", "require_serve_extra"]
