"""The public entry point of the runtime: :class:`Pipeline`.

A pipeline holds a bundle and its graph sessions, opened once and reused for every source it runs. It turns any
source ``edgeaff infer`` accepts into an iterator of :class:`Prediction` objects (:meth:`Pipeline.run`), and takes
frames and audio an application owns through a push interface (:meth:`Pipeline.open_stream`). Nothing is written
to disk: result files, overlays and printing are sinks (:mod:`edgeaff.runtime.sinks`) that consume predictions.

Example:
    >>> from edgeaff.runtime import Pipeline, load_bundle
    >>> bundle = load_bundle("bundle")  # doctest: +SKIP
    >>> with Pipeline(bundle, precision="int8") as pipeline:  # doctest: +SKIP
    ...     for p in pipeline.run("talk.mp4"):
    ...         print(p.frame, p.time_s, p.valence, p.arousal)
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

from edgeaff.runtime.artifacts.bundle import Bundle, load_bundle
from edgeaff.runtime.backends.graphs import BackendOptions, check_precision
from edgeaff.runtime.errors import InvalidInputError
from edgeaff.runtime.io.open import open_source
from edgeaff.runtime.io.prepared_trial import PreparedTrialSource
from edgeaff.runtime.io.sources import ReconnectPolicy, Source, SourceInfo
from edgeaff.runtime.limits import check_timeout
from edgeaff.runtime.pipeline.graphs import GraphSet, Instrument
from edgeaff.runtime.pipeline.options import Mode, PipelineOptions
from edgeaff.runtime.pipeline.processor import FrameProcessor, Notes
from edgeaff.runtime.pipeline.run import PipelineRun
from edgeaff.runtime.pipeline.stream import PushStream
from edgeaff.runtime.pipeline.timing import StageTimer

_BACKEND_FIELDS = {f.name for f in dataclasses.fields(BackendOptions)}
_PIPELINE_FIELDS = {f.name for f in dataclasses.fields(PipelineOptions)} - {"backend"}


class Pipeline:
    """A bundle ready to run: graph sessions opened once, any number of sources. Use as a context manager.

    Args:
        bundle: a :class:`Bundle` or the path of a bundle directory.
        options: all settings at once; or give them as keywords (below), not both.
        instrument: a hook that may wrap each runner and the face stage (timing, tracing).
        on_note: receives notes and warnings as ``"note: ..."`` / ``"warning: ..."`` lines (default: none; they
            are in every run's report either way).
        **settings: :class:`BackendOptions` fields (``backend``, ``precision``, ``threads``, ``device``,
            ``engine_cache``, ``shapes``) and :class:`PipelineOptions` fields (``mode``, ``face_detector``,
            ``haar_cascade``, ``detect_every``, ``face_select``, ``faces``, ``max_faces``, ``track_timeout_s``,
            ``clip``, ``batch``, ``per_model``, ``images``, ``spool_dir``, ``tune``, ``prefetch``).

    Raises:
        BundleError: a missing, incomplete or tampered bundle, or graphs that differ from its manifest.
        InvalidInputError: an unknown setting or a value out of range, a precision the bundle lacks.
        MissingDependencyError: the backend's library is missing (when the graphs open).
    """

    def __init__(
        self,
        bundle: Bundle | str | Path,
        *,
        options: PipelineOptions | None = None,
        instrument: Instrument | None = None,
        on_note: Callable[[str], None] | None = None,
        **settings: Any,
    ) -> None:
        if options is not None and settings:
            raise InvalidInputError("give Pipeline either options= or keyword settings, not both")
        self.options = options if options is not None else pipeline_options(**settings)
        self.bundle = bundle if isinstance(bundle, Bundle) else load_bundle(bundle)
        check_precision(self.bundle, self.options.backend)
        self.on_note = on_note
        self.graphs = GraphSet(self.bundle, self.options, instrument=instrument, on_note=on_note)
        self._open = False

    def __enter__(self) -> Pipeline:
        self.open()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def open(self) -> None:
        """Open the graph sessions every source needs (the face detector opens with the first video)."""
        if self._open:
            return
        self._open = True
        try:
            roles = ["visual"]
            if self.bundle.multimodal:
                roles.append("vggish")
            mode = self.options.mode
            roles += ["temporal"] if mode is Mode.OFFLINE else ["temporal_stream"] if mode else []
            for role in roles:
                self.graphs.runner(role)
        except BaseException:
            self.close()
            raise
        for choice in self.graphs.choices.values():
            if choice.note and self.on_note is not None:
                self.on_note(f"note: {choice.note}")

    def close(self) -> None:
        """Free every graph session."""
        self._open = False
        self.graphs.close()

    # -- what the bundle predicts --------------------------------------------------------------------------------

    def mode_for(self, info: SourceInfo, *, allow_offline: bool = False) -> Mode:
        """The mode a source runs in: the pipeline's, else stream for live sources and offline for the others.

        Raises:
            InvalidInputError: offline mode asked for a live source.
        """
        mode = self.options.mode or (Mode.STREAM if info.live else Mode.OFFLINE)
        if mode is Mode.OFFLINE and info.live and not allow_offline:
            raise InvalidInputError(
                f"{info.uri} is a live source: it runs in stream mode (drop --mode offline); offline windows need a "
                "file or folder"
            )
        return mode

    def processor(
        self, info: SourceInfo, *, mode: Mode, by_index: bool, timer: StageTimer, notes: Notes
    ) -> FrameProcessor:
        """A :class:`FrameProcessor` for one source on this pipeline's graphs (used by runs and streams)."""
        self.open()
        return FrameProcessor(
            self.bundle, self.graphs, self.options, mode=mode, info=info, by_index=by_index, timer=timer, notes=notes
        )

    # -- sources -------------------------------------------------------------------------------------------------

    def run(
        self,
        source: str | Path | Source,
        *,
        fps: float | None = None,
        audio: str | Path | None = None,
        timeout_s: float = 10.0,
        reconnect: ReconnectPolicy | None = None,
        max_frames: int | None = None,
        timer: StageTimer | None = None,
    ) -> PipelineRun:
        """Predictions for a source: a file, a folder of aligned faces, a camera (``0``, ``/dev/video0``),
        ``csi://N``, ``rtsp://…``, ``http(s)://…``, or an already made :class:`Source`.

        Args:
            source: what to read.
            fps: frame rate of a folder of face images.
            audio: audio (any media file) for a folder of face images.
            timeout_s: live sources: longest wait for a frame (0 < s <= 24 h).
            reconnect: live sources: reopen a dropped stream with this policy; the first frame after each outage
                is flagged ``gap`` and starts the temporal state afresh (``None``: the run ends at the first drop).
            max_frames: stop after this many frames.
            timer: record the stages into this timer (default: a new one, :attr:`PipelineRun.timer`).

        Returns:
            A :class:`PipelineRun`: iterate it for :class:`Prediction` objects.

        Raises:
            InvalidInputError: an unknown or missing source, options that do not fit it (when the run opens).
        """
        check_timeout(timeout_s)
        if isinstance(source, (str, Path)):
            source = open_source(source, fps=fps, audio=audio, timeout_s=timeout_s, reconnect=reconnect)
        elif fps is not None or audio is not None or reconnect is not None:
            raise InvalidInputError("fps=, audio= and reconnect= apply to a source given by its path or URI")
        return PipelineRun(self, source, max_frames=max_frames, timer=timer, echo=self.on_note)

    def run_prepared(
        self, trial_dir: str | Path, *, max_frames: int | None = None, timer: StageTimer | None = None
    ) -> PipelineRun:
        """Predictions for a prepared trial (``edgeaff prepare`` output): its stored face crops and audio features,
        i.e. exactly what training and validation saw (compare the per-model values, ``per_model=True``, with the
        PyTorch models' outputs)."""
        source = PreparedTrialSource(trial_dir, spec=self.bundle.feature_spec)
        return PipelineRun(self, source, max_frames=max_frames, timer=timer, echo=self.on_note)

    def open_stream(
        self,
        *,
        fps: float | None = None,
        audio: bool = True,
        name: str = "stream",
        timer: StageTimer | None = None,
    ) -> PushStream:
        """A push interface for frames and audio the application captures itself.

        Args:
            fps: the nominal frame rate. With it, audio rows are found by frame index while frames arrive on the
                ``index / fps`` grid, exactly as for a file (pass the file's rate to reproduce :meth:`run`);
                without it, by timestamp.
            audio: audio will be pushed (``False``: the bundle's unimodal models, or zero audio).
            name: a name for the report.
            timer: record the stages into this timer.
        """
        return PushStream(self, fps=fps, audio=audio, name=name, timer=timer, echo=self.on_note)

    @property
    def model_names(self) -> tuple[str, ...]:
        """Names of the bundle's models (``fold<k>_<dimension>_<kind>``), in manifest order."""
        return tuple(m.name for m in self.bundle.models)


def pipeline_options(**settings: Any) -> PipelineOptions:
    """:class:`PipelineOptions` from flat keyword settings (backend fields and pipeline fields together).

    Raises:
        InvalidInputError: an unknown setting (the message lists the known ones) or a bad value.
    """
    unknown = sorted(set(settings) - _BACKEND_FIELDS - _PIPELINE_FIELDS)
    if unknown:
        known = ", ".join(sorted(_BACKEND_FIELDS | _PIPELINE_FIELDS))
        raise InvalidInputError(f"unknown pipeline setting(s) {unknown}; known settings: {known}")
    backend: Mapping[str, Any] = {k: v for k, v in settings.items() if k in _BACKEND_FIELDS}
    rest = {k: v for k, v in settings.items() if k in _PIPELINE_FIELDS}
    return PipelineOptions(backend=BackendOptions(**backend), **rest)
