"""Benchmarks of a bundle on this machine: per-stage and end-to-end latency, throughput, side-by-side ratios.

Torch-free: it imports :mod:`edgeaff.runtime` only (``design.md`` §2). ``edgeaff bench`` is the command;
:func:`run_bench` the function behind it; the PyTorch comparisons live in ``benchmarks/`` (they need torch).
"""

from edgeaff.bench.report import build_document, render_markdown, write_json, write_markdown
from edgeaff.bench.run import BenchOptions, run_bench
from edgeaff.bench.stamp import make_stamp
from edgeaff.bench.stats import LatencyStats, PairedTiming, Repeats, latency_stats, paired_ratio, time_interleaved

__all__ = [
    "BenchOptions",
    "LatencyStats",
    "PairedTiming",
    "Repeats",
    "build_document",
    "latency_stats",
    "make_stamp",
    "paired_ratio",
    "render_markdown",
    "run_bench",
    "time_interleaved",
    "write_json",
    "write_markdown",
]
