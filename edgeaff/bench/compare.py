"""Side-by-side comparisons measured in one run, reported as ratios (:func:`edgeaff.bench.stats.time_interleaved`).

Every comparison names a candidate A and a baseline B doing the same work; ``ratio`` = B's time / A's time, i.e. how
many times faster A is (below 1: slower).

* ``stream_step_vs_window``: the streaming graph's per-frame update (A) against re-running the temporal graph on the
  whole 300-frame window for each new frame (B), which is what a windowed model would need to give a prediction
  per frame as it arrives.
* ``visual_<p>_vs_fp32``, ``vggish_<p>_vs_fp32``: a reduced-precision graph of the bundle (A) against its FP32
  graph (B) on the same backend, same batch.
* ``visual_trt_vs_<ort backend>``: native TensorRT (A) against ONNX Runtime's CUDA / TensorRT execution provider
  (B). Only where a CUDA device and the libraries are present; elsewhere skipped with the reason.

:func:`compare_graph_files` compares any two ONNX files on one feed (the benchmarks use it for a per-fold
backbone graph built outside the bundle).
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from edgeaff.bench.components import open_runner, synthetic_crops, synthetic_window
from edgeaff.bench.stats import PairedTiming, Repeats, time_interleaved
from edgeaff.runtime import Backend, BackendOptions, Bundle, OrtRunner, Precision, zero_stream_state
from edgeaff.runtime.errors import EdgeaffError


@dataclasses.dataclass(frozen=True)
class Skipped:
    """A measurement that did not run, and why."""

    what: str
    why: str

    def to_dict(self) -> dict[str, str]:
        """JSON-ready form."""
        return dataclasses.asdict(self)


def stream_step_vs_window(bundle: Bundle, options: BackendOptions, repeats: Repeats) -> PairedTiming:
    """One streaming update (1 frame, carried state) against one full window of the windowed temporal graph."""
    window = bundle.feature_spec.window.length
    full = synthetic_window(bundle, window)
    step = {name: value[:, :1] for name, value in full.items()}
    step["state"] = zero_stream_state(bundle)
    with contextlib.ExitStack() as stack:
        stream = open_runner(bundle, "temporal_stream", options, stack)
        windowed = open_runner(bundle, "temporal", options, stack)
        state_out = bundle.streaming.state_output

        def update() -> None:
            step["state"] = stream.infer(step)[state_out]

        return time_interleaved(
            update,
            lambda: windowed.infer(full),
            repeats,
            name="stream_step_vs_window",
            labels=("streaming update, 1 frame", f"temporal window re-run, {window} frames"),
            frames=(1, window),
            note=f"{len(bundle.models)} models; B re-runs the whole {window}-frame window to predict one new frame",
        )


def precision_comparisons(
    bundle: Bundle, options: BackendOptions, repeats: Repeats, *, batch: int, crops: np.ndarray | None = None
) -> tuple[list[PairedTiming], list[Skipped]]:
    """Each reduced precision the bundle has against FP32, for the visual and VGGish graphs.

    Graphs without a variant at a precision (e.g. VGGish under INT8, which quantises only the visual graph) are
    skipped with a note rather than compared with themselves.
    """
    spec = bundle.feature_spec
    frames = crops if crops is not None and len(crops) else synthetic_crops(batch, spec.face.image_size)
    frames = np.resize(frames, (batch, *frames.shape[1:]))
    rng = np.random.default_rng(7)
    log_mel = rng.normal(-2.0, 2.0, (batch, spec.vggish.example_frames, spec.vggish.mel_bins)).astype(np.float32)
    feeds = {"visual": {"frames": frames}, "vggish": {"log_mel": log_mel}}
    results: list[PairedTiming] = []
    skipped: list[Skipped] = []
    for precision in bundle.precisions:
        if precision == "fp32":
            continue
        for role, feed in feeds.items():
            if role not in bundle.graphs:
                continue
            if precision not in bundle.graphs[role].variants:
                skipped.append(Skipped(f"{role}_{precision}_vs_fp32", f"the bundle has no {precision} {role} graph"))
                continue
            base = dataclasses.replace(options, precision=Precision.FP32)
            reduced = dataclasses.replace(options, precision=precision)
            with contextlib.ExitStack() as stack:
                a = open_runner(bundle, role, reduced, stack)
                b = open_runner(bundle, role, base, stack)
                results.append(
                    time_interleaved(
                        lambda a=a, feed=feed: a.infer(feed),  # type: ignore[misc]
                        lambda b=b, feed=feed: b.infer(feed),  # type: ignore[misc]
                        repeats,
                        name=f"{role}_{precision}_vs_fp32",
                        labels=(f"{role} {precision}", f"{role} fp32"),
                        frames=(batch, batch),
                        note=f"{options.backend.value}, batch {batch}",
                    )
                )
    return results, skipped


def tensorrt_vs_onnxruntime(
    bundle: Bundle, options: BackendOptions, repeats: Repeats, *, batch: int, gpu: bool
) -> tuple[list[PairedTiming], list[Skipped]]:
    """Native TensorRT against ONNX Runtime's GPU providers on the visual graph (GPU machines only)."""
    what = "visual_trt_vs_onnxruntime"
    if not gpu:
        return [], [Skipped(what, "no CUDA device on this machine: TensorRT and ONNX Runtime GPU were not measured")]
    feed = {"frames": synthetic_crops(batch, bundle.feature_spec.face.image_size)}
    results: list[PairedTiming] = []
    skipped: list[Skipped] = []
    with contextlib.ExitStack() as stack:
        try:
            native = open_runner(bundle, "visual", dataclasses.replace(options, backend=Backend.TRT), stack)
        except EdgeaffError as exc:
            return [], [Skipped(what, f"native TensorRT is not usable here: {exc}")]
        for backend in (Backend.ORT_TRT, Backend.ORT_CUDA):
            try:
                with contextlib.ExitStack() as inner:
                    other = open_runner(bundle, "visual", dataclasses.replace(options, backend=backend), inner)
                    results.append(
                        time_interleaved(
                            lambda: native.infer(feed),
                            lambda other=other: other.infer(feed),  # type: ignore[misc]
                            repeats,
                            name=f"visual_trt_vs_{backend.value}",
                            labels=("visual, native TensorRT", f"visual, {backend.value}"),
                            frames=(batch, batch),
                            note=f"{options.precision}, batch {batch}",
                        )
                    )
            except EdgeaffError as exc:
                skipped.append(Skipped(f"visual_trt_vs_{backend.value}", f"{backend.value} is not usable here: {exc}"))
    return results, skipped


def compare_graph_files(
    candidate: Path,
    baseline: Path,
    feed: Mapping[str, np.ndarray],
    repeats: Repeats,
    *,
    name: str,
    labels: tuple[str, str],
    frames: int,
    threads: int | None = None,
) -> tuple[PairedTiming, float]:
    """Two ONNX files on ONNX Runtime CPU with the same feed: the timing and the max abs difference of the outputs.

    Returns:
        (the paired timing, the max abs difference between the first outputs of the two graphs).
    """
    with OrtRunner(candidate, threads=threads) as a, OrtRunner(baseline, threads=threads) as b:
        first_a = next(iter(a.infer(feed).values()))
        first_b = next(iter(b.infer(feed).values()))
        difference = float(np.abs(first_a.astype(np.float64) - first_b.astype(np.float64)).max())
        timing = time_interleaved(
            lambda: a.infer(feed),
            lambda: b.infer(feed),
            repeats,
            name=name,
            labels=labels,
            frames=(frames, frames),
        )
    return timing, difference
