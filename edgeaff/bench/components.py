"""Stages timed in isolation: the parts the pipeline times together, and the network stages without a source.

* ``mfcc`` and ``log_mel``: the streaming MFCC-39 and VGGish log-mel front ends fed the source's own audio chunks
  (the pipeline times the two together, with the row bookkeeping, as ``audio_features``);
* ``visual`` and ``vggish`` on synthetic inputs, ``ensemble_offline`` / ``ensemble_causal`` on synthetic fold
  predictions: what ``edgeaff bench`` measures when it is given no source.

The temporal graph's window and streaming step are timed side by side in :mod:`edgeaff.bench.compare`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

import numpy as np

from edgeaff.bench.stats import LatencyStats, Repeats, latency_stats, time_calls
from edgeaff.runtime import (
    AudioChunk,
    BackendOptions,
    Bundle,
    CausalCccCentering,
    LogMelStream,
    Mfcc39Stream,
    Runner,
    Source,
    bundle_dimension_plans,
    ccc_centering,
    graph_runner,
    tuned_stream_threads,
)

SYNTHETIC_SEED = 20211


def open_runner(bundle: Bundle, role: str, options: BackendOptions, stack: contextlib.ExitStack) -> Runner:
    """Enter the runner of one of the bundle's graphs on ``options`` (closed with ``stack``); the streaming graph
    with the thread count the pipeline gives it (measured once per machine, :func:`tuned_stream_threads`)."""
    threads = tuned_stream_threads(bundle, options).threads if role == "temporal_stream" else None
    runner, _ = graph_runner(bundle, role, options, threads=threads)
    return stack.enter_context(runner)


def source_audio(open_source: Callable[[], Source]) -> tuple[list[np.ndarray], float | None]:
    """The audio chunks a pass over the source delivers (in the pipeline's chunk sizes) and its frame rate."""
    chunks: list[np.ndarray] = []
    with open_source() as source:
        fps = source.info.fps
        if not source.info.has_audio:
            return [], fps
        for item in source:
            if isinstance(item, AudioChunk) and item.samples.size:
                chunks.append(np.asarray(item.samples, dtype=np.float32))
    return chunks, fps


def audio_front_ends(
    bundle: Bundle, chunks: list[np.ndarray], fps: float | None, repeats: Repeats
) -> dict[str, LatencyStats]:
    """``mfcc`` and ``log_mel``: per-chunk milliseconds of the streaming front ends over the source's audio.

    Each timed sweep feeds every chunk to a fresh stream (as one pass of the pipeline does); ``frames`` counts the
    video frames the audio covers, so ``ms_per_frame`` is comparable with the other stages.
    """
    spec = bundle.feature_spec
    seconds = sum(chunk.size for chunk in chunks) / float(spec.mfcc.sample_rate)
    frames_per_sweep = round(seconds * (fps or 30.0))
    makers: dict[str, Callable[[], Any]] = {
        "mfcc": lambda: Mfcc39Stream(spec=spec.mfcc),
        "log_mel": lambda: LogMelStream(spec=spec.vggish),
    }
    results = {}
    for stage, make in makers.items():
        samples: list[float] = []
        sweeps = 0
        elapsed = 0.0
        for _ in range(repeats.warmup):
            _sweep(make(), chunks)
        while repeats.with_minimum(1).more(sweeps, elapsed):
            times = _sweep(make(), chunks)
            samples.extend(times)
            elapsed += sum(times) / 1000.0
            sweeps += 1
        results[stage] = latency_stats(samples, frames=frames_per_sweep * sweeps)
    return results


def _sweep(stream: Any, chunks: list[np.ndarray]) -> list[float]:
    import time

    times = []
    for chunk in chunks:
        start = time.perf_counter()
        stream.push(chunk)
        times.append((time.perf_counter() - start) * 1000.0)
    return times


def synthetic_crops(count: int, size: int, *, seed: int = SYNTHETIC_SEED) -> np.ndarray:
    """(count, size, size, 3) uint8 smooth random images (a stand-in for face crops when there is no source)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    base = rng.uniform(60, 200, (count, 1, 1, 3))
    waves = rng.uniform(1.0, 4.0, (count, 1, 1, 3)) * (xx[None, :, :, None] + yy[None, :, :, None])
    noise = rng.normal(0.0, 6.0, (count, size, size, 3))
    return np.clip(base + 40.0 * np.sin(2 * np.pi * waves) + noise, 0, 255).astype(np.uint8)


def synthetic_window(bundle: Bundle, length: int, *, seed: int = SYNTHETIC_SEED) -> dict[str, np.ndarray]:
    """A temporal-graph feed of ``length`` frames: unit-norm embeddings and, for multimodal bundles, raw audio."""
    rng = np.random.default_rng(seed)
    models = len(bundle.models)
    width = bundle.embedding_dim
    embeddings = rng.normal(0.0, 1.0, (1, length, models, width))
    feed = {"embeddings": (embeddings / np.linalg.norm(embeddings, axis=-1, keepdims=True)).astype(np.float32)}
    if bundle.multimodal:
        spec = bundle.feature_spec
        feed["vggish"] = rng.normal(0.0, 0.5, (1, length, spec.vggish.embedding_dim)).astype(np.float32)
        feed["mfcc"] = rng.normal(0.0, 8.0, (1, length, spec.mfcc.dim)).astype(np.float32)
    return feed


def network_stages(
    bundle: Bundle, options: BackendOptions, repeats: Repeats, *, batch: int, crops: np.ndarray | None = None
) -> dict[str, LatencyStats]:
    """``visual`` (and ``vggish`` for multimodal bundles) per call of ``batch`` synthetic inputs."""
    spec = bundle.feature_spec
    if crops is None or len(crops) == 0:
        crops = synthetic_crops(batch, spec.face.image_size)
    frames = np.resize(crops, (batch, *crops.shape[1:]))
    results = {}
    with contextlib.ExitStack() as stack:
        visual = open_runner(bundle, "visual", options, stack)
        results["visual"] = latency_stats(
            samples := time_calls(lambda: visual.infer({"frames": frames}), repeats), frames=batch * len(samples)
        )
        if bundle.multimodal:
            vggish = open_runner(bundle, "vggish", options, stack)
            rng = np.random.default_rng(SYNTHETIC_SEED)
            shape = (batch, spec.vggish.example_frames, spec.vggish.mel_bins)
            log_mel = rng.normal(-2.0, 2.0, shape).astype(np.float32)
            samples = time_calls(lambda: vggish.infer({"log_mel": log_mel}), repeats)
            results["vggish"] = latency_stats(samples, frames=batch * len(samples))
    return results


def ensemble_stages(bundle: Bundle, repeats: Repeats, *, frames: int, clip: str = "late") -> dict[str, LatencyStats]:
    """Fold ensembling of every dimension: ``ensemble_offline`` once over ``frames`` frames, ``ensemble_causal``
    per frame (the streaming merge), on synthetic fold predictions."""
    plans = bundle_plans(bundle)
    rng = np.random.default_rng(SYNTHETIC_SEED)
    raw = np.cumsum(rng.normal(0.0, 0.02, (frames, len(bundle.models))), axis=0)

    def offline() -> None:
        for indices in plans.values():
            ccc_centering(raw[:, indices].T, clip=clip)

    offline_ms = time_calls(offline, repeats)
    mergers = {dimension: CausalCccCentering(len(indices), clip=clip) for dimension, indices in plans.items()}
    row = iter(range(10**12))

    def causal() -> None:
        values = raw[next(row) % frames]
        for dimension, indices in plans.items():
            mergers[dimension].update(values[indices])

    causal_ms = time_calls(causal, repeats.with_minimum(frames))
    return {
        "ensemble_offline": latency_stats(offline_ms, frames=frames * len(offline_ms)),
        "ensemble_causal": latency_stats(causal_ms, frames=len(causal_ms)),
    }


def bundle_plans(bundle: Bundle) -> dict[str, list[int]]:
    """The models each dimension ensembles for a source with audio: ``{dimension: [model index, ...]}``."""
    return {plan.dimension.value: list(plan.indices) for plan in bundle_dimension_plans(bundle)}
