"""edgeaff.runtime.files: bounded JSON, work folders only edgeaff's own cleaner removes, the umask's modes."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from edgeaff.runtime.errors import InvalidInputError
from edgeaff.runtime.files import (
    WORK_MARKER,
    atomic_output,
    current_umask,
    parse_json,
    read_json,
    remove_stale_work_directories,
    work_directory,
)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_deeply_nested_json_is_one_error_not_a_recursion_error(tmp_path: Path) -> None:
    # 100 000 levels: json.loads alone raises RecursionError; 40 levels parse but are over the limit.
    for depth in (100_000, 40):
        path = tmp_path / f"deep{depth}.json"
        path.write_text("[" * depth + "]" * depth)
        with pytest.raises(InvalidInputError, match="nested more deeply than 32 levels"):
            read_json(path)
    path.write_text("[" * 32 + "]" * 32)
    assert read_json(path) == json.loads(path.read_text())
    nested_objects = '{"a":' * 33 + "1" + "}" * 33
    with pytest.raises(InvalidInputError, match="nested more deeply"):
        parse_json(nested_objects, source="inline")


def test_size_limit_is_checked_before_parsing(tmp_path: Path) -> None:
    path = tmp_path / "big.json"
    path.write_text(json.dumps({"x": "a" * 5000}))
    with pytest.raises(InvalidInputError, match="larger than the 1000 bytes"):
        read_json(path, max_bytes=1000)
    assert read_json(path, max_bytes=6000)["x"] == "a" * 5000


def test_bad_documents_are_one_line_with_the_path(tmp_path: Path) -> None:
    cases = {
        "broken.json": b'{"a": ',
        "latin1.json": '{"a": "caf\xe9"}'.encode("latin-1"),
        "huge_int.json": b"1" * 5000,  # Python refuses to convert an integer this long (ValueError)
    }
    for name, data in cases.items():
        (tmp_path / name).write_bytes(data)
        with pytest.raises(InvalidInputError) as info:
            read_json(tmp_path / name)
        assert str(tmp_path / name) in str(info.value) and "\n" not in str(info.value)
    with pytest.raises(InvalidInputError, match="not found"):
        read_json(tmp_path / "absent.json")
    with pytest.raises(InvalidInputError, match="is a folder"):
        read_json(tmp_path)

    class MyError(InvalidInputError):
        pass

    with pytest.raises(MyError):
        parse_json("[", source="x", error=MyError)


def _hold_lock_in_another_process(folder: Path) -> subprocess.Popen[str]:
    """A process that creates a work directory in ``folder`` and keeps it (and its lock) until killed."""
    code = (
        "import sys, time\n"
        "from edgeaff.runtime.files import work_directory\n"
        f"with work_directory({str(folder)!r}, '.out.partial-') as work:\n"
        "    print(work.path, flush=True)\n"
        "    time.sleep(600)\n"
    )
    return subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)


def test_only_marked_work_folders_of_dead_processes_are_removed(tmp_path: Path) -> None:
    live = _hold_lock_in_another_process(tmp_path)
    try:
        assert live.stdout is not None
        live_dir = Path(live.stdout.readline().strip())
        killed = _hold_lock_in_another_process(tmp_path)
        assert killed.stdout is not None
        killed_dir = Path(killed.stdout.readline().strip())
        killed.kill()  # SIGKILL: its folder stays, marked, with nobody holding the lock
        killed.wait()
        assert (killed_dir / WORK_MARKER).is_file()
        foreign = tmp_path / ".out.partial-mine"  # same name pattern, but nothing edgeaff made
        foreign.mkdir()
        (foreign / "notes.txt").write_text("keep")
        unrelated = tmp_path / "out"
        unrelated.mkdir()

        removed = remove_stale_work_directories(tmp_path, ".out.partial-")

        assert removed == [killed_dir]
        assert not killed_dir.exists()
        assert live_dir.is_dir() and (live_dir / WORK_MARKER).is_file()  # its process is still working
        assert (foreign / "notes.txt").read_text() == "keep" and unrelated.is_dir()
    finally:
        live.kill()
        live.wait()
    assert remove_stale_work_directories(tmp_path, ".out.partial-") == [live_dir]


def test_work_directory_is_removed_on_failure_and_unmarked_before_publishing(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError), work_directory(tmp_path, ".w-") as work:
        (work.path / "part").write_text("x")
        raise RuntimeError("failed")
    assert list(tmp_path.iterdir()) == []
    with work_directory(tmp_path, ".w-") as work:
        work.unmark()
        os.replace(work.path, tmp_path / "done")
    assert sorted(p.name for p in (tmp_path / "done").iterdir()) == []


def test_folders_and_files_get_the_umask_modes(tmp_path: Path) -> None:
    previous = os.umask(0o022)
    try:
        assert current_umask() == 0o022
        with work_directory(tmp_path, ".w-") as work:
            assert _mode(work.path) == 0o755  # not mkdtemp's 0700

        def private_writer(path: Path) -> None:
            # What safetensors does: a new file created 0600 in place of the temporary one.
            path.unlink()
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            os.write(fd, b"data")
            os.close(fd)

        with atomic_output(tmp_path / "result.bin") as tmp:
            private_writer(tmp)
        assert _mode(tmp_path / "result.bin") == 0o644
        os.umask(0o027)
        with atomic_output(tmp_path / "group.bin") as tmp:
            private_writer(tmp)
        assert _mode(tmp_path / "group.bin") == 0o640
    finally:
        os.umask(previous)


def test_a_full_disk_error_names_the_file_being_written(tmp_path: Path) -> None:
    import errno

    with pytest.raises(OSError) as info, atomic_output(tmp_path / "out.csv"):
        raise OSError(errno.ENOSPC, "No space left on device")
    assert info.value.filename == str(tmp_path / "out.csv")
    assert list(tmp_path.iterdir()) == []
