"""CPU threads per graph session, and whether they spin: the defaults, chosen by the cores present and measured.

ONNX Runtime's own default is one intra-op thread per *physical* core of the machine, whatever CPUs the process
may use (a container limited to two CPUs of a 64-core host would start 64 threads that fight over two). edgeaff
sizes every session by :func:`~edgeaff.runtime.limits.usable_cores` instead (the process's affinity mask), except
the graphs that run on small inputs one frame at a time:

=====================  =========  ===================================================================================
graph                  threads    why
=====================  =========  ===================================================================================
``visual``, ``vggish``  all cores  batches of crops or log-mel examples: large convolutions that split well
``temporal``           all cores  a 300-frame window
``temporal_stream``    1          one frame per call. The pipeline measures this graph's count once per machine and
                                  bundle (:mod:`edgeaff.runtime.pipeline.stream_threads`): a 12-network bundle's
                                  weights outgrow the caches and run 1.5× faster on 2 threads, one fold's fit and run
                                  0.8× as fast; 1 is the count where nothing is measured
``face_detector``      1          one 128×128 image per call, every few frames
=====================  =========  ===================================================================================

``--threads N`` (``BackendOptions.threads``) overrides the count for every graph.

Spinning (``session.intra_op.allow_spinning``): off by default. With it on, the pool's threads busy-wait for the
next parallel section instead of sleeping; between graph calls the pipeline decodes, tracks faces and computes audio
features on those cores (in a prefetch thread, see :mod:`edgeaff.runtime.io.prefetch`), and spinning threads slow
that work down. ``BackendOptions.spinning=True`` turns it on for a dedicated machine; edgeaff then also sets
``session.force_spinning_stop``, so the threads spin only between the operators of one run and sleep once it ends
(ONNX Runtime's own default, ``spinning=None`` on a bare :class:`~edgeaff.runtime.backends.ort.OrtRunner`, keeps
them spinning after the run as well).

Measured 2026-12-06 with ``benchmarks/pipeline_ab.py`` on a quiet machine
(``benchmarks/results/cpu-2core-epyc/ab/``) (12 × IR-50 bundle, INT8, offline, 600 frames; AMD EPYC Zen 4 with
AVX-512/VNNI/BF16, 2 vCPUs, 1-minute load 1.4-3.1, ONNX Runtime 1.32; 3 alternating rounds, medians): off 25.7 and
24.9 frames/s, spinning that stops after each run 21.8, spinning as ONNX Runtime does it 18.7. Off is 1.37× the
plain spinning and 1.14× the stopping form, so it stays the default. In stream mode (same bundle and file) spinning
only the streaming graph left the pipeline unchanged (25.8 against 25.7 frames/s): its update is 0.5 ms of a frame's
38.8 ms there (1.3%), although spinning makes that update alone 1.2× faster back to back. An earlier run on a loaded
Intel Xeon (AVX-512/VNNI/AMX, load 9-11) pointed the same way: off 23.3 and 47.8 frames/s against 21.4 and 29.7 with
plain spinning.
"""

from __future__ import annotations

from edgeaff.runtime.limits import usable_cores

SERIAL_ROLES = frozenset({"temporal_stream", "face_detector"})
"""Graphs that run with one thread unless ``--threads`` says otherwise (see the module docstring)."""

DEFAULT_SPINNING = False
"""Whether intra-op threads spin when nothing asks otherwise (see the module docstring)."""


def graph_threads(role: str | None, requested: int | None = None) -> int:
    """Intra-op threads for the session of graph ``role``.

    Args:
        role: the bundle graph (``visual``, ``vggish``, ``temporal``, ``temporal_stream``, ``face_detector``);
            ``None`` for any other graph (all cores).
        requested: ``--threads``, which wins when given.

    Example:
        >>> graph_threads("temporal_stream")
        1
    """
    if requested is not None:
        return requested
    return 1 if role in SERIAL_ROLES else usable_cores()


def graph_spinning(requested: bool | None = None) -> bool:
    """Whether the intra-op threads spin: ``requested`` when given, else :data:`DEFAULT_SPINNING`."""
    return DEFAULT_SPINNING if requested is None else bool(requested)
