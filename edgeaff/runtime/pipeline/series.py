"""One subject's frames through the temporal part and the fold ensembling: :class:`SubjectSeries`.

Single-subject mode has one series for the whole source; multi-face mode one per track, each with its own windows
or streaming state and its own CCC-centering (the audio features are shared: every series of a frame gets the
same VGGish and MFCC rows).

* offline: the series' frames are windowed from its own first frame (:class:`WindowedTemporal`); :meth:`close`
  runs the last window and frees the ring buffer, keeping a few numbers per frame; :meth:`predictions` merges the
  folds over the series' frames and yields its :class:`Prediction` objects;
* stream: :meth:`step` runs a block of its frames through the streaming graph with its state and merges them by
  causal CCC-centering.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import numpy as np

from edgeaff.runtime.artifacts.bundle import Bundle
from edgeaff.runtime.errors import InvalidInputError
from edgeaff.runtime.pipeline.ensemble import CausalCccCentering, ccc_centering
from edgeaff.runtime.pipeline.features import ReadyFace, ReadyFrame
from edgeaff.runtime.pipeline.graphs import GraphSet
from edgeaff.runtime.pipeline.options import Mode, PipelineOptions
from edgeaff.runtime.pipeline.plan import DimensionPlan
from edgeaff.runtime.pipeline.prediction import Prediction
from edgeaff.runtime.pipeline.temporal import GrowingArray, StreamingTemporal, WindowedTemporal
from edgeaff.runtime.pipeline.timing import StageTimer

# Columns of the offline frame log: ordinal (position in the source), index, time, face, audio, box (x0, y0, x1, y1).
_LOG_COLUMNS = 9


class SubjectSeries:
    """One subject's temporal state (see the module docstring).

    Args:
        track: the track id (``None``: the single subject).
        bundle: the loaded bundle.
        graphs: the pipeline's graph sessions.
        options: the pipeline's options.
        mode: offline or stream.
        plans: the models ensembled per dimension.
        timer: records ``temporal`` and ``ensemble``.
    """

    def __init__(
        self,
        track: int | None,
        *,
        bundle: Bundle,
        graphs: GraphSet,
        options: PipelineOptions,
        mode: Mode,
        plans: tuple[DimensionPlan, ...],
        timer: StageTimer,
    ) -> None:
        self.track = track
        self.bundle, self.options, self.plans, self.timer = bundle, options, plans, timer
        self.dimensions = tuple(plan.dimension.value for plan in plans)
        spec = bundle.feature_spec
        self.frames = self.with_face = 0
        self.first_frame: int | None = None
        self.last_frame: int | None = None
        self.first_t: float | None = None
        self.last_t: float | None = None
        self.windows: WindowedTemporal | None = None
        self.stream: StreamingTemporal | None = None
        self._log: GrowingArray | None = None
        self._raw: np.ndarray | None = None
        self._mergers: dict[str, CausalCccCentering] = {}
        if mode is Mode.OFFLINE:
            self.windows = WindowedTemporal(
                graphs.runner("temporal"), window=spec.window.length, hop=spec.window.hop,
                models=len(bundle.models), embedding_shape=(len(bundle.models), bundle.embedding_dim), timer=timer,
                spec=spec,
            )  # fmt: skip
            self._log = GrowingArray(_LOG_COLUMNS)
        else:
            self.stream = StreamingTemporal(
                graphs.runner("temporal_stream"), bundle.streaming, max_chunk=spec.window.length, timer=timer,
                spec=spec,
            )  # fmt: skip
            self._mergers = {p.dimension.value: CausalCccCentering(len(p.indices), clip=options.clip) for p in plans}

    @property
    def window_runs(self) -> list[tuple[int, int]]:
        """(start, length) of every offline window run, in the series' own frame numbers."""
        return [] if self.windows is None else self.windows.windows

    def _count(self, frame: ReadyFrame, face: ReadyFace) -> None:
        self.frames += 1
        self.with_face += int(face.found)
        if self.first_frame is None:
            self.first_frame, self.first_t = frame.index, frame.t_s
        self.last_frame, self.last_t = frame.index, frame.t_s

    # -- offline -------------------------------------------------------------------------------------------------

    def push(self, frame: ReadyFrame, face: ReadyFace, ordinal: int) -> None:
        """Offline: add the subject's next frame (``ordinal``: the frame's position in the source)."""
        assert self.windows is not None and self._log is not None, "push() is for offline series"
        self._count(frame, face)
        self.windows.push(face.embedding, frame.vggish, frame.mfcc)
        row = self._log.length
        self._log.ensure(row + 1)
        box = face.box if face.box is not None else (np.nan,) * 4
        self._log.view()[row] = (ordinal, frame.index, frame.t_s, face.found, frame.audio, *box)

    def close(self) -> None:
        """Offline: the subject has no more frames: run the last window and free the ring buffer."""
        if self.windows is not None and self._raw is None:
            if self.windows.count == 0:
                raise InvalidInputError("no frames were read; nothing to predict")
            self._raw = self.windows.finish()
            self.windows.release()

    def predictions(self) -> Iterator[tuple[int, Prediction]]:
        """Offline, after :meth:`close`: ``(ordinal, prediction)`` of every frame of the subject, in order."""
        assert self._log is not None
        self.close()
        raw = self._raw
        assert raw is not None
        with self.timer.measure("ensemble", frames=len(raw)):
            merged = np.stack(
                [ccc_centering(raw[:, list(p.indices)].T, clip=self.options.clip) for p in self.plans], axis=1
            )
        log = self._log.view()
        per_model = self.options.per_model
        for row in range(len(raw)):
            ordinal, index, t_s, face, audio, *box = log[row]
            values = dict(zip(self.dimensions, merged[row].tolist(), strict=True))
            yield (
                int(ordinal),
                Prediction(
                    frame=int(index),
                    time_s=float(t_s),
                    valence=values.get("valence"),
                    arousal=values.get("arousal"),
                    face=bool(face),
                    box=None if np.isnan(box[0]) else (float(box[0]), float(box[1]), float(box[2]), float(box[3])),
                    audio=bool(audio),
                    models=raw[row].copy() if per_model else None,
                    track=self.track,
                ),
            )

    # -- stream --------------------------------------------------------------------------------------------------

    def step(self, block: list[tuple[ReadyFrame, ReadyFace]]) -> list[Prediction]:
        """Stream: the subject's next frames (consecutive) through the streaming graph; their predictions."""
        assert self.stream is not None, "step() is for stream series"
        if block[0][0].gap:
            self.stream.reset()
        embeddings = np.stack([face.embedding for _, face in block])
        vggish = mfcc = None
        if any(frame.audio for frame, _ in block):
            spec = self.bundle.feature_spec
            vggish = np.stack([f.vggish if f.vggish is not None else np.zeros(spec.vggish.embedding_dim, np.float32)
                               for f, _ in block])  # fmt: skip
            mfcc = np.stack([f.mfcc if f.mfcc is not None else np.zeros(spec.mfcc.dim, np.float32) for f, _ in block])
        raw = self.stream.step(embeddings, vggish, mfcc)
        per_model = self.options.per_model
        out = []
        for (frame, face), row in zip(block, raw, strict=True):
            self._count(frame, face)
            with self.timer.measure("ensemble"):
                merged = [self._mergers[p.dimension.value].update(row[list(p.indices)]) for p in self.plans]
            values = dict(zip(self.dimensions, merged, strict=True))
            latency = (time.perf_counter() - frame.arrival) * 1000.0
            self.timer.add("latency", latency)
            out.append(
                Prediction(
                    frame=frame.index,
                    time_s=frame.t_s,
                    valence=values.get("valence"),
                    arousal=values.get("arousal"),
                    face=face.found,
                    box=face.box,
                    audio=frame.audio,
                    latency_ms=latency,
                    models=row.copy() if per_model else None,
                    image=frame.image,
                    gap=frame.gap,
                    track=self.track,
                )
            )
        return out

    def summary(self) -> dict[str, object]:
        """The series' entry in the run summary's track list."""
        return {
            "track": self.track,
            "first_frame": self.first_frame,
            "last_frame": self.last_frame,
            "first_time_s": self.first_t,
            "last_time_s": self.last_t,
            "frames": self.frames,
            "frames_with_face": self.with_face,
        }
