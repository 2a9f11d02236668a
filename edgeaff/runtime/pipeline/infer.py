"""``edgeaff infer``: a bundle run on a video file, a folder of faces, a camera, a stream, or a prepared trial.

Torch-free. The pieces, each in its own module: sources (:mod:`.sources`), the face stage (:mod:`.faces`), audio
features per frame (:mod:`.frame_audio`), the per-frame networks (:mod:`.feature_stage`), the windowed or
streaming temporal graph (:mod:`.temporal_stages`), fold ensembling (:mod:`.ensemble`) and the result files
(:mod:`.outputs`). :mod:`.inference_run` drives them frame by frame; ``docs/runtime.md`` describes the behaviour.

Example:
    >>> from edgeaff.runtime.pipeline.infer import InferOptions, infer_source
    >>> result = infer_source("talk.mp4", "bundle", "out", options=InferOptions())  # doctest: +SKIP
    >>> result.paths["csv"]  # doctest: +SKIP
    PosixPath('out/talk.csv')
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any

from edgeaff.runtime.artifacts.bundle import Bundle, load_bundle
from edgeaff.runtime.backends.base import Runner
from edgeaff.runtime.backends.graphs import BackendOptions, GraphChoice, check_precision, graph_runner
from edgeaff.runtime.errors import InvalidInputError
from edgeaff.runtime.faces import DetectorKind, FaceSelect, FaceStage, FaceStageOptions
from edgeaff.runtime.io.open import open_source
from edgeaff.runtime.io.sources import Source, SourceKind
from edgeaff.runtime.pipeline.ensemble import CLIP_MODES

MODES = ("offline", "stream")
MAX_VISUAL_BATCH = 64  # the engines' default profile for the visual graph


@dataclasses.dataclass(frozen=True)
class InferOptions:
    """What ``edgeaff infer`` was asked to do (the CLI flags; see ``docs/runtime.md``).

    Attributes:
        backend: backend, precision, threads, TensorRT cache and shapes.
        mode: ``offline`` (windows, files), ``stream`` (causal, per frame) or ``None``: stream for live sources,
            offline otherwise.
        face_detector: ``dnn`` (the bundle's BlazeFace) or ``haar`` (OpenCV).
        haar_cascade: a Haar cascade file instead of OpenCV's bundled one.
        detect_every: detect at least every N frames and track in between.
        face_select: whom to follow when several faces are visible.
        clip: ``late`` (after ensembling), ``early`` (each fold) or ``none``.
        per_model: also write the raw per-model predictions (``<name>.models.csv``).
        overlay: write ``<name>.overlay.mp4`` with the face box and a valence-arousal widget.
        plot: write ``<name>.png`` with the traces.
        live: print each prediction as it comes (stream mode).
        max_frames: stop after this many frames (``None``: until the end / Ctrl-C).
        timeout_s: live sources: longest wait for a frame.
        fps: frame rate of a folder of face images.
        audio: audio file for a folder of face images.
        name: output file stem (default: from the source).
        batch: frames per visual (and at most per VGGish) graph call; ``None``: 16 offline, 1 in stream mode. In
            stream mode a larger batch trades latency (frames wait for the batch to fill) for throughput.
    """

    backend: BackendOptions = dataclasses.field(default_factory=BackendOptions)
    mode: str | None = None
    face_detector: str = "dnn"
    haar_cascade: Path | None = None
    detect_every: int = 10
    face_select: str = "largest"
    clip: str = "late"
    per_model: bool = False
    overlay: bool = False
    plot: bool = False
    live: bool = False
    max_frames: int | None = None
    timeout_s: float = 10.0
    fps: float | None = None
    audio: Path | None = None
    name: str | None = None
    batch: int | None = None

    def __post_init__(self) -> None:
        if self.mode is not None and self.mode not in MODES:
            raise InvalidInputError(f"unknown mode '{self.mode}'; choose one of {', '.join(MODES)}")
        if self.clip not in CLIP_MODES:
            raise InvalidInputError(f"unknown clipping '{self.clip}'; choose one of {', '.join(CLIP_MODES)}")
        kinds = [k.value for k in DetectorKind]
        if self.face_detector not in kinds:
            raise InvalidInputError(f"unknown face detector '{self.face_detector}'; choose one of {', '.join(kinds)}")
        FaceSelect.parse(self.face_select)
        if self.detect_every < 1:
            raise InvalidInputError(f"--detect-every must be at least 1, got {self.detect_every}")
        if self.max_frames is not None and self.max_frames < 1:
            raise InvalidInputError(f"--max-frames must be at least 1, got {self.max_frames}")
        if self.fps is not None and not self.fps > 0:
            raise InvalidInputError(f"--fps must be positive, got {self.fps}")
        if self.batch is not None and not 1 <= self.batch <= MAX_VISUAL_BATCH:
            raise InvalidInputError(f"--batch must be 1..{MAX_VISUAL_BATCH} (the engines' profile), got {self.batch}")
        if self.live and self.mode == "offline":
            raise InvalidInputError("--live prints predictions as they come, which needs --mode stream")


@dataclasses.dataclass(frozen=True)
class InferenceResult:
    """What a run wrote: the summary document and the result files by kind (``csv``, ``txt``, ``models``, …)."""

    summary: dict[str, Any]
    paths: dict[str, Path]


@dataclasses.dataclass
class Graphs:
    """The entered runners of one run, and which file/precision each graph uses."""

    visual: Runner
    vggish: Runner | None
    temporal: Runner
    faces: FaceStage | None
    choices: list[GraphChoice]


def open_graphs(
    bundle: Bundle,
    options: InferOptions,
    stack: contextlib.ExitStack,
    *,
    mode: str,
    audio: bool,
    faces: bool,
) -> Graphs:
    """Create and enter the runners a run needs (closed by ``stack``)."""
    backend = options.backend
    choices: list[GraphChoice] = []

    def enter(role: str, threads: int | None = None) -> Runner:
        runner, choice = graph_runner(bundle, role, backend, threads=threads)
        choices.append(choice)
        return stack.enter_context(runner)

    visual = enter("visual")
    vggish = enter("vggish") if audio else None
    temporal = enter("temporal" if mode == "offline" else "temporal_stream")
    stage = stack.enter_context(face_stage(bundle, options, choices)) if faces else None
    return Graphs(visual, vggish, temporal, stage, choices)


def face_stage(bundle: Bundle, options: InferOptions, choices: list[GraphChoice]) -> FaceStage:
    """The face stage for ``--face-detector`` (the bundle's BlazeFace on the run's backend, or Haar).

    Raises:
        InvalidInputError: ``dnn`` with a bundle that ships no face detector.
    """
    stage_options = FaceStageOptions(
        detect_every=options.detect_every,
        select=FaceSelect.parse(options.face_select),
        crop_size=bundle.feature_spec.face.image_size,
    )
    if options.face_detector == DetectorKind.HAAR.value:
        return FaceStage.haar(options.haar_cascade, options=stage_options)
    if "face_detector" not in bundle.graphs:
        raise InvalidInputError(
            f"the bundle {bundle.root} ships no face detector (exported by an older edgeaff); re-export it, or pass "
            "--face-detector haar"
        )
    from edgeaff.runtime.faces.detector_spec import FaceDetectorSpec
    from edgeaff.runtime.faces.dnn_detector import DnnFaceDetector

    entry = bundle.manifest["graphs"]["face_detector"]
    if isinstance(entry.get("detector_spec"), dict):
        spec = FaceDetectorSpec.from_dict(entry["detector_spec"])
    else:
        spec = FaceDetectorSpec.load(bundle.graphs["face_detector"].file().with_suffix(".json"))
    runner, choice = graph_runner(bundle, "face_detector", options.backend, threads=options.backend.threads or 1)
    choices.append(choice)
    return FaceStage(DnnFaceDetector(spec, runner), keypoint_names=spec.keypoints, options=stage_options)


def infer_source(
    source: str | Path,
    bundle: str | Path,
    out_dir: str | Path,
    *,
    options: InferOptions,
    echo: Callable[[str], None] = print,
    show: Callable[[str], None] = print,
) -> InferenceResult:
    """Run a bundle on a file, folder of faces, camera or stream and write the results into ``out_dir``.

    ``echo`` receives notes (no audio, precision fallbacks, the final line); ``show`` the per-frame lines of
    ``--live``.

    Raises:
        BundleError: a missing, incomplete or incompatible bundle.
        InvalidInputError: bad options or source, a damaged or truncated file, an unavailable precision.
        SourceTimeoutError: a live source went silent (the frames received before are written first).
        MissingDependencyError: the backend's or the source's library is missing.
    """
    loaded = load_bundle(bundle)
    check_precision(loaded, options.backend)

    def reopen() -> Source:
        return open_source(source, fps=options.fps, audio=options.audio, timeout_s=options.timeout_s,
                           crop_size=loaded.feature_spec.face.image_size)  # fmt: skip

    return _run(loaded, reopen, Path(out_dir), options=options, echo=echo, show=show)


def infer_prepared(
    trial_dir: str | Path,
    bundle: str | Path,
    out_dir: str | Path,
    *,
    options: InferOptions,
    echo: Callable[[str], None] = print,
) -> InferenceResult:
    """Run a bundle on a prepared trial's stored crops and features; always writes the per-model outputs too.

    Raises:
        BundleError, InvalidInputError: as :func:`infer_source`.
    """
    from edgeaff.runtime.io.prepared_trial import PreparedTrialSource

    loaded = load_bundle(bundle)
    check_precision(loaded, options.backend)
    options = dataclasses.replace(options, per_model=True)
    trial = Path(trial_dir)
    source = lambda: PreparedTrialSource(trial, spec=loaded.feature_spec)  # noqa: E731
    return _run(loaded, source, Path(out_dir), options=options, echo=echo, show=echo)


def _run(
    bundle: Bundle,
    reopen: Callable[[], Source],
    out_dir: Path,
    *,
    options: InferOptions,
    echo: Callable[[str], None],
    show: Callable[[str], None],
) -> InferenceResult:
    from edgeaff.runtime.pipeline.run import InferenceRun

    with reopen() as source:
        info = source.info
        mode = options.mode or ("stream" if info.live else "offline")
        if mode == "offline" and info.live:
            raise InvalidInputError(
                f"{info.uri} is a live source: it runs in stream mode (drop --mode offline); offline windows need a "
                "file or folder"
            )
        if options.live and mode != "stream":
            raise InvalidInputError("--live prints predictions as they come, which needs --mode stream")
        needs_audio = info.has_audio and bundle.multimodal and info.kind is not SourceKind.PREPARED
        faces = info.kind not in (SourceKind.FOLDER, SourceKind.PREPARED)
        with contextlib.ExitStack() as stack:
            graphs = open_graphs(bundle, options, stack, mode=mode, audio=needs_audio, faces=faces)
            for choice in graphs.choices:
                if choice.note:
                    echo(f"note: {choice.note}")
            run = InferenceRun(bundle, source, graphs, out_dir, options=options, mode=mode, echo=echo, show=show)
            return run.execute(reopen)
