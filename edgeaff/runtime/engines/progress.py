"""Progress output for engine builds, which take minutes on a Jetson and must never look hung (``anchors.md`` §2.5).

:class:`BuildProgress` turns TensorRT's progress callbacks (phase start, step complete, phase finish) into a few
log lines: phases down to ``max_depth`` levels are announced and timed, and steps are reported at most every
``interval_s`` seconds. Where this TensorRT has no ``IProgressMonitor``, :class:`Heartbeat` logs the elapsed time
instead. Both are pure Python; :func:`monitor_build` wires the right one to a builder config.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

log = logging.getLogger("edgeaff.engines")


class BuildProgress:
    """Log lines from TensorRT's phase/step callbacks; thread-safe (TensorRT calls from its own threads).

    Args:
        label: what is being built, prefixed to each line.
        interval_s: minimum seconds between two step lines.
        max_depth: deepest phase level reported (0 = top-level phases only).
        emit: where lines go (``log.info`` by default).
        clock: monotonic clock (injectable for tests).
    """

    def __init__(
        self,
        label: str,
        *,
        interval_s: float = 10.0,
        max_depth: int = 1,
        emit: Callable[[str], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.label = label
        self.interval_s = interval_s
        self.max_depth = max_depth
        self._emit = emit or log.info
        self._clock = clock
        self._lock = threading.Lock()
        self._phases: dict[str, tuple[int, int, float]] = {}  # name -> (depth, steps, started)
        self._last_step_line = clock()
        self.cancelled = False

    def phase_start(self, name: str, parent: str | None, num_steps: int) -> None:
        """A phase began; ``parent`` is the enclosing phase (``None`` at top level)."""
        with self._lock:
            depth = 0 if parent is None else self._phases.get(parent, (self.max_depth, 0, 0.0))[0] + 1
            self._phases[name] = (depth, num_steps, self._clock())
            if depth <= self.max_depth:
                self._emit(f"{self.label}: {'  ' * depth}{name} ({num_steps} steps)")

    def step_complete(self, name: str, step: int) -> bool:
        """A step of ``name`` finished; returns ``False`` to ask TensorRT to cancel the build."""
        with self._lock:
            depth, steps, _ = self._phases.get(name, (self.max_depth + 1, 0, 0.0))
            now = self._clock()
            if depth <= self.max_depth + 1 and now - self._last_step_line >= self.interval_s:
                self._emit(f"{self.label}: {'  ' * depth}{name} {step + 1}/{steps}")
                self._last_step_line = now
            return not self.cancelled

    def phase_finish(self, name: str) -> None:
        """A phase ended."""
        with self._lock:
            depth, _, started = self._phases.pop(name, (self.max_depth + 1, 0, 0.0))
            if depth <= self.max_depth:
                self._emit(f"{self.label}: {'  ' * depth}{name} done in {self._clock() - started:.1f} s")


class Heartbeat:
    """Log ``still building ... (N s)`` every ``interval_s`` seconds from a daemon thread until stopped."""

    def __init__(self, label: str, *, interval_s: float = 30.0, emit: Callable[[str], None] | None = None) -> None:
        self.label = label
        self.interval_s = interval_s
        self._emit = emit or log.info
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"heartbeat {label}", daemon=True)
        self._started = time.monotonic()

    def __enter__(self) -> Heartbeat:
        self._started = time.monotonic()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            self._emit(f"{self.label}: still building ({time.monotonic() - self._started:.0f} s)")


@contextlib.contextmanager
def monitor_build(trt: Any, config: Any, label: str) -> Iterator[BuildProgress | None]:
    """Report progress of the build that runs inside this block on ``config``.

    Uses an ``IProgressMonitor`` subclass where the TensorRT bindings have one (TensorRT 10+); the monitor object
    stays referenced until the block ends, as TensorRT requires. Otherwise a :class:`Heartbeat` runs.
    """
    base = getattr(trt, "IProgressMonitor", None)
    if base is None or not hasattr(config, "progress_monitor"):
        with Heartbeat(label):
            yield None
        return
    progress = BuildProgress(label)

    class _Monitor(base):  # type: ignore[misc, valid-type]
        def __init__(self) -> None:
            super().__init__()  # the pybind11 base must be initialised explicitly

        def phase_start(self, phase_name: str, parent_phase: str | None, num_steps: int) -> None:
            progress.phase_start(phase_name, parent_phase, num_steps)

        def step_complete(self, phase_name: str, step: int) -> bool:
            return progress.step_complete(phase_name, step)

        def phase_finish(self, phase_name: str) -> None:
            progress.phase_finish(phase_name)

    monitor = _Monitor()
    config.progress_monitor = monitor  # this frame's reference keeps the monitor alive for the whole build
    yield progress
