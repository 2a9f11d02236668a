"""Build progress lines: phases and depth, throttled steps, cancellation, the heartbeat fallback."""

from __future__ import annotations

import threading
import time

from edgeaff.runtime.engines.progress import BuildProgress, Heartbeat


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_phases_are_timed_and_deep_phases_stay_quiet() -> None:
    lines: list[str] = []
    clock = Clock()
    progress = BuildProgress("visual.fp16", interval_s=10.0, max_depth=1, emit=lines.append, clock=clock)
    progress.phase_start("Building engine", None, 3)
    progress.phase_start("Tactic selection", "Building engine", 40)
    progress.phase_start("Layer 7", "Tactic selection", 5)  # depth 2: not announced
    clock.now = 4.0
    progress.phase_finish("Layer 7")
    progress.phase_finish("Tactic selection")
    clock.now = 12.5
    progress.phase_finish("Building engine")
    assert lines == [
        "visual.fp16: Building engine (3 steps)",
        "visual.fp16:   Tactic selection (40 steps)",
        "visual.fp16:   Tactic selection done in 4.0 s",
        "visual.fp16: Building engine done in 12.5 s",
    ]


def test_steps_are_reported_at_most_once_per_interval() -> None:
    lines: list[str] = []
    clock = Clock()
    progress = BuildProgress("g", interval_s=10.0, emit=lines.append, clock=clock)
    progress.phase_start("Tactic selection", None, 100)
    for step in range(100):
        clock.now = step * 0.5  # one step every half second for 50 s
        assert progress.step_complete("Tactic selection", step) is True
    step_lines = [line for line in lines if "/100" in line]
    assert step_lines == [
        "g: Tactic selection 21/100",
        "g: Tactic selection 41/100",
        "g: Tactic selection 61/100",
        "g: Tactic selection 81/100",
    ]
    progress.cancelled = True
    assert progress.step_complete("Tactic selection", 99) is False


def test_callbacks_from_several_threads_do_not_interfere() -> None:
    lines: list[str] = []
    progress = BuildProgress("g", interval_s=0.0, max_depth=0, emit=lines.append)

    def work(index: int) -> None:
        name = f"phase {index}"
        progress.phase_start(name, None, 10)
        for step in range(10):
            progress.step_complete(name, step)
        progress.phase_finish(name)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(line.endswith("(10 steps)") for line in lines) == 8
    assert sum(" done in " in line for line in lines) == 8


def test_heartbeat_logs_until_stopped() -> None:
    lines: list[str] = []
    with Heartbeat("visual.fp32", interval_s=0.01, emit=lines.append):
        deadline = time.monotonic() + 5
        while len(lines) < 2 and time.monotonic() < deadline:
            time.sleep(0.005)
    count = len(lines)
    time.sleep(0.05)
    assert count >= 2 and len(lines) == count
    assert lines[0].startswith("visual.fp32: still building (")
