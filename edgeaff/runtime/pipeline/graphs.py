"""The graph sessions of a pipeline: opened once, on first use, and reused by every source it runs.

Each runner is checked against the bundle's manifest when it opens (output names, ranks, fixed sizes and dtypes),
so a graph that does not match its description is refused before the first frame. An :class:`Instrument` may wrap
each runner and the face stage as they open (``edgeaff bench`` times them that way).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Protocol

from edgeaff.runtime.artifacts.bundle import Bundle, BundleError, GraphTensor
from edgeaff.runtime.backends.base import Backend, Runner, TensorSpec
from edgeaff.runtime.backends.graphs import GraphChoice, graph_runner
from edgeaff.runtime.errors import InvalidInputError
from edgeaff.runtime.faces import DetectorKind, FaceStage, FaceStageOptions
from edgeaff.runtime.pipeline.options import PipelineOptions
from edgeaff.runtime.pipeline.stream_threads import ThreadChoice, tuned_stream_threads
from edgeaff.runtime.pipeline.tuning import DEFAULTS, BatchChoice, tuned_batch


class Instrument(Protocol):
    """A hook that sees every runner and the face stage as they open, and may return wrappers of them."""

    def runner(self, role: str, runner: Runner) -> Runner:
        """The runner the pipeline uses for graph ``role`` (already entered)."""
        ...

    def faces(self, stage: FaceStage) -> FaceStage:
        """The face stage the pipeline uses (already entered)."""
        ...


class GraphSet:
    """Entered runners by graph role and the face stage, opened on demand; :meth:`close` frees them all."""

    def __init__(
        self,
        bundle: Bundle,
        options: PipelineOptions,
        *,
        instrument: Instrument | None = None,
        on_note: Callable[[str], None] | None = None,
    ) -> None:
        self.bundle = bundle
        self.options = options
        self.instrument = instrument
        self.on_note = on_note
        self.choices: dict[str, GraphChoice] = {}
        self.batches: dict[str, BatchChoice] = {}
        self.stream_threads: ThreadChoice | None = None
        self._runners: dict[str, Runner] = {}
        self._entered: dict[str, Runner] = {}
        self._faces: FaceStage | None = None
        self._stack = contextlib.ExitStack()

    def runner(self, role: str) -> Runner:
        """The entered runner of graph ``role`` (``visual``, ``vggish``, ``temporal``, ``temporal_stream``); the
        streaming graph with its measured thread count (:mod:`edgeaff.runtime.pipeline.stream_threads`)."""
        if role not in self._runners:
            threads = None
            if role == "temporal_stream":
                self.stream_threads = tuned_stream_threads(
                    self.bundle, self.options.backend, tune=self.options.tune, on_note=self.on_note
                )
                threads = self.stream_threads.threads
            runner, choice = graph_runner(self.bundle, role, self.options.backend, threads=threads)
            entered = self._stack.enter_context(runner)
            check_outputs(self.bundle, role, entered.outputs, choice.file)
            self.choices[role] = choice
            self._entered[role] = entered
            self._runners[role] = self.instrument.runner(role, entered) if self.instrument else entered
        return self._runners[role]

    def batch(self, role: str) -> BatchChoice:
        """The offline batch of graph ``role`` (``visual`` or ``vggish``): measured once per machine and bundle and
        cached (:mod:`edgeaff.runtime.pipeline.tuning`) when ``options.tune`` and the backend is ONNX Runtime on
        the CPU or CUDA, else the default (TensorRT engines keep the batches their profiles were built for)."""
        if role not in self.batches:
            backend = self.options.backend
            if self.options.tune and backend.backend in (Backend.ORT_CPU, Backend.ORT_CUDA):
                self.runner(role)
                self.batches[role] = tuned_batch(
                    self.bundle, role, self._entered[role], self.choices[role], backend, on_note=self.on_note
                )
            else:
                self.batches[role] = BatchChoice(role, DEFAULTS[role], "default", {})
        return self.batches[role]

    def faces(self) -> FaceStage:
        """The entered face stage (``--face-detector``), its subject forgotten (call per source)."""
        if self._faces is None:
            stage = self._stack.enter_context(self._face_stage())
            self._faces = self.instrument.faces(stage) if self.instrument else stage
        self._faces.reset()
        return self._faces

    def _face_stage(self) -> FaceStage:
        options = self.options
        stage_options = FaceStageOptions(
            detect_every=options.detect_every,
            select=options.face_select,
            crop_size=self.bundle.feature_spec.face.image_size,
        )
        if options.face_detector is DetectorKind.HAAR:
            return FaceStage.haar(options.haar_cascade, options=stage_options)
        if "face_detector" not in self.bundle.graphs:
            raise InvalidInputError(
                f"the bundle {self.bundle.root} ships no face detector (exported by an older edgeaff); re-export it, "
                "or pass --face-detector haar"
            )
        from edgeaff.runtime.faces.detector_spec import FaceDetectorSpec
        from edgeaff.runtime.faces.dnn_detector import DnnFaceDetector

        entry = self.bundle.face_detector
        if entry is not None and entry.detector_spec is not None:
            spec = FaceDetectorSpec.from_dict(entry.detector_spec)
        else:  # a schema-1 bundle: the spec is the .json beside the graph
            spec = FaceDetectorSpec.load(self.bundle.graphs["face_detector"].file().with_suffix(".json"))
        runner, choice = graph_runner(self.bundle, "face_detector", options.backend)
        self.choices["face_detector"] = choice
        return FaceStage(DnnFaceDetector(spec, runner), keypoint_names=spec.keypoints, options=stage_options)

    def close(self) -> None:
        """Close every runner and the face stage."""
        self._runners.clear()
        self._entered.clear()
        self._faces = None
        self._stack.close()


def check_outputs(bundle: Bundle, role: str, actual: list[TensorSpec], file: str) -> None:
    """Refuse a graph whose outputs differ from the manifest's description of them.

    Raises:
        BundleError: a missing output, or one of another rank, fixed size or dtype.
    """
    described: tuple[GraphTensor, ...] = bundle.graphs[role].outputs
    found = {spec.name: spec for spec in actual}
    for want in described:
        got = found.get(want.name)
        problem = None
        if got is None:
            problem = f"has no output '{want.name}' (it has {sorted(found)})"
        elif got.dtype != want.dtype:
            problem = f"gives '{want.name}' as {got.dtype}, the manifest says {want.dtype}"
        elif len(got.shape) != len(want.shape) or any(
            isinstance(w, int) and isinstance(g, int) and w != g for w, g in zip(want.shape, got.shape, strict=True)
        ):
            problem = f"gives '{want.name}' with shape {tuple(got.shape)}, the manifest says {tuple(want.shape)}"
        if problem is not None:
            raise BundleError(
                f"bundle {bundle.root}: the '{role}' graph ({file}) {problem}; the bundle is inconsistent: re-export it"
            )
