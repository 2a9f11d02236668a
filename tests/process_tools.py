"""Looking at processes through /proc (Linux): children of a process, whether one is still alive, waiting; and
starting a child as a terminal would, for the tests that press Ctrl-C."""

from __future__ import annotations

import contextlib
import signal
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path


def children(pid: int) -> list[int]:
    """Pids of the live processes whose parent is ``pid``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid and fields[0] != "Z":
            found.append(int(entry.name))
    return found


def alive(pid: int) -> bool:
    """Whether ``pid`` exists and is not a zombie."""
    try:
        state = (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def wait_for(condition: Callable[[], bool], timeout_s: float, poll_s: float = 0.05) -> bool:
    """Poll ``condition`` until it holds or ``timeout_s`` passes; returns its last value."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(poll_s)
    return condition()


def open_files(pid: int) -> list[Path]:
    """The files ``pid`` has open (empty when it is gone or not ours to look at)."""
    found = []
    try:
        entries = list((Path("/proc") / str(pid) / "fd").iterdir())
    except OSError:
        return []
    for entry in entries:
        try:
            found.append(Path(entry.readlink()))
        except OSError:
            continue
    return found


@contextlib.contextmanager
def sigint_as_from_a_terminal() -> Iterator[None]:
    """Children started inside get SIGINT's default disposition, as a program started from a terminal has.

    A test run started in the background (``nohup``, ``cmd &`` in a script) inherits SIGINT *ignored* and passes that
    on to its children, where Python then installs no Ctrl-C handler: such a child would never see a test's Ctrl-C.
    While inside, this process catches SIGINT itself (Python's own handler), which a child's ``exec`` resets to the
    default. Outside the main thread, where no handler can be set, it changes nothing.
    """
    if threading.current_thread() is not threading.main_thread() or signal.getsignal(signal.SIGINT) != signal.SIG_IGN:
        yield
        return
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
