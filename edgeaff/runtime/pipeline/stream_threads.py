"""The streaming graph's thread count, measured once per machine and bundle instead of fixed.

One streaming update reads every weight of the bundle's temporal graph once and does little arithmetic with each:
its speed is set by how fast the weights come from memory, and that depends on whether they fit the caches. Measured
on 2 AMD EPYC vCPUs (Zen 4, 32 MiB L3, ONNX Runtime 1.32, spinning off, median of 60 updates, fastest of 3 rounds):

===========================================  ===============  =========  =========
bundle's streaming graph                     FP32 weights     1 thread   2 threads
===========================================  ===============  =========  =========
12 networks (6 folds × 2), grouped           52.7 MB          5.11 ms    3.37 ms
2 networks (1 fold), grouped                 8.8 MB           0.35 ms    0.43 ms
===========================================  ===============  =========  =========

Twelve networks' weights do not fit the cache, and a second thread draws more bandwidth from memory (1.52× faster);
one fold's fit, and waking a second thread costs more than it gains (0.80×). Which side of that line a bundle falls
on depends on the machine's caches and memory, so :func:`tuned_stream_threads` measures it: it opens the streaming
graph at each candidate thread count (1, then doubling up to the cores this process may use), runs a few untimed
updates, then :data:`ROUNDS` rounds of :data:`STEPS` updates in alternating order, and keeps the fewest threads
whose fastest round's median is within :data:`~edgeaff.runtime.pipeline.tuning.TOLERANCE` of the best
(:func:`~edgeaff.runtime.pipeline.tuning.smallest_within`, the batch sizes' rule). The choice is cached beside the
batch sizes (:mod:`edgeaff.runtime.pipeline.tuning`, same key facts and the same rule for a busy machine: a choice
measured while the machine is oversubscribed is not written, and holds for this process only, so later pipelines and
``edgeaff bench``'s own sessions reuse it rather than measure again); ``--threads`` or ``tune=False`` skip it
(``tune=False``: :func:`~edgeaff.runtime.backends.cpu_threads.graph_threads`'s default of 1).
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import hashlib
import json
import time
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from edgeaff.runtime.artifacts.bundle import Bundle, zero_stream_state
from edgeaff.runtime.backends.base import Backend, Runner
from edgeaff.runtime.backends.cpu_threads import graph_spinning, graph_threads
from edgeaff.runtime.backends.graphs import BackendOptions, GraphChoice, graph_runner
from edgeaff.runtime.limits import usable_cores
from edgeaff.runtime.pipeline.tuning import (
    cache_file,
    graph_digest,
    machine_facts,
    quiet_machine,
    read_cached,
    smallest_within,
    write_cached,
)

ROLE = "temporal_stream"
STEPS = 40
ROUNDS = 3
THREADS_FORMAT = "edgeaff-stream-threads"
SEED = 11


@dataclasses.dataclass(frozen=True)
class ThreadChoice:
    """The streaming graph's intra-op threads and where they come from.

    Attributes:
        threads: intra-op threads.
        source: ``measured`` (now), ``cache`` (an earlier measurement on this machine), ``requested``
            (``--threads``) or ``default`` (not measured: ``tune=False``, one usable core, or a GPU backend).
        ms_per_step: the fastest round's median milliseconds per update at each candidate (empty unless measured).
        key: the cache key.
    """

    threads: int
    source: str
    ms_per_step: Mapping[int, float]
    key: str = ""

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "threads": self.threads,
            "source": self.source,
            "ms_per_step": {str(k): v for k, v in self.ms_per_step.items()},
        }


def candidates(cores: int) -> tuple[int, ...]:
    """1, then doubling, then ``cores`` itself.

    Example:
        >>> candidates(6)
        (1, 2, 4, 6)
    """
    counts = [1]
    while counts[-1] * 2 < cores:
        counts.append(counts[-1] * 2)
    if cores > 1:
        counts.append(cores)
    return tuple(counts)


def measure_steps(
    calls: Mapping[int, Callable[[], object]], *, steps: int = STEPS, rounds: int = ROUNDS
) -> dict[int, float]:
    """The fastest round's median milliseconds of ``calls[threads]()``: a few untimed calls each, then ``rounds``
    rounds of ``steps`` calls, in alternating order per round (load drifts hit every candidate alike)."""
    for call in calls.values():
        for _ in range(3):
            call()
    best: dict[int, float] = {}
    order = tuple(calls)
    for round_ in range(rounds):
        for count in order if round_ % 2 == 0 else tuple(reversed(order)):
            times = []
            for _ in range(steps):
                start = time.perf_counter()
                calls[count]()
                times.append((time.perf_counter() - start) * 1000.0)
            best[count] = min(best.get(count, float("inf")), float(np.median(times)))
    return best


def threads_key(bundle: Bundle, choice: GraphChoice, options: BackendOptions) -> str:
    """The cache key of the streaming graph's thread count on this machine."""
    facts = {
        "graph": graph_digest(bundle, ROLE, choice),
        "backend": options.backend.value,
        "precision": choice.precision,
        "spinning": graph_spinning(options.spinning),
        **machine_facts(),  # the cores among them decide the candidates
        "method": "median-of-steps",
    }
    return hashlib.sha256(json.dumps({"kind": THREADS_FORMAT, **facts}, sort_keys=True).encode()).hexdigest()[:32]


def step_feed(bundle: Bundle, runner: Runner) -> dict[str, np.ndarray]:
    """One frame of synthetic inputs for the streaming graph and a zero state."""
    rng = np.random.default_rng(SEED)
    state_input = bundle.streaming.state_input
    feed = {}
    for spec in runner.inputs:
        if spec.name == state_input:
            feed[spec.name] = zero_stream_state(bundle)
        else:
            shape = tuple(int(d) if isinstance(d, int) else 1 for d in spec.shape)
            feed[spec.name] = rng.normal(0.0, 1.0, shape).astype(spec.dtype)
    return feed


_PROCESS_CHOICES: dict[str, ThreadChoice] = {}
"""Choices measured on a busy machine, by key: not cached on disk, kept for this process."""


def _from_cache(key: str) -> ThreadChoice | None:
    document = read_cached(key, THREADS_FORMAT)
    if document is None:
        return None
    with contextlib.suppress(ValueError, KeyError, TypeError, AttributeError):
        timings = {int(k): float(v) for k, v in document["ms_per_step"].items()}
        threads = int(document["threads"])
        if threads in timings and set(timings) == set(candidates(usable_cores())):
            return ThreadChoice(threads, "cache", timings, key)
    return None


def tuned_stream_threads(
    bundle: Bundle, options: BackendOptions, *, tune: bool = True, on_note: Callable[[str], None] | None = None
) -> ThreadChoice:
    """The streaming graph's threads on ``options``: ``--threads`` when given; else, on ONNX Runtime's CPU backend
    with ``tune`` and two usable cores or more, from the cache or measured now and cached; else the default."""
    if options.threads is not None:
        return ThreadChoice(options.threads, "requested", {})
    cores = usable_cores()
    if not tune or cores < 2 or options.backend is not Backend.ORT_CPU or ROLE not in bundle.graphs:
        return ThreadChoice(graph_threads(ROLE), "default", {})
    made = {count: graph_runner(bundle, ROLE, options, threads=count) for count in candidates(cores)}
    key = threads_key(bundle, made[1][1], options)
    cached = _from_cache(key) or _PROCESS_CHOICES.get(key)
    if cached is not None:
        return cached
    if on_note is not None:
        on_note(f"note: measuring the streaming graph's threads on this machine (once; cached in {cache_file(key)})")
    with contextlib.ExitStack() as stack:
        runners = {count: stack.enter_context(runner) for count, (runner, _) in made.items()}
        feed = step_feed(bundle, runners[1])
        calls: dict[int, Callable[[], object]] = {
            count: functools.partial(runner.infer, feed) for count, runner in runners.items()
        }
        timings = measure_steps(calls)
    measured = ThreadChoice(smallest_within(timings), "measured", timings, key)
    if quiet_machine():
        write_cached(key, THREADS_FORMAT, measured.to_dict())
    else:
        _PROCESS_CHOICES[key] = measured
        if on_note is not None:
            on_note("note: the machine was busy while the streaming graph's threads were measured; not cached")
    return measured
