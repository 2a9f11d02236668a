"""Finer timing inside the runtime pipeline, recorded into the run's own :class:`StageTimer`.

The runtime times its stages as a user sees them (``face``, ``visual``, ``temporal``, ...). A benchmark also wants
to know where the face stage spends its time and, on a GPU, how a graph call splits into copies and compute. These
wrappers sit around the public parts of an opened pipeline (a face stage's ``detector`` and ``tracker``, the graph
runners) and add, per frame or per call:

* ``face_detect``: detector time in a frame that ran the detector (region and whole-frame searches together);
* ``face_track``: optical-flow time in a frame that tracked (or started tracking);
* ``face_align``: the rest of the face stage for a frame with a face (similarity fit, warp, resize to the crop,
  choosing the subject);
* ``<graph>_h2d`` / ``<graph>_compute`` / ``<graph>_d2h``: the split a native TensorRT runner measures with CUDA
  events for each call (``TrtRunner.last_times``, the split trtexec reports); other runners record nothing.

Nothing here changes what the pipeline computes: each wrapper calls the wrapped object and returns its result.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import numpy as np

from edgeaff.runtime import FaceDetection, FaceResult, FaceStage, Runner, StageTimer, TensorSpec


class _FrameClock:
    """Milliseconds spent detecting and tracking in the frame being processed."""

    def __init__(self) -> None:
        self.detect_ms = 0.0
        self.track_ms = 0.0
        self.detections = 0
        self.tracks = 0

    def reset(self) -> None:
        self.detect_ms = self.track_ms = 0.0
        self.detections = self.tracks = 0


class _TimedDetector:
    """A face detector that adds its time to the frame clock (same interface as the wrapped detector)."""

    def __init__(self, inner: Any, clock: _FrameClock) -> None:
        self.inner = inner
        self.clock = clock
        self.has_keypoints = inner.has_keypoints

    def open(self) -> None:
        self.inner.open()

    def close(self) -> None:
        self.inner.close()

    def detect(
        self, frame_bgr: np.ndarray, *, roi: tuple[float, float, float, float] | None = None
    ) -> list[FaceDetection]:
        start = time.perf_counter()
        try:
            return list(self.inner.detect(frame_bgr, roi=roi))
        finally:
            self.clock.detect_ms += (time.perf_counter() - start) * 1000.0
            self.clock.detections += 1


class _TimedTracker:
    """An optical-flow tracker that adds the time of ``start`` and ``step`` to the frame clock."""

    def __init__(self, inner: Any, clock: _FrameClock) -> None:
        self.inner = inner
        self.clock = clock

    @property
    def active(self) -> bool:
        return bool(self.inner.active)

    def reset(self) -> None:
        self.inner.reset()

    def start(self, frame_bgr: np.ndarray, face: FaceDetection) -> bool:
        begin = time.perf_counter()
        try:
            return bool(self.inner.start(frame_bgr, face))
        finally:
            self._add(begin)

    def step(self, frame_bgr: np.ndarray) -> FaceDetection | None:
        begin = time.perf_counter()
        try:
            result: FaceDetection | None = self.inner.step(frame_bgr)
            return result
        finally:
            self._add(begin)

    def _add(self, begin: float) -> None:
        self.clock.track_ms += (time.perf_counter() - begin) * 1000.0
        self.clock.tracks += 1


class TimedFaceStage:
    """Wraps an opened :class:`FaceStage`: the same results, plus ``face_detect/track/align`` per frame.

    It also keeps a few of the crops it produced (every ``keep_every``-th face, at most ``keep``), so the
    benchmark can time the visual graph on real face crops afterwards.

    Args:
        stage: the face stage (already entered; its detector and tracker are wrapped in place).
        keep: crops to keep.
        keep_every: keep one crop out of this many faces.
    """

    def __init__(self, stage: FaceStage, *, keep: int = 64, keep_every: int = 5) -> None:
        self.stage = stage
        self.timer: StageTimer | None = None
        self.crops: list[np.ndarray] = []
        self._keep, self._keep_every, self._faces = keep, max(1, keep_every), 0
        self._clock = _FrameClock()
        if not isinstance(stage.detector, _TimedDetector):
            stage.detector = _TimedDetector(stage.detector, self._clock)
        if not isinstance(stage.tracker, _TimedTracker):
            stage.tracker = _TimedTracker(stage.tracker, self._clock)

    @property
    def counts(self) -> dict[str, int]:
        """The wrapped stage's detected / tracked / missing counts."""
        return self.stage.counts

    def reset(self) -> None:
        """Forget the followed subject and zero the counts (a new pass over the source)."""
        self.stage.reset()
        self.stage.counts = {key: 0 for key in self.stage.counts}

    def process(self, frame_bgr: np.ndarray, t_s: float | None = None) -> FaceResult:
        """:meth:`FaceStage.process`, timed."""
        self._clock.reset()
        start = time.perf_counter()
        result = self.stage.process(frame_bgr, t_s)
        total = (time.perf_counter() - start) * 1000.0
        if self.timer is not None:
            clock = self._clock
            if clock.detections:
                self.timer.add("face_detect", clock.detect_ms)
            if clock.tracks:
                self.timer.add("face_track", clock.track_ms)
            if result.found:
                self.timer.add("face_align", max(total - clock.detect_ms - clock.track_ms, 0.0))
        if result.found:
            self._faces += 1
            if len(self.crops) < self._keep and (self._faces - 1) % self._keep_every == 0:
                self.crops.append(result.crop.copy())
        return result

    def __getattr__(self, name: str) -> Any:
        return getattr(self.stage, name)


class TimedRunner(Runner):
    """Wraps an entered runner; after each call records the runner's ``last_times`` split, if it has one.

    Args:
        inner: an entered runner (its life cycle stays with whoever entered it).
        role: the graph's role, the prefix of the recorded stages.
    """

    def __init__(self, inner: Runner, role: str) -> None:
        super().__init__()
        self.inner = inner
        self.role = role
        self.name = inner.name
        self.timer: StageTimer | None = None
        self._active = inner.is_active

    @property
    def splits_transfers(self) -> bool:
        """Whether the wrapped runner measures H2D / compute / D2H (the native TensorRT runner does)."""
        return hasattr(self.inner, "last_times")

    def activate(self) -> None:
        """Nothing to load: the wrapped runner is already entered."""

    def deactivate(self) -> None:
        """Nothing to free: the wrapped runner is exited by its owner."""

    @property
    def inputs(self) -> list[TensorSpec]:
        """The wrapped runner's inputs."""
        return self.inner.inputs

    @property
    def outputs(self) -> list[TensorSpec]:
        """The wrapped runner's outputs."""
        return self.inner.outputs

    def infer(self, feed: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run the wrapped runner; record its transfer split when it has one."""
        result = self.inner.infer(feed)
        times = getattr(self.inner, "last_times", None)
        if times is not None and self.timer is not None:
            self.timer.add(f"{self.role}_h2d", float(times.h2d_ms), frames=0)
            self.timer.add(f"{self.role}_compute", float(times.compute_ms), frames=0)
            self.timer.add(f"{self.role}_d2h", float(times.d2h_ms), frames=0)
        return result
