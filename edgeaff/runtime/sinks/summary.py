"""The JSON summary of an ``edgeaff infer`` run: what ran on what, what came out, and how long each stage took."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from edgeaff.runtime.pipeline.timing import StageTimer

if TYPE_CHECKING:
    from edgeaff.runtime.pipeline.run import InferenceRun

SUMMARY_FORMAT = "edgeaff-infer-summary"
SUMMARY_SCHEMA_VERSION = 1


def _latency(timer: StageTimer) -> dict[str, Any] | None:
    summary = timer.summary().get("latency")
    if summary is None:
        return None
    return {k: summary[k] for k in ("calls", "mean_ms", "p50_ms", "p90_ms", "p99_ms")}


def build_summary(run: InferenceRun, *, ended: str, wall_s: float) -> dict[str, Any]:
    """The summary document of a finished run."""
    from edgeaff.runtime.pipeline.run import versions

    info, log, options = run.info, run.log, run.options
    frames = len(log)
    duration = None
    if log.first_t is not None and log.last_t is not None:
        duration = float(log.last_t - log.first_t) + (1.0 / info.fps if info.fps else 0.0)
    timing = {k: v for k, v in run.timer.summary().items() if k != "latency"}
    spec = run.bundle.feature_spec
    lookahead_ms = 0.0
    if run.audio is not None:
        hop, window = spec.vggish.stft_hop_s, spec.vggish.stft_window_s
        lookahead_ms = 1000.0 * (hop * (spec.vggish.example_frames - 1) + window)
    faces = run.graphs.faces
    document: dict[str, Any] = {
        "format": SUMMARY_FORMAT,
        "schema_version": SUMMARY_SCHEMA_VERSION,
        "source": {
            "uri": info.uri,
            "kind": info.kind.value,
            "name": info.name,
            "live": info.live,
            "fps": info.fps,
            "width": info.width,
            "height": info.height,
            "frames_declared": info.frame_count,
            "audio": info.has_audio,
            "audio_note": info.audio_note,
            "dropped_frames": run.source.dropped_frames,
        },
        "ended": ended,
        "frames": frames,
        "first_time_s": log.first_t,
        "last_time_s": log.last_t,
        "duration_s": duration,
        "frames_with_face": log.faces,
        "frames_without_face": frames - log.faces,
        "frames_with_audio": log.with_audio,
        "audio_alignment": _alignment(run),
        "mode": run.mode,
        "backend": options.backend.backend,
        "precision": options.backend.precision,
        "clip": options.clip,
        "graphs": [choice.to_dict() for choice in run.graphs.choices],
        "bundle": {
            "path": str(run.bundle.root),
            "models": run.names,
            "precisions": run.bundle.precisions,
            "shared_trunk": run.bundle.manifest.get("visual", {}).get("shared_trunk"),
        },
        "dimensions": {plan.dimension: plan.to_dict() for plan in run.plans},
        "face_detector": None
        if faces is None
        else {
            "kind": options.face_detector,
            "detect_every": options.detect_every,
            "select": options.face_select,
            "counts": dict(faces.counts),
        },
        "wall_s": wall_s,
        "frames_per_second": frames / wall_s if wall_s > 0 else None,
        "timing_ms": timing,
        "latency_ms": _latency(run.timer),
        "audio_lookahead_ms": lookahead_ms if run.mode == "stream" else None,
        "buffers": {
            "window_frames": run.windows.window if run.windows is not None else None,
            "max_window_buffer": run.windows.buffered_frames if run.windows is not None else None,
            "max_pending_frames": run.features.max_pending,
            "max_audio_rows": run.max_audio_rows,
        },
        "windows": None if run.windows is None else [list(w) for w in run.windows.windows],
        "overlay_codec": getattr(run, "overlay_codec", None) or getattr(run.overlay, "codec", None),
        "warnings": list(run.warnings),
        "versions": versions(),
    }
    return _plain(document)


def _alignment(run: InferenceRun) -> str | None:
    if run.audio is None:
        return None
    if run.clock.constant:
        return f"frame index at {run.clock.fps:g} fps (constant frame rate; the rows edgeaff prepare uses)"
    return "frame timestamps (variable frame rate or live source)"


def _plain(value: Any) -> Any:
    """Numpy scalars and arrays inside ``value`` as plain Python values."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return value
