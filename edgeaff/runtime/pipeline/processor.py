"""One source's way through the pipeline: frames and audio in, :class:`Prediction` objects out.

Per frame: the face stage (or the source's own aligned face), the visual graph in batches, the frame's audio rows
and VGGish example (:class:`FeatureStage`), then the temporal part and fold ensembling per subject
(:class:`~edgeaff.runtime.pipeline.series.SubjectSeries`):

* offline: windows of W frames (hop H) run as they complete and per-frame sums are kept; fold ensembling by
  CCC-centering needs the whole video, so every prediction is made when the source ends (:meth:`finish`);
* stream: each frame goes through the streaming graph as soon as its features are ready, is merged by causal
  CCC-centering and leaves at once, with its latency.

Single-subject mode (``faces="one"``) has one subject for the whole source. Multi-face mode (``faces="all"``)
follows every face with :class:`~edgeaff.runtime.faces.FaceTracks`; each track is a subject with its own series,
the crops of all tracks of a frame go through the visual graph together, the audio features are computed once per
frame for all of them, and a track that ends gives its state back (offline it keeps a few numbers per frame until
the end of the source). A frame in which nobody is followed gives one prediction without values (``track`` and
``valence``/``arousal`` ``None``), so that consumers still see every frame.

:class:`FrameProcessor` knows nothing about where frames come from: a source iterated by
:class:`~edgeaff.runtime.pipeline.run.PipelineRun` and frames an application pushes
(:class:`~edgeaff.runtime.pipeline.stream.PushStream`) go through the same object, hence the same numbers.
"""

from __future__ import annotations

import collections
import dataclasses
import heapq
import time
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from edgeaff.runtime.artifacts.bundle import Bundle
from edgeaff.runtime.artifacts.manifest import ModelKind
from edgeaff.runtime.audio.frame_audio import FrameAudio
from edgeaff.runtime.errors import InvalidInputError
from edgeaff.runtime.faces import FaceResult, FaceStage, FaceTracks, TracksResult
from edgeaff.runtime.faces.image import black_face, resize_face
from edgeaff.runtime.io.sources import SourceGap, SourceInfo, VideoFrame
from edgeaff.runtime.pipeline.features import AlignmentClock, FaceEntry, FeatureStage, FrameState, ReadyFrame
from edgeaff.runtime.pipeline.graphs import GraphSet
from edgeaff.runtime.pipeline.options import Mode, PipelineOptions
from edgeaff.runtime.pipeline.plan import DimensionPlan, plan_models
from edgeaff.runtime.pipeline.prediction import Box, Prediction
from edgeaff.runtime.pipeline.series import SubjectSeries
from edgeaff.runtime.pipeline.spool import ImageSpool
from edgeaff.runtime.pipeline.temporal import GrowingArray, WindowedTemporal
from edgeaff.runtime.pipeline.timing import StageTimer
from edgeaff.runtime.pipeline.tuning import DEFAULTS

MAX_LISTED_TRACKS = 1000  # tracks the summary lists (the most recent); an endless stream keeps bounded memory
# Columns of the offline log of frames without anybody (multi-face mode): ordinal, index, time, audio.
_NOBODY_COLUMNS = 4


class Notes:
    """Notes and warnings of a run, kept for the summary and passed on to a callback as they happen."""

    def __init__(self, echo: Callable[[str], None] | None) -> None:
        self.echo = echo
        self.notes: list[str] = []
        self.warnings: list[str] = []

    def note(self, text: str) -> None:
        """Something the user should know (no audio, a precision fallback)."""
        self.notes.append(text)
        if self.echo is not None:
            self.echo(f"note: {text}")

    def warn(self, text: str) -> None:
        """Something that may make the predictions less useful."""
        self.warnings.append(text)
        if self.echo is not None:
            self.echo(f"warning: {text}")


class FrameProcessor:
    """Per-source state of a pipeline (see the module docstring).

    Args:
        bundle: the loaded bundle.
        graphs: the pipeline's graph sessions.
        options: the pipeline's options.
        mode: offline or stream.
        info: what is known about the source.
        by_index: align audio rows by frame index while frames sit on the constant-rate grid (files: exactly the
            rows ``edgeaff prepare`` used), else by timestamp.
        timer: records every stage.
        notes: collects notes and warnings.

    Raises:
        InvalidInputError: multi-face mode on a source of aligned faces (one face per image).
    """

    def __init__(
        self,
        bundle: Bundle,
        graphs: GraphSet,
        options: PipelineOptions,
        *,
        mode: Mode,
        info: SourceInfo,
        by_index: bool,
        timer: StageTimer,
        notes: Notes,
    ) -> None:
        self.bundle, self.options, self.mode, self.info = bundle, options, mode, info
        self.timer, self.notes, self.graphs = timer, notes, graphs
        spec = bundle.feature_spec
        self.plans: tuple[DimensionPlan, ...] = plan_models(bundle.models, audio=info.has_audio)
        self.dimensions = tuple(plan.dimension.value for plan in self.plans)
        self.model_names = tuple(m.name for m in bundle.models)
        self.aligned_faces = info.aligned_faces
        self.multi = options.multi_face
        if self.multi and self.aligned_faces:
            raise InvalidInputError(
                f"{info.uri} holds aligned faces, one per frame: --faces all / --max-faces need video frames "
                "(run it without them)"
            )
        needs_audio = info.has_audio and bundle.multimodal and not info.precomputed_audio
        self.faces: FaceStage | None = None if self.aligned_faces else graphs.faces()
        self.tracks: FaceTracks | None = None
        if self.multi and self.faces is not None:
            self.tracks = FaceTracks(self.faces, options.track_options())
        self.roles = self._roles(needs_audio)
        self.crop_size = spec.face.image_size
        self.audio = FrameAudio(spec) if needs_audio else None
        self.clock = AlignmentClock(info.fps, by_index=by_index)
        self.frames = self.with_face = self.with_audio = self.with_tracks = 0
        self.first_t: float | None = None
        self.last_t: float | None = None
        self.max_audio_rows = 0
        self.gaps: list[SourceGap] = []
        self._gap_pending = False
        self._ready: collections.deque[Prediction] = collections.deque()
        self.series: dict[int | None, SubjectSeries] = {}
        self._closed: list[SubjectSeries] = []  # offline: ended series waiting for the end of the source
        self.track_list: collections.deque[dict[str, Any]] = collections.deque(maxlen=MAX_LISTED_TRACKS)
        self.tracks_ended = 0
        self.max_window_buffer = 0
        self._emitted = 0
        self._overflow_noted = False
        self._nobody: GrowingArray | None = GrowingArray(_NOBODY_COLUMNS) if mode is Mode.OFFLINE else None
        self.spool: ImageSpool | None = None
        if not self.multi:
            self.series[None] = self._new_series(None)
        self.features = self._feature_stage(needs_audio)
        self.adaptive_batch = options.adaptive_batch(mode)

    def _feature_stage(self, needs_audio: bool) -> FeatureStage:
        """The visual and VGGish graphs' stage, at the batch sizes of the options, or measured for this machine
        and bundle when an offline run leaves them to the runtime."""
        options, graphs, mode = self.options, self.graphs, self.mode
        visual_batch, vggish_batch = options.visual_batch(mode), DEFAULTS["vggish"]
        if mode is Mode.OFFLINE and options.batch is None:
            visual_batch = graphs.batch("visual").batch
            vggish_batch = graphs.batch("vggish").batch if needs_audio else vggish_batch
        return FeatureStage(
            visual=graphs.runner("visual"),
            vggish=graphs.runner("vggish") if needs_audio else None,
            audio=self.audio,
            emit=self._emit_offline if mode is Mode.OFFLINE else self._emit_stream,
            timer=self.timer,
            visual_batch=visual_batch,
            vggish_batch=vggish_batch,
            max_crops=options.max_crops(),
            on_stall=self._audio_stalled,
        )

    def _roles(self, needs_audio: bool) -> tuple[str, ...]:
        """The bundle's graphs this source runs, in pipeline order."""
        temporal = "temporal" if self.mode is Mode.OFFLINE else "temporal_stream"
        audio = ("vggish",) if needs_audio else ()
        detector = () if self.aligned_faces else ("face_detector",)
        return ("visual", *audio, temporal, *detector)

    @property
    def windows(self) -> WindowedTemporal | None:
        """Single-subject offline mode: the subject's windows (``None`` otherwise)."""
        single = self.series.get(None)
        return single.windows if single is not None else None

    def _new_series(self, track: int | None) -> SubjectSeries:
        return SubjectSeries(
            track, bundle=self.bundle, graphs=self.graphs, options=self.options, mode=self.mode, plans=self.plans,
            timer=self.timer,
        )  # fmt: skip

    # -- input ---------------------------------------------------------------------------------------------------

    def add_audio(self, samples: np.ndarray) -> None:
        """Mono float32 samples at the feature rate (16 kHz), in order."""
        self.features.add_audio(samples)

    def end_audio(self) -> None:
        """The audio ended (frames after it take the clamped last rows)."""
        self.features.end_audio()

    def prepare(self, item: object) -> FaceResult | TracksResult | None:
        """The work on a source item that depends only on the items before it, done ahead (possibly in a prefetch
        thread, in order): a frame's face stage (every track's in multi-face mode); a gap forgets the followed
        subject (ends every track). Pass the result on to :meth:`add_frame` / :meth:`add_gap` with
        ``prepared=True``."""
        if isinstance(item, SourceGap):
            if self.tracks is not None:
                self.tracks.reset()
            elif self.faces is not None:
                self.faces.reset()
            return None
        if isinstance(item, VideoFrame) and not self.aligned_faces:
            assert self.faces is not None
            with self.timer.measure("face"):
                if self.tracks is not None:
                    return self.tracks.process(item.image, item.t_s)
                return self.faces.process(item.image, item.t_s)
        return None

    def add_gap(self, gap: SourceGap, *, prepared: bool = False) -> None:
        """A live source dropped and reconnected: the next frame starts afresh (temporal state zero, subject
        searched anew; multi-face mode: every track ends and faces get new tracks); the fold ensembling keeps its
        statistics. ``prepared``: :meth:`prepare` saw the gap."""
        self.gaps.append(gap)
        self._gap_pending = True
        if not prepared:
            self.prepare(gap)
        self.notes.note(
            f"{self.info.uri}: the stream was lost for {gap.duration_s:.1f} s ({gap.reason.value}; "
            f"{gap.attempts} reconnect attempt(s)); the frame after the gap is flagged gap=1"
        )

    def add_frame(
        self, frame: VideoFrame, face: FaceResult | TracksResult | None = None, *, more: bool = False
    ) -> None:
        """One decoded frame (BGR), in order.

        Args:
            frame: the frame.
            face: its face stage result (one face, or every track in multi-face mode) from :meth:`prepare`, when
                that ran ahead.
            more: further frames are already waiting to be added. In stream mode without a fixed ``batch`` the
                visual graph runs on the frames gathered so far as soon as none is waiting (one frame per call while
                the pipeline keeps up, larger batches while it catches up).
        """
        ended: tuple[int, ...] = ()
        if self.aligned_faces:
            found = frame.face_found and frame.face is not None
            crop = resize_face(frame.face, self.crop_size) if found and frame.face is not None else None
            entries = [FaceEntry(None, found, None, crop if crop is not None else black_face(self.crop_size))]
        else:
            result = face if face is not None else self.prepare(frame)
            if isinstance(result, TracksResult):
                entries = [FaceEntry(t.track, t.face.found, _box(t.face.box), t.face.crop) for t in result.faces]
                ended = result.ended
                self._note_overflow()
            else:
                assert result is not None
                entries = [FaceEntry(None, result.found, _box(result.box), result.crop)]
        key = self.clock.key(frame.index, frame.t_s) if self.audio is not None else None
        keep_image = self.options.images and self.mode is Mode.STREAM
        state = FrameState(frame.index, frame.t_s, frame.arrival, entries, key, frame.audio_features,
                           frame.image if keep_image else None, gap=self._gap_pending, ended=ended)  # fmt: skip
        self._gap_pending = False
        if self.options.images and self.mode is Mode.OFFLINE:
            with self.timer.measure("spool"):
                self.spool = self.spool or ImageSpool(self.options.spool_dir)
                self.spool.put(frame.image)
        self.frames += 1
        self.with_face += int(any(entry.found for entry in entries))
        self.with_tracks += int(bool(entries))
        self.first_t = frame.t_s if self.first_t is None else self.first_t
        self.last_t = frame.t_s
        self.features.add_frame(state)
        if self.adaptive_batch and not more:
            self.features.flush()

    def flush(self) -> None:
        """Embed the frames waiting for a visual batch now (stream mode: nothing more is waiting to be read)."""
        self.features.flush()

    # -- output --------------------------------------------------------------------------------------------------

    def take(self) -> list[Prediction]:
        """The predictions that became final since the last call (stream mode; always empty offline)."""
        ready = list(self._ready)
        self._ready.clear()
        return ready

    def take_one(self) -> Prediction | None:
        """The oldest prediction not yet handed out, or ``None``."""
        return self._ready.popleft() if self._ready else None

    def finish(self) -> Iterator[Prediction]:
        """End of the source: let every waiting frame through; yields the remaining predictions in frame order.

        Raises:
            InvalidInputError: offline, no frame was read.
        """
        self.features.finish()
        yield from self.take()
        if self.mode is Mode.OFFLINE:
            yield from self._offline_predictions()
        else:
            for track in [t for t in self.series if t is not None]:
                self._end(track)
        self._warn_without_faces()

    def close(self) -> None:
        """Free what the source held (the image spool)."""
        if self.spool is not None:
            self.spool.close()

    def track_summaries(self) -> list[dict[str, Any]]:
        """Multi-face mode: the summary entries of the tracks (the most recent :data:`MAX_LISTED_TRACKS`), live ones
        included, by id."""
        live = [series.summary() for track, series in self.series.items() if track is not None]
        return sorted([*self.track_list, *live], key=lambda entry: entry["track"])[-MAX_LISTED_TRACKS:]

    # -- internals -----------------------------------------------------------------------------------------------

    def _track_audio(self) -> None:
        if self.audio is not None:
            self.max_audio_rows = max(self.max_audio_rows, *self.audio.buffered_rows)

    def _series_of(self, track: int | None) -> SubjectSeries:
        series = self.series.get(track)
        if series is None:
            series = self.series[track] = self._new_series(track)
        return series

    def _end(self, track: int) -> None:
        """A track ended: offline its series runs its last window and waits for the end of the source with a few
        numbers per frame; in stream mode its state is dropped."""
        series = self.series.pop(track, None)
        if series is None:
            return
        if series.windows is not None:
            self.max_window_buffer = max(self.max_window_buffer, series.windows.buffered_frames)
            series.close()
            self._closed.append(series)
        self.track_list.append(series.summary())
        self.tracks_ended += 1

    def _emit_offline(self, block: list[ReadyFrame]) -> None:
        self._track_audio()
        for frame in block:
            for track in frame.ended:
                self._end(track)
            self.with_audio += int(frame.audio)
            for face in frame.faces:
                self._series_of(face.track).push(frame, face, self._emitted)
            if self.multi and not frame.faces:
                assert self._nobody is not None
                row = self._nobody.length
                self._nobody.ensure(row + 1)
                self._nobody.view()[row] = (self._emitted, frame.index, frame.t_s, frame.audio)
            self._emitted += 1

    def _offline_predictions(self) -> Iterator[Prediction]:
        if self.frames == 0:
            raise InvalidInputError(f"{self.info.uri}: no frames were read; nothing to predict")
        for series in self.series.values():
            self.max_window_buffer = max(
                self.max_window_buffer, series.windows.buffered_frames if series.windows is not None else 0
            )
        subjects = [*self._closed, *self.series.values()]
        streams = [series.predictions() for series in subjects]
        if self._nobody is not None and self._nobody.length:
            streams.append(self._nobody_predictions())
        images = iter(self.spool) if self.spool is not None else None
        image: np.ndarray | None = None
        at = -1
        for ordinal, made in heapq.merge(*streams, key=_order):
            if images is None:
                yield made
                continue
            while at < ordinal:
                image, at = next(images), at + 1
            yield dataclasses.replace(made, image=image)
        for track in [t for t in self.series if t is not None]:
            self._end(track)

    def _nobody_predictions(self) -> Iterator[tuple[int, Prediction]]:
        assert self._nobody is not None
        for ordinal, index, t_s, audio in self._nobody.view():
            yield int(ordinal), _nobody(int(index), float(t_s), bool(audio), None)

    def _emit_stream(self, block: list[ReadyFrame]) -> None:
        self._track_audio()
        runs: dict[int | None, list[tuple[ReadyFrame, Any]]] = {}
        for frame in block:
            self.with_audio += int(frame.audio)
            for face in frame.faces:
                runs.setdefault(face.track, []).append((frame, face))
        position = {id(frame): i for i, frame in enumerate(block)}
        made: list[tuple[int, int, Prediction]] = []
        for track, pairs in runs.items():
            series = self._series_of(track)
            # A frame after a gap starts the temporal state afresh: step the frames before it, reset, go on.
            cuts = [i for i, (frame, _) in enumerate(pairs) if frame.gap and i > 0]
            for begin, end in zip([0, *cuts], [*cuts, len(pairs)], strict=True):
                part = pairs[begin:end]
                for (frame, _), prediction in zip(part, series.step(part), strict=True):
                    made.append((position[id(frame)], -1 if track is None else track, prediction))
        if self.multi:
            for i, frame in enumerate(block):
                if not frame.faces:
                    latency = (time.perf_counter() - frame.arrival) * 1000.0
                    nobody = _nobody(frame.index, frame.t_s, frame.audio, latency, image=frame.image, gap=frame.gap)
                    made.append((i, -1, nobody))
        made.sort(key=lambda item: (item[0], item[1]))
        self._ready.extend(prediction for _, _, prediction in made)
        for frame in block:
            for track in frame.ended:
                self._end(track)

    def _note_overflow(self) -> None:
        tracks = self.tracks
        if tracks is None or self._overflow_noted or not tracks.overflow:
            return
        self._overflow_noted = True
        self.notes.note(
            f"more faces than --max-faces {tracks.options.max_faces} were visible (from frame "
            f"{tracks.overflow_frame} on); the first {tracks.options.max_faces} by --face-select "
            f"{self.options.face_select.value} are followed, the others are not (said once)"
        )

    def _audio_stalled(self, waiting: int) -> None:
        self.notes.warn(
            f"the audio of {self.info.uri} stopped arriving ({waiting} frames waited for it); the following frames "
            "run without audio (zero audio, flagged audio=0)"
        )

    def _warn_without_faces(self) -> None:
        if self.frames and self.faces is not None and self.with_face == 0:
            if self.multi:
                self.notes.warn(
                    f"no face was found in any of the {self.frames} frames; with --faces all nobody is followed, so "
                    "there are no per-person predictions (run without --faces all / --max-faces for the predictions "
                    "of the black crop training used for missing faces); check the video, or try --face-detector "
                    "haar or --detect-every 1"
                )
                return
            self.notes.warn(
                f"no face was found in any of the {self.frames} frames; every prediction comes from the black crop "
                "training used for missing faces (flagged face=0); check the video, or try --face-detector haar "
                "or --detect-every 1"
            )

    def fallback_text(self) -> str:
        """What runs instead when the source has no audio."""
        parts = []
        for plan in self.plans:
            if plan.kind is ModelKind.UNIMODAL:
                parts.append(f"{plan.dimension}: unimodal models")
            else:
                parts.append(f"{plan.dimension}: multimodal models with zero audio (flagged audio=0)")
        return "; ".join(parts)


def _box(box: np.ndarray | None) -> Box | None:
    return None if box is None else (float(box[0]), float(box[1]), float(box[2]), float(box[3]))


def _order(item: tuple[int, Prediction]) -> tuple[int, int]:
    ordinal, prediction = item
    return ordinal, -1 if prediction.track is None else prediction.track


def _nobody(
    index: int, t_s: float, audio: bool, latency_ms: float | None, *, image: np.ndarray | None = None, gap: bool = False
) -> Prediction:
    """The prediction of a frame in which nobody is followed (multi-face mode): no values, no track."""
    return Prediction(index, t_s, None, None, False, None, audio, latency_ms, image=image, gap=gap)
