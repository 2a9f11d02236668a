"""Batch sizes of the visual and VGGish graphs, measured once per machine and bundle instead of fixed.

How many crops (or log-mel examples) one graph call should take depends on the machine: its caches, its INT8
kernels, its thread count. Larger batches amortise per-call costs and let the kernels block better, up to a point;
on a 2-core AVX-512 machine the 12-network IR-50 visual graph ran 8-12% faster per frame at batch 64 than at 16.

:func:`tuned_batch` measures each graph at :data:`CANDIDATES` on synthetic inputs (one untimed call each, then
:data:`ROUNDS` rounds in alternating order, so load drifts hit every candidate alike), keeps the fastest round's
milliseconds per item (other work on the machine only ever slows a call, so the fastest is the least disturbed; a
median of three rounds on a shared 2-core machine once made batch 8 look 3.7× faster than 16), and picks the
**smallest** batch within :data:`TOLERANCE` of the fastest (a larger batch holds more frames and memory for
nothing). The result is cached in ``<cache dir>/tuning/<key>.json`` (the per-machine cache of
:func:`edgeaff.runtime.engines.paths.cache_dir`), keyed by the graph file's sha256, backend, precision, threads,
spinning, CPU model and instruction-set flags and the ONNX Runtime version: the first offline run of a bundle on a
machine pays for the measurement (seconds for the 12-network IR-50 bundle), every later run reads the file. Delete
the ``tuning`` folder to measure again. A measurement taken while the machine is oversubscribed (its 1-minute load
average above the cores this process may use) holds for the process only and is not cached, so a busy moment is not
remembered as the machine's character; nor is one that cannot be written.

Stream mode does not use these: a live frame never waits for others (see ``PipelineOptions.batch``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from edgeaff.runtime.artifacts.bundle import Bundle
from edgeaff.runtime.backends.base import Runner
from edgeaff.runtime.backends.cpu_threads import graph_spinning, graph_threads
from edgeaff.runtime.backends.graphs import BackendOptions, GraphChoice
from edgeaff.runtime.cpu import cpu_flags, cpu_model
from edgeaff.runtime.engines.paths import cache_dir
from edgeaff.runtime.errors import InvalidInputError
from edgeaff.runtime.files import atomic_output, read_json
from edgeaff.runtime.limits import usable_cores
from edgeaff.runtime.versions import versions

CANDIDATES = (8, 16, 32, 64)
ROUNDS = 3
TOLERANCE = 0.03
DEFAULTS = {"visual": 16, "vggish": 32}
TUNING_FORMAT = "edgeaff-batch-tuning"
SEED = 5


@dataclasses.dataclass(frozen=True)
class BatchChoice:
    """The batch one graph runs with, and where it comes from.

    Attributes:
        role: ``visual`` or ``vggish``.
        batch: items per call.
        source: ``measured`` (now), ``cache`` (an earlier measurement on this machine) or ``default``.
        ms_per_item: the fastest round's milliseconds per item at each candidate batch (empty for ``default``).
        key: the cache key.
    """

    role: str
    batch: int
    source: str
    ms_per_item: Mapping[int, float]
    key: str = ""

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "role": self.role,
            "batch": self.batch,
            "source": self.source,
            "ms_per_item": {str(k): v for k, v in self.ms_per_item.items()},
        }


def graph_digest(bundle: Bundle, role: str, choice: GraphChoice) -> str:
    """The sha256 of the file graph ``role`` runs from (its manifest entry), else the file's name."""
    graph = bundle.graphs[role]
    return next((v.sha256 for v in graph.variants.values() if v.path.name == choice.file), choice.file)


def tuning_key(bundle: Bundle, role: str, choice: GraphChoice, options: BackendOptions) -> str:
    """The cache key of a graph's batch on this machine (see the module docstring)."""
    facts = {
        "graph": graph_digest(bundle, role, choice),
        "backend": options.backend.value,
        "precision": choice.precision,
        "threads": graph_threads(role, options.threads),
        "spinning": graph_spinning(options.spinning),
        **machine_facts(),
        "candidates": list(CANDIDATES),
        "method": "fastest-round",  # a change of method measures again
    }
    return hashlib.sha256(json.dumps(facts, sort_keys=True).encode()).hexdigest()[:32]


def measure_batches(
    call: Callable[[int], object], *, candidates: tuple[int, ...] = CANDIDATES, rounds: int = ROUNDS
) -> dict[int, float]:
    """The fastest round's milliseconds per item of ``call(batch)`` at each candidate (alternating order per
    round)."""
    for batch in candidates:
        call(batch)
    samples: dict[int, list[float]] = {batch: [] for batch in candidates}
    for round_ in range(rounds):
        order = candidates if round_ % 2 == 0 else tuple(reversed(candidates))
        for batch in order:
            start = time.perf_counter()
            call(batch)
            samples[batch].append((time.perf_counter() - start) * 1000.0 / batch)
    return {batch: float(min(values)) for batch, values in samples.items()}


def smallest_within(timings: Mapping[int, float], *, tolerance: float = TOLERANCE) -> int:
    """The smallest setting (batch size, thread count) whose time is within ``tolerance`` of the fastest: a larger
    one would hold more frames, memory or cores for a gain the measurement cannot tell from noise.

    Example:
        >>> smallest_within({8: 12.0, 16: 10.2, 32: 10.0, 64: 9.95})
        16
    """
    fastest = min(timings.values())
    return min(setting for setting, ms in timings.items() if ms <= fastest * (1.0 + tolerance))


def synthetic_feed(role: str, runner: Runner, batch: int) -> dict[str, np.ndarray]:
    """Inputs of ``batch`` items for the visual (uint8 crops) or VGGish (log-mel) graph, with the graph's shapes."""
    rng = np.random.default_rng(SEED)
    feed = {}
    for spec in runner.inputs:
        shape = (batch, *(int(d) if isinstance(d, int) else 1 for d in spec.shape[1:]))
        if np.issubdtype(spec.dtype, np.integer):
            feed[spec.name] = rng.integers(0, 256, shape).astype(spec.dtype)
        else:
            scale = 2.0 if role == "vggish" else 1.0
            feed[spec.name] = rng.normal(-2.0 if role == "vggish" else 0.0, scale, shape).astype(spec.dtype)
    return feed


CACHE_MAX_BYTES = 64 * 1024
"""A tuning cache entry is a few hundred bytes; anything larger is not one."""


def cache_file(key: str) -> Path:
    """Where the tuning entry ``key`` is cached (``<cache dir>/tuning/<key>.json``)."""
    return cache_dir() / "tuning" / f"{key}.json"


def read_cached(key: str, kind: str) -> dict[str, Any] | None:
    """The cached entry ``key`` of format ``kind``, or ``None`` when there is none or it is not one this module
    wrote (damaged, edited, foreign): such an entry is measured anew, never an error."""
    if not cache_file(key).is_file():
        return None
    with contextlib.suppress(InvalidInputError, ValueError):
        document = read_json(cache_file(key), max_bytes=CACHE_MAX_BYTES)
        if isinstance(document, dict) and document.get("format") == kind and document.get("key") == key:
            return document
    return None


def write_cached(key: str, kind: str, entry: Mapping[str, Any]) -> None:
    """Cache ``entry`` under ``key`` (temp file, then rename); a cache that cannot be written is skipped."""
    document = {"format": kind, "key": key, "measured": time.time(), **entry}
    with contextlib.suppress(OSError), atomic_output(cache_file(key)) as tmp:
        tmp.write_text(json.dumps(document, indent=2) + "\n")


def machine_facts() -> dict[str, Any]:
    """What a measurement on this machine depends on besides the graph: CPU model and flags, usable cores, ONNX
    Runtime's version."""
    return {
        "cpu": cpu_model(),
        "flags": sorted(cpu_flags()),
        "cores": usable_cores(),
        "onnxruntime": versions(["onnxruntime"]).get("onnxruntime"),
    }


def _read_cache(key: str, role: str) -> BatchChoice | None:
    document = read_cached(key, TUNING_FORMAT)
    if document is None:
        return None
    with contextlib.suppress(ValueError, KeyError, TypeError, AttributeError):
        timings = {int(k): float(v) for k, v in document["ms_per_item"].items()}
        batch = int(document["batch"])
        if batch in CANDIDATES and set(timings) == set(CANDIDATES):
            return BatchChoice(role, batch, "cache", timings, key)
    return None


def tuned_batch(
    bundle: Bundle,
    role: str,
    runner: Runner,
    choice: GraphChoice,
    options: BackendOptions,
    *,
    on_note: Callable[[str], None] | None = None,
) -> BatchChoice:
    """The batch of graph ``role`` on this machine: from the cache, else measured now and cached.

    Args:
        bundle: the bundle.
        role: ``visual`` or ``vggish``.
        runner: the graph's entered runner.
        choice: what file and precision it runs.
        options: the backend options (part of the key).
        on_note: told when a measurement starts (it takes seconds on large bundles).
    """
    key = tuning_key(bundle, role, choice, options)
    cached = _read_cache(key, role)
    if cached is not None:
        return cached
    if on_note is not None:
        on_note(f"note: measuring the {role} graph's batch size on this machine (once; cached in {cache_file(key)})")
    feeds = {batch: synthetic_feed(role, runner, batch) for batch in CANDIDATES}
    timings = measure_batches(lambda batch: runner.infer(feeds[batch]))
    measured = BatchChoice(role, smallest_within(timings), "measured", timings, key)
    if quiet_machine():
        write_cached(key, TUNING_FORMAT, measured.to_dict())
    elif on_note is not None:
        on_note(f"note: the machine was busy while the {role} batch was measured; the choice is not cached")
    return measured


def quiet_machine() -> bool:
    """Whether the 1-minute load average is at most the cores this process may use (``True`` where the OS has no
    load average)."""
    try:
        return os.getloadavg()[0] <= usable_cores()
    except OSError:
        return True
