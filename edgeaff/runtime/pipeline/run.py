"""One ``edgeaff infer`` run, frame by frame: source → faces → features → temporal graph → ensemble → files.

Offline (files): windows of W frames (hop H) run as they complete, per-frame sums and counts are kept, and fold
ensembling by CCC-centering happens at the end, when every frame's prediction is known. Stream: each frame leaves
as soon as its features are ready (at once without audio; about 1 s later with VGGish's look-ahead), goes through
the streaming graph, is merged by causal CCC-centering and written with its latency.
"""

from __future__ import annotations

import contextlib
import platform
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

import edgeaff
from edgeaff.runtime.artifacts.bundle import Bundle
from edgeaff.runtime.audio.frame_audio import FrameAudio
from edgeaff.runtime.errors import InvalidInputError
from edgeaff.runtime.io.sources import AudioChunk, Source, SourceTimeoutError, VideoFrame
from edgeaff.runtime.pipeline.ensemble import CausalCccCentering, ccc_centering
from edgeaff.runtime.pipeline.features import AlignmentClock, FeatureStage, FrameState, ReadyFrame
from edgeaff.runtime.pipeline.infer import Graphs, InferenceResult, InferOptions
from edgeaff.runtime.pipeline.plan import model_name, plan_models
from edgeaff.runtime.pipeline.temporal import GrowingArray, StreamingTemporal, WindowedTemporal
from edgeaff.runtime.pipeline.timing import StageTimer
from edgeaff.runtime.sinks.files import ResultFiles

OFFLINE_BATCH = 16  # face crops per visual graph call when processing a file


class FrameLog:
    """Counts of the frames seen and, when ``keep_rows``, small per-frame records (index, time, face, audio, face
    box, merged values: 80 bytes a frame with two dimensions) for the offline outputs, the overlay and the plot.
    Streaming runs without ``--plot`` keep only the counts, so a stream can run indefinitely."""

    def __init__(self, dimensions: int, *, keep_rows: bool) -> None:
        self._numbers = GrowingArray(4 + 4 + dimensions) if keep_rows else None  # index, t, face, audio, box, values
        self.dimensions = dimensions
        self.count = self.faces = self.with_audio = 0
        self.first_t: float | None = None
        self.last_t: float | None = None

    def add(self, frame: ReadyFrame, values: np.ndarray | None = None) -> None:
        """Count one frame and, when rows are kept, append it (values may be set later with :meth:`set_values`)."""
        self.count += 1
        self.faces += int(frame.face)
        self.with_audio += int(frame.audio)
        self.first_t = frame.t_s if self.first_t is None else self.first_t
        self.last_t = frame.t_s
        if self._numbers is None:
            return
        row = self._numbers.length
        self._numbers.ensure(row + 1)
        box = frame.box if frame.box is not None else np.full(4, np.nan)
        self._numbers.view()[row, :8] = [frame.index, frame.t_s, frame.face, frame.audio, *box]
        if values is not None:
            self._numbers.view()[row, 8:] = values

    def set_values(self, values: np.ndarray) -> None:
        """Set every frame's merged values, (frames, dimensions)."""
        self._rows()[:, 8:] = values

    def _rows(self) -> np.ndarray:
        if self._numbers is None:
            raise RuntimeError("this frame log keeps counts only")
        return self._numbers.view()

    def column(self, name: str) -> np.ndarray:
        """``index``, ``t``, ``face``, ``audio``, ``box`` or ``values`` (rows must be kept)."""
        data = self._rows()
        columns = {"index": 0, "t": 1, "face": 2, "audio": 3}
        if name in columns:
            return data[:, columns[name]]
        return data[:, 4:8] if name == "box" else data[:, 8:]

    def __len__(self) -> int:
        return self.count


class InferenceRun:
    """Drives one run (see the module docstring); created and executed by :mod:`edgeaff.runtime.pipeline.infer`."""

    def __init__(
        self,
        bundle: Bundle,
        source: Source,
        graphs: Graphs,
        out_dir: Path,
        *,
        options: InferOptions,
        mode: str,
        echo: Callable[[str], None],
        show: Callable[[str], None],
        keep_rows: bool = False,
    ) -> None:
        """``keep_rows``: keep every frame's row in memory in stream mode too (offline mode and ``--plot`` always
        do), for callers that read the values after the run; a live stream without end should not."""
        self.bundle, self.source, self.graphs, self.options, self.mode = bundle, source, graphs, options, mode
        self.echo, self.show = echo, show
        self.out_dir = out_dir
        self.info = source.info
        self.timer = StageTimer()
        self.plans = plan_models(bundle.models, audio=self.info.has_audio)
        self.dimensions = [plan.dimension for plan in self.plans]
        self.names = [model_name(m) for m in bundle.models]
        spec = bundle.feature_spec
        self.audio = FrameAudio(spec) if graphs.vggish is not None else None
        self.clock = AlignmentClock(self.info.fps, by_index=not self.info.live)
        self.log = FrameLog(len(self.dimensions), keep_rows=keep_rows or mode == "offline" or options.plot)
        self.windows: WindowedTemporal | None = None
        self.stream: StreamingTemporal | None = None
        self.mergers: dict[str, CausalCccCentering] = {}
        self.max_audio_rows = 0
        self.warnings: list[str] = []
        self.files: ResultFiles | None = None
        self.overlay: Any = None
        if mode == "offline":
            embedding = (len(bundle.models), int(bundle.manifest["visual"]["embedding_dim"]))
            self.windows = WindowedTemporal(
                graphs.temporal, window=spec.window.length, hop=spec.window.hop, models=len(bundle.models),
                embedding_shape=embedding, timer=self.timer,
            )  # fmt: skip
        else:
            self.stream = StreamingTemporal(
                graphs.temporal, bundle.manifest["streaming"], max_chunk=spec.window.length, timer=self.timer
            )
            self.mergers = {p.dimension: CausalCccCentering(len(p.indices), clip=options.clip) for p in self.plans}
        self.features = FeatureStage(
            visual=graphs.visual,
            vggish=graphs.vggish,
            audio=self.audio,
            emit=self._emit_offline if mode == "offline" else self._emit_stream,
            timer=self.timer,
            visual_batch=options.batch or (OFFLINE_BATCH if mode == "offline" else 1),
            on_stall=self._audio_stalled,
        )

    def execute(self, reopen: Callable[[], Source]) -> InferenceResult:
        """Process the source to its end and write the results (the summary last)."""
        if not self.info.has_audio:
            self.echo(f"note: {self.info.uri}: no audio ({self.info.audio_note}); {self._fallback_text()}")
        name = self.options.name or self.info.name
        files = ResultFiles(
            self.out_dir, name, dimensions=self.dimensions, model_names=self.names if self.options.per_model else None,
            latency=self.mode == "stream",
        )  # fmt: skip
        started = time.perf_counter()
        timeout: SourceTimeoutError | None = None
        with files, contextlib.ExitStack() as stack:
            self.files = files
            if self.options.overlay and self.mode == "stream":
                self.overlay = stack.enter_context(self._overlay_writer(files, name))
            ended, timeout = self._consume()
            self.features.finish()
            if self.windows is not None:
                self._finish_offline(files)
            self._warn_without_faces()
            if self.options.overlay and self.mode == "offline":
                self._overlay_second_pass(files, name, reopen)
            stack.close()
            if self.options.plot:
                self._plot(files, name)
            wall = time.perf_counter() - started
            files.summary = self._summary(ended, wall)
        if timeout is not None:
            raise SourceTimeoutError(f"{timeout}; the results of the {files.rows} frames received were written")
        self.echo(self._report_line(files, time.perf_counter() - started))
        return InferenceResult(files.summary, dict(files.paths))

    def _audio_stalled(self, waiting: int) -> None:
        warning = (
            f"the audio of {self.info.uri} stopped arriving ({waiting} frames waited for it); the following frames "
            "run without audio (zero audio, flagged audio=0)"
        )
        self.warnings.append(warning)
        self.echo(f"warning: {warning}")

    def _warn_without_faces(self) -> None:
        frames = len(self.log)
        if frames and self.graphs.faces is not None and self.log.faces == 0:
            warning = (
                f"no face was found in any of the {frames} frames; every prediction comes from the black crop "
                "training used for missing faces (flagged face=0); check the video, or try --face-detector haar "
                "or --detect-every 1"
            )
            self.warnings.append(warning)
            self.echo(f"warning: {warning}")

    def _fallback_text(self) -> str:
        parts = []
        for plan in self.plans:
            if plan.kind == "unimodal":
                parts.append(f"{plan.dimension}: unimodal models")
            else:
                parts.append(f"{plan.dimension}: multimodal models with zero audio (flagged audio=0)")
        return "; ".join(parts)

    def _consume(self) -> tuple[str, SourceTimeoutError | None]:
        """Feed every item of the source; returns how it ended."""
        limit = self.options.max_frames
        frames = 0
        iterator = iter(self.source)
        try:
            while True:
                start = time.perf_counter()
                item = next(iterator, None)
                elapsed = (time.perf_counter() - start) * 1000.0
                if item is None:
                    return "end_of_stream", None
                if isinstance(item, AudioChunk):
                    self.timer.add("audio_read", elapsed, frames=0)
                    self.features.add_audio(item.samples)
                    if item.final:
                        self.features.end_audio()
                    continue
                if not isinstance(item, VideoFrame):
                    continue  # a SourceGap of a reconnected live source: not marked in the outputs yet
                self.timer.add("read", elapsed)
                self._add_frame(item)
                frames += 1
                if limit is not None and frames >= limit:
                    return "max_frames", None
        except SourceTimeoutError as exc:
            return "timeout", exc
        except KeyboardInterrupt:
            if not self.info.live:
                raise
            self.echo("stopped by the user (Ctrl-C); writing the results of the frames so far")
            return "interrupted", None

    def _add_frame(self, frame: VideoFrame) -> None:
        box = None
        if frame.face is not None:
            crop, found = frame.face, frame.face_found
        else:
            assert self.graphs.faces is not None
            with self.timer.measure("face"):
                result = self.graphs.faces.process(frame.image, frame.t_s)
            crop, found, box = result.crop, result.found, result.box
        key = self.clock.key(frame.index, frame.t_s) if self.audio is not None else None
        image = frame.image if self.overlay is not None else None
        state = FrameState(frame.index, frame.t_s, frame.arrival, found, box, crop, key, frame.audio_features, image)
        self.features.add_frame(state)

    def _track_audio(self) -> None:
        if self.audio is not None:
            self.max_audio_rows = max(self.max_audio_rows, *self.audio.buffered_rows)

    def _emit_offline(self, block: list[ReadyFrame]) -> None:
        assert self.windows is not None
        self._track_audio()
        for frame in block:
            self.windows.push(frame.embedding, frame.vggish, frame.mfcc)
            self.log.add(frame)

    def _finish_offline(self, files: ResultFiles) -> None:
        assert self.windows is not None
        if self.windows.count == 0:
            raise InvalidInputError(f"{self.info.uri}: no frames were read; nothing to predict")
        raw = self.windows.finish()
        with self.timer.measure("ensemble", frames=len(raw)):
            merged = np.stack(
                [ccc_centering(raw[:, list(p.indices)].T, clip=self.options.clip) for p in self.plans], axis=1
            )
        self.log.set_values(merged)
        with self.timer.measure("write", frames=len(raw)):
            index, times = self.log.column("index"), self.log.column("t")
            face, audio = self.log.column("face"), self.log.column("audio")
            for row in range(len(raw)):
                values = dict(zip(self.dimensions, merged[row], strict=True))
                files.write(int(index[row]), float(times[row]), values, face=bool(face[row]), audio=bool(audio[row]),
                            raw=raw[row])  # fmt: skip

    def _emit_stream(self, block: list[ReadyFrame]) -> None:
        assert self.stream is not None and self.files is not None
        self._track_audio()
        embeddings = np.stack([f.embedding for f in block])
        vggish = mfcc = None
        if any(f.audio for f in block):
            vggish = np.stack([f.vggish if f.vggish is not None else np.zeros(128, np.float32) for f in block])
            mfcc = np.stack([f.mfcc if f.mfcc is not None else np.zeros(39, np.float32) for f in block])
        raw = self.stream.step(embeddings, vggish, mfcc)
        for frame, row in zip(block, raw, strict=True):
            with self.timer.measure("ensemble"):
                merged = np.array([self.mergers[p.dimension].update(row[list(p.indices)]) for p in self.plans])
            values = dict(zip(self.dimensions, merged, strict=True))
            latency = (time.perf_counter() - frame.arrival) * 1000.0
            self.files.write(frame.index, frame.t_s, values, face=frame.face, audio=frame.audio, latency_ms=latency,
                             raw=row)  # fmt: skip
            self.timer.add("latency", latency)
            self.log.add(frame, merged)
            if self.options.live:
                shown = "  ".join(f"{d} {values[d]:+.3f}" for d in self.dimensions)
                self.show(f"{frame.index:>7} {frame.t_s:9.3f} s  {shown}  face {int(frame.face)} "
                          f"audio {int(frame.audio)}  {latency:6.0f} ms")  # fmt: skip
            if self.overlay is not None and frame.image is not None:
                from edgeaff.runtime.sinks.overlay import draw_frame

                with self.timer.measure("overlay"):
                    drawn = draw_frame(frame.image, box=frame.box, values=values, face=frame.face, audio=frame.audio)
                    self.overlay.write(drawn, frame.t_s)

    def _overlay_writer(self, files: ResultFiles, name: str) -> Any:
        from edgeaff.runtime.sinks.overlay import OverlayWriter

        width = self.info.width or self.bundle.feature_spec.face.image_size
        height = self.info.height or self.bundle.feature_spec.face.image_size
        return OverlayWriter(files.extra("overlay", f"{name}.overlay.mp4"), width=width, height=height,
                             rate=self.info.fps)  # fmt: skip

    def _overlay_second_pass(self, files: ResultFiles, name: str, reopen: Callable[[], Source]) -> None:
        """Offline values exist only at the end: decode the source again and draw them on its frames."""
        from edgeaff.runtime.sinks.overlay import draw_frame

        boxes, values = self.log.column("box"), self.log.column("values")
        face, audio = self.log.column("face"), self.log.column("audio")
        with reopen() as again, self._overlay_writer(files, name) as writer:
            row = 0
            for item in again:
                if not isinstance(item, VideoFrame) or row >= len(self.log):
                    continue
                box = None if np.isnan(boxes[row]).any() else boxes[row]
                shown = dict(zip(self.dimensions, values[row], strict=True))
                with self.timer.measure("overlay"):
                    drawn = draw_frame(item.image, box=box, values=shown, face=bool(face[row]), audio=bool(audio[row]))
                    writer.write(drawn, item.t_s)
                row += 1
            self.overlay_codec = writer.codec

    def _plot(self, files: ResultFiles, name: str) -> None:
        from edgeaff.runtime.sinks.overlay import plot_traces

        values = {d: self.log.column("values")[:, i] for i, d in enumerate(self.dimensions)}
        plot_traces(files.extra("plot", f"{name}.png"), self.log.column("t"), values,
                    self.log.column("face").astype(bool), title=f"{self.info.name} ({self.mode})")  # fmt: skip

    def _summary(self, ended: str, wall_s: float) -> dict[str, Any]:
        from edgeaff.runtime.sinks.summary import build_summary

        return build_summary(self, ended=ended, wall_s=wall_s)

    def _report_line(self, files: ResultFiles, wall_s: float) -> str:
        frames = files.rows
        return (
            f"{frames} frames in {wall_s:.1f} s ({frames / wall_s if wall_s > 0 else 0:.1f} frames/s) -> "
            + ", ".join(str(p) for p in files.paths.values())
        )


def versions() -> dict[str, str]:
    """Versions of edgeaff and the libraries that ran."""
    from importlib import metadata

    found = {"edgeaff": edgeaff.__version__, "python": platform.python_version(), "numpy": np.__version__}
    for package in ("onnxruntime", "onnxruntime-gpu", "av", "opencv-python-headless", "opencv-python", "tensorrt"):
        with contextlib.suppress(metadata.PackageNotFoundError):
            found[package] = metadata.version(package)
    return found
