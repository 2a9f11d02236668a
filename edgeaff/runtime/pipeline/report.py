"""The summary document of a run: what ran on what, what came out, and how long each stage took.

``edgeaff infer`` writes it as ``<name>.json`` (:class:`~edgeaff.runtime.sinks.summary.SummarySink`, which adds the
paths of the result files); an application gets it from :meth:`PipelineRun.report` or :meth:`PushStream.report`.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from edgeaff.runtime.io.sources import SourceInfo
from edgeaff.runtime.pipeline.processor import FrameProcessor
from edgeaff.runtime.pipeline.timing import StageTimer
from edgeaff.runtime.versions import versions

if TYPE_CHECKING:
    from edgeaff.runtime.pipeline.pipeline import Pipeline

SUMMARY_FORMAT = "edgeaff-infer-summary"
SUMMARY_SCHEMA_VERSION = 1


class Reportable(Protocol):
    """What a report is made of: a pulled run or a pushed stream."""

    pipeline: Pipeline
    timer: StageTimer
    ended: str | None
    wall_s: float

    @property
    def processor(self) -> FrameProcessor: ...

    @property
    def dropped_frames(self) -> int: ...


def _latency(timer: StageTimer) -> dict[str, Any] | None:
    summary = timer.summary().get("latency")
    if summary is None:
        return None
    return {k: summary[k] for k in ("calls", "mean_ms", "p50_ms", "p90_ms", "p99_ms")}


def build_report(run: Reportable) -> dict[str, Any]:
    """The summary document of a finished (or stopped) run."""
    processor = run.processor
    pipeline, options = run.pipeline, run.pipeline.options
    frames = processor.frames
    document: dict[str, Any] = {
        "format": SUMMARY_FORMAT,
        "schema_version": SUMMARY_SCHEMA_VERSION,
        "source": _source(run),
        "gaps": [
            {**dataclasses.asdict(gap), "reason": gap.reason.value, "duration_s": gap.duration_s}
            for gap in processor.gaps
        ],
        "ended": run.ended,
        "frames": frames,
        "first_time_s": processor.first_t,
        "last_time_s": processor.last_t,
        "duration_s": _duration(processor),
        "frames_with_face": processor.with_face,
        "frames_without_face": frames - processor.with_face,
        "frames_with_audio": processor.with_audio,
        "audio_alignment": _alignment(processor),
        "mode": processor.mode.value,
        "backend": options.backend.backend.value,
        "precision": str(options.backend.precision),
        "clip": options.clip.value,
        "graphs": [c.to_dict() for role, c in pipeline.graphs.choices.items() if role in processor.roles],
        "bundle": {
            "path": str(pipeline.bundle.root),
            "models": list(processor.model_names),
            "precisions": [p.value for p in pipeline.bundle.precisions],
            "shared_trunk": pipeline.bundle.shared_trunk,
        },
        "dimensions": {plan.dimension.value: plan.to_dict() for plan in processor.plans},
        "face_detector": _face_detector(run),
        "tracks": _tracks(processor),
        "wall_s": run.wall_s,
        "frames_per_second": frames / run.wall_s if run.wall_s > 0 else None,
        "timing_ms": {k: v for k, v in run.timer.summary().items() if k != "latency"},
        "latency_ms": _latency(run.timer),
        "audio_lookahead_ms": _lookahead_ms(processor) if processor.mode.value == "stream" else None,
        "buffers": _buffers(processor),
        "batches": _batches(run),
        "windows": None if processor.windows is None else [list(w) for w in processor.windows.windows],
        "notes": list(processor.notes.notes),
        "warnings": list(processor.notes.warnings),
        "versions": versions(),
    }
    return plain(document)


def _source(run: Reportable) -> dict[str, Any]:
    info: SourceInfo = run.processor.info
    outages = getattr(run, "outages", None)
    return {
        "uri": info.uri,
        "kind": info.kind.value,
        "name": info.name,
        "live": info.live,
        "fps": info.fps,
        "width": info.width,
        "height": info.height,
        "rotation": info.rotation,
        "mirrored": info.mirrored,
        "frames_declared": info.frame_count,
        "audio": info.has_audio,
        "audio_note": info.audio_note,
        "dropped_frames": run.dropped_frames,
        "outages": None if outages is None else dataclasses.asdict(outages),
    }


def _duration(processor: FrameProcessor) -> float | None:
    if processor.first_t is None or processor.last_t is None:
        return None
    fps = processor.info.fps
    return float(processor.last_t - processor.first_t) + (1.0 / fps if fps else 0.0)


def _lookahead_ms(processor: FrameProcessor) -> float:
    """How far the VGGish example of a frame reaches ahead of it (0 without audio)."""
    if processor.audio is None:
        return 0.0
    spec = processor.bundle.feature_spec.vggish
    return 1000.0 * (spec.stft_hop_s * (spec.example_frames - 1) + spec.stft_window_s)


def _face_detector(run: Reportable) -> dict[str, Any] | None:
    faces, options = run.processor.faces, run.pipeline.options
    if faces is None:
        return None
    return {
        "kind": options.face_detector.value,
        "detect_every": options.detect_every,
        "select": options.face_select.value,
        "faces": options.faces.value,
        "counts": dict(run.processor.tracks.counts if run.processor.tracks is not None else faces.counts),
    }


def _buffers(processor: FrameProcessor) -> dict[str, Any]:
    windows, spool = processor.windows, processor.spool
    offline = processor.mode.value == "offline"
    return {
        "window_frames": processor.bundle.feature_spec.window.length if offline else None,
        "max_window_buffer": windows.buffered_frames
        if windows is not None
        else (processor.max_window_buffer if offline else None),
        "max_pending_frames": processor.features.max_pending,
        "max_audio_rows": processor.max_audio_rows,
        "image_spool_bytes": spool.size_bytes if spool is not None else None,
    }


def _tracks(processor: FrameProcessor) -> dict[str, Any] | None:
    """Multi-face mode: the tracker's settings, how many tracks there were, and the list of the tracks."""
    tracks = processor.tracks
    if tracks is None:
        return None
    listed = processor.track_summaries()
    return {
        "max_faces": tracks.options.max_faces,
        "timeout_s": tracks.options.timeout_s,
        "started": tracks.started,
        "listed": listed,
        "not_listed": tracks.started - len(listed),
        "most_faces_left_out": tracks.overflow,
        "first_frame_with_faces_left_out": tracks.overflow_frame,
        "frames_with_tracks": processor.with_tracks,
        "frames_without_tracks": processor.frames - processor.with_tracks,
    }


def _batches(run: Reportable) -> dict[str, Any]:
    """Items per call of the visual and VGGish graphs, and where those sizes come from."""
    processor, graphs = run.processor, run.pipeline.graphs
    return {
        "visual": processor.features.visual_batch,
        "vggish": processor.features.vggish_batch,
        "adaptive": processor.adaptive_batch,
        "tuning": {role: choice.to_dict() for role, choice in graphs.batches.items()},
        "prefetch": run.pipeline.options.prefetch_enabled,
    }


def _alignment(processor: FrameProcessor) -> str | None:
    if processor.audio is None:
        return None
    if processor.clock.constant:
        return f"frame index at {processor.clock.fps:g} fps (constant frame rate; the rows edgeaff prepare uses)"
    return "frame timestamps (variable frame rate or live source)"


def plain(value: Any) -> Any:
    """Numpy scalars and arrays inside ``value`` as plain Python values."""
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return value
