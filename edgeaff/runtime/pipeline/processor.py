"""One source's way through the pipeline: frames and audio in, :class:`Prediction` objects out.

Per frame: the face stage (or the source's own aligned face), the visual graph in batches, the frame's audio rows
and VGGish example (:class:`FeatureStage`), then the temporal part and fold ensembling:

* offline: windows of W frames (hop H) run as they complete and per-frame sums are kept; fold ensembling by
  CCC-centering needs the whole video, so every prediction is made when the source ends (:meth:`finish`);
* stream: each frame goes through the streaming graph as soon as its features are ready, is merged by causal
  CCC-centering and leaves at once, with its latency.

:class:`FrameProcessor` knows nothing about where frames come from: a source iterated by
:class:`~edgeaff.runtime.pipeline.run.PipelineRun` and frames an application pushes
(:class:`~edgeaff.runtime.pipeline.stream.PushStream`) go through the same object, hence the same numbers.
"""

from __future__ import annotations

import collections
import time
from collections.abc import Callable, Iterator

import numpy as np

from edgeaff.runtime.artifacts.bundle import Bundle
from edgeaff.runtime.artifacts.manifest import ModelKind
from edgeaff.runtime.audio.frame_audio import FrameAudio
from edgeaff.runtime.errors import InvalidInputError
from edgeaff.runtime.faces import FaceResult, FaceStage
from edgeaff.runtime.faces.image import black_face, resize_face
from edgeaff.runtime.io.sources import SourceGap, SourceInfo, VideoFrame
from edgeaff.runtime.pipeline.ensemble import CausalCccCentering, ccc_centering
from edgeaff.runtime.pipeline.features import AlignmentClock, FeatureStage, FrameState, ReadyFrame
from edgeaff.runtime.pipeline.graphs import GraphSet
from edgeaff.runtime.pipeline.options import Mode, PipelineOptions
from edgeaff.runtime.pipeline.plan import DimensionPlan, plan_models
from edgeaff.runtime.pipeline.prediction import Box, Prediction
from edgeaff.runtime.pipeline.spool import ImageSpool
from edgeaff.runtime.pipeline.temporal import GrowingArray, StreamingTemporal, WindowedTemporal
from edgeaff.runtime.pipeline.timing import StageTimer
from edgeaff.runtime.pipeline.tuning import DEFAULTS

# Columns of the offline frame log: index, time, face, audio, box (x0, y0, x1, y1).
_LOG_COLUMNS = 8


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
        self.timer, self.notes = timer, notes
        spec = bundle.feature_spec
        self.plans: tuple[DimensionPlan, ...] = plan_models(bundle.models, audio=info.has_audio)
        self.dimensions = tuple(plan.dimension.value for plan in self.plans)
        self.model_names = tuple(m.name for m in bundle.models)
        self.aligned_faces = info.aligned_faces
        needs_audio = info.has_audio and bundle.multimodal and not info.precomputed_audio
        self.faces: FaceStage | None = None if self.aligned_faces else graphs.faces()
        temporal_role = "temporal" if mode is Mode.OFFLINE else "temporal_stream"
        self.roles = ("visual", *(("vggish",) if needs_audio else ()), temporal_role,
                      *(() if self.aligned_faces else ("face_detector",)))  # fmt: skip
        self.crop_size = spec.face.image_size
        self.audio = FrameAudio(spec) if needs_audio else None
        self.clock = AlignmentClock(info.fps, by_index=by_index)
        self.frames = self.with_face = self.with_audio = 0
        self.first_t: float | None = None
        self.last_t: float | None = None
        self.max_audio_rows = 0
        self.gaps: list[SourceGap] = []
        self._gap_pending = False
        self._ready: collections.deque[Prediction] = collections.deque()
        self.windows: WindowedTemporal | None = None
        self.stream: StreamingTemporal | None = None
        self._mergers: dict[str, CausalCccCentering] = {}
        self._log: GrowingArray | None = None
        self.spool: ImageSpool | None = None
        self._temporal(graphs)
        visual_batch, vggish_batch = options.visual_batch(mode), DEFAULTS["vggish"]
        if mode is Mode.OFFLINE and options.batch is None:
            visual_batch = graphs.batch("visual").batch
            vggish_batch = graphs.batch("vggish").batch if needs_audio else vggish_batch
        self.features = FeatureStage(
            visual=graphs.runner("visual"),
            vggish=graphs.runner("vggish") if needs_audio else None,
            audio=self.audio,
            emit=self._emit_offline if mode is Mode.OFFLINE else self._emit_stream,
            timer=timer,
            visual_batch=visual_batch,
            vggish_batch=vggish_batch,
            on_stall=self._audio_stalled,
        )
        self.adaptive_batch = options.adaptive_batch(mode)

    def _temporal(self, graphs: GraphSet) -> None:
        """The windows and frame log (offline), or the streaming graph's state and the causal mergers (stream)."""
        spec, bundle = self.bundle.feature_spec, self.bundle
        if self.mode is Mode.OFFLINE:
            self.windows = WindowedTemporal(
                graphs.runner("temporal"), window=spec.window.length, hop=spec.window.hop, models=len(bundle.models),
                embedding_shape=(len(bundle.models), bundle.embedding_dim), timer=self.timer, spec=spec,
            )  # fmt: skip
            self._log = GrowingArray(_LOG_COLUMNS)
            return
        self.stream = StreamingTemporal(
            graphs.runner("temporal_stream"), bundle.streaming, max_chunk=spec.window.length, timer=self.timer,
            spec=spec,
        )  # fmt: skip
        clip = self.options.clip
        self._mergers = {p.dimension.value: CausalCccCentering(len(p.indices), clip=clip) for p in self.plans}

    # -- input ---------------------------------------------------------------------------------------------------

    def add_audio(self, samples: np.ndarray) -> None:
        """Mono float32 samples at the feature rate (16 kHz), in order."""
        self.features.add_audio(samples)

    def end_audio(self) -> None:
        """The audio ended (frames after it take the clamped last rows)."""
        self.features.end_audio()

    def prepare(self, item: object) -> FaceResult | None:
        """The work on a source item that depends only on the items before it, done ahead (possibly in a prefetch
        thread, in order): a frame's face stage; a gap forgets the followed subject. Pass the result on to
        :meth:`add_frame` / :meth:`add_gap` with ``prepared=True``."""
        if isinstance(item, SourceGap):
            if self.faces is not None:
                self.faces.reset()
            return None
        if isinstance(item, VideoFrame) and not self.aligned_faces:
            assert self.faces is not None
            with self.timer.measure("face"):
                return self.faces.process(item.image, item.t_s)
        return None

    def add_gap(self, gap: SourceGap, *, prepared: bool = False) -> None:
        """A live source dropped and reconnected: the next frame starts afresh (temporal state zero, subject
        searched anew); the fold ensembling keeps its statistics. ``prepared``: :meth:`prepare` saw the gap."""
        self.gaps.append(gap)
        self._gap_pending = True
        if self.faces is not None and not prepared:
            self.faces.reset()
        self.notes.note(
            f"{self.info.uri}: the stream was lost for {gap.duration_s:.1f} s ({gap.reason.value}; "
            f"{gap.attempts} reconnect attempt(s)); the frame after the gap is flagged gap=1"
        )

    def add_frame(self, frame: VideoFrame, face: FaceResult | None = None, *, more: bool = False) -> None:
        """One decoded frame (BGR), in order.

        Args:
            frame: the frame.
            face: its face stage result from :meth:`prepare`, when that ran ahead.
            more: further frames are already waiting to be added. In stream mode without a fixed ``batch`` the
                visual graph runs on the frames gathered so far as soon as none is waiting (one frame per call while
                the pipeline keeps up, larger batches while it catches up).
        """
        box: Box | None = None
        if self.aligned_faces:
            found = frame.face_found and frame.face is not None
            crop = resize_face(frame.face, self.crop_size) if found and frame.face is not None else None
            crop = crop if crop is not None else black_face(self.crop_size)
        else:
            result = face if face is not None else self.prepare(frame)
            assert result is not None
            crop, found = result.crop, result.found
            if result.box is not None:
                box = (float(result.box[0]), float(result.box[1]), float(result.box[2]), float(result.box[3]))
        key = self.clock.key(frame.index, frame.t_s) if self.audio is not None else None
        keep_image = self.options.images and self.mode is Mode.STREAM
        state = FrameState(frame.index, frame.t_s, frame.arrival, found, box, crop, key, frame.audio_features,
                           frame.image if keep_image else None, gap=self._gap_pending)  # fmt: skip
        self._gap_pending = False
        if self.options.images and self.mode is Mode.OFFLINE:
            with self.timer.measure("spool"):
                self.spool = self.spool or ImageSpool(self.options.spool_dir)
                self.spool.put(frame.image)
        self.frames += 1
        self.with_face += int(found)
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
        if self.windows is not None:
            yield from self._offline_predictions()
        self._warn_without_faces()

    def close(self) -> None:
        """Free what the source held (the image spool)."""
        if self.spool is not None:
            self.spool.close()

    # -- internals -----------------------------------------------------------------------------------------------

    def _track_audio(self) -> None:
        if self.audio is not None:
            self.max_audio_rows = max(self.max_audio_rows, *self.audio.buffered_rows)

    def _emit_offline(self, block: list[ReadyFrame]) -> None:
        assert self.windows is not None and self._log is not None
        self._track_audio()
        for frame in block:
            self.windows.push(frame.embedding, frame.vggish, frame.mfcc)
            self.with_audio += int(frame.audio)
            row = self._log.length
            self._log.ensure(row + 1)
            box = frame.box if frame.box is not None else (np.nan,) * 4
            self._log.view()[row] = (frame.index, frame.t_s, frame.face, frame.audio, *box)

    def _offline_predictions(self) -> Iterator[Prediction]:
        assert self.windows is not None and self._log is not None
        if self.windows.count == 0:
            raise InvalidInputError(f"{self.info.uri}: no frames were read; nothing to predict")
        raw = self.windows.finish()
        with self.timer.measure("ensemble", frames=len(raw)):
            merged = np.stack(
                [ccc_centering(raw[:, list(p.indices)].T, clip=self.options.clip) for p in self.plans], axis=1
            )
        log = self._log.view()
        images = iter(self.spool) if self.spool is not None else None
        per_model = self.options.per_model
        for row in range(len(raw)):
            index, t_s, face, audio, *box = log[row]
            values = dict(zip(self.dimensions, merged[row].tolist(), strict=True))
            yield Prediction(
                frame=int(index),
                time_s=float(t_s),
                valence=values.get("valence"),
                arousal=values.get("arousal"),
                face=bool(face),
                box=None if np.isnan(box[0]) else (float(box[0]), float(box[1]), float(box[2]), float(box[3])),
                audio=bool(audio),
                models=raw[row].copy() if per_model else None,
                image=next(images) if images is not None else None,
            )

    def _emit_stream(self, block: list[ReadyFrame]) -> None:
        # A frame after a gap starts the temporal state afresh: step the frames before it, reset, go on.
        cuts = [i for i, frame in enumerate(block) if frame.gap and i > 0]
        for begin, end in zip([0, *cuts], [*cuts, len(block)], strict=True):
            self._step_stream(block[begin:end])

    def _step_stream(self, block: list[ReadyFrame]) -> None:
        assert self.stream is not None
        self._track_audio()
        if block[0].gap:
            self.stream.reset()
        embeddings = np.stack([f.embedding for f in block])
        vggish = mfcc = None
        if any(f.audio for f in block):
            spec = self.bundle.feature_spec
            vggish = np.stack([f.vggish if f.vggish is not None else np.zeros(spec.vggish.embedding_dim, np.float32)
                               for f in block])  # fmt: skip
            mfcc = np.stack([f.mfcc if f.mfcc is not None else np.zeros(spec.mfcc.dim, np.float32) for f in block])
        raw = self.stream.step(embeddings, vggish, mfcc)
        per_model = self.options.per_model
        for frame, row in zip(block, raw, strict=True):
            with self.timer.measure("ensemble"):
                merged = [self._mergers[p.dimension.value].update(row[list(p.indices)]) for p in self.plans]
            values = dict(zip(self.dimensions, merged, strict=True))
            latency = (time.perf_counter() - frame.arrival) * 1000.0
            self.timer.add("latency", latency)
            self.with_audio += int(frame.audio)
            self._ready.append(
                Prediction(
                    frame=frame.index,
                    time_s=frame.t_s,
                    valence=values.get("valence"),
                    arousal=values.get("arousal"),
                    face=frame.face,
                    box=frame.box,
                    audio=frame.audio,
                    latency_ms=latency,
                    models=row.copy() if per_model else None,
                    image=frame.image,
                    gap=frame.gap,
                )
            )

    def _audio_stalled(self, waiting: int) -> None:
        self.notes.warn(
            f"the audio of {self.info.uri} stopped arriving ({waiting} frames waited for it); the following frames "
            "run without audio (zero audio, flagged audio=0)"
        )

    def _warn_without_faces(self) -> None:
        if self.frames and self.faces is not None and self.with_face == 0:
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
