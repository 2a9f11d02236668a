"""Worker pools die with their parent: a SIGKILL of the command leaves no worker behind (issue 16, defect 2)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from process_tools import alive, wait_for

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="parent-death signals are Linux's")

POOL_SCRIPT = """
import os, sys, time
from pathlib import Path
from edgeaff.runtime.processes import process_pool

def _work(seconds):
    Path(f"started-{os.getpid()}").touch()
    time.sleep(seconds)

if __name__ == "__main__":
    with process_pool(2) as pool:
        futures = [pool.submit(_work, 600) for _ in range(2)]
        while len(list(Path().glob("started-*"))) < 2:
            time.sleep(0.05)
        print(" ".join(p.name.split("-")[1] for p in Path().glob("started-*")), flush=True)
        time.sleep(600)
"""


def test_workers_die_when_the_parent_is_killed(tmp_path: Path) -> None:
    script = tmp_path / "pool.py"
    script.write_text(POOL_SCRIPT)
    parent = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True, cwd=tmp_path)
    workers: list[int] = []
    try:
        assert parent.stdout is not None
        workers = [int(pid) for pid in parent.stdout.readline().split()]  # both are running a task
        assert len(workers) == 2 and all(alive(pid) for pid in workers)
        os.kill(parent.pid, signal.SIGKILL)
        parent.wait()
        # Without the parent-death signal the workers are adopted by init and sleep on for ten minutes.
        assert wait_for(lambda: not any(alive(pid) for pid in workers), 10), [p for p in workers if alive(p)]
    finally:
        parent.kill()
        parent.wait()
        for pid in workers:
            if alive(pid):
                os.kill(pid, signal.SIGKILL)


def test_die_with_parent_is_armed_and_a_worker_without_its_parent_exits() -> None:
    code = "import os\nfrom edgeaff.runtime.processes import die_with_parent\nprint(die_with_parent(os.getppid()))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert result.stdout.strip() == "True"
    orphan = (
        "import os\nfrom edgeaff.runtime.processes import die_with_parent\n"
        "die_with_parent(os.getppid() + 1)\nprint('on')"
    )
    result = subprocess.run([sys.executable, "-c", orphan], capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 1 and "on" not in result.stdout  # a worker whose parent is gone exits at once
