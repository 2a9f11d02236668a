"""The one boundary in edgeaff.cli.app.main: operating-system errors the user can fix and "CUDA requested but
unavailable" become one ``error:`` line naming the path and what to do; real bugs keep their traceback."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from edgeaff.cli import main
from edgeaff.cli.app import describe_os_error


def one_error(args: list[str], capsys: pytest.CaptureFixture[str], code: int = 2) -> str:
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    assert exit_info.value.code == code
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and "Traceback" not in err, err
    return errors[0]


def test_an_output_under_a_file_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    blocker = tmp_path / "report.txt"
    blocker.write_text("not a folder")
    line = one_error(["synth", str(blocker / "data"), "--seconds", "2"], capsys)
    assert str(blocker) in line and "a file where a folder is needed" in line
    assert blocker.read_text() == "not a folder"


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_an_unwritable_output_folder_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        line = one_error(["synth", str(locked / "data"), "--seconds", "2"], capsys)
        assert str(locked) in line and "permission denied" in line
    finally:
        locked.chmod(0o700)


def _failing_prepare(exc: BaseException):  # type: ignore[no-untyped-def]
    def prepare_dataset(*args: object, **kwargs: object) -> None:
        raise exc

    return prepare_dataset


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (PermissionError(errno.EACCES, "Permission denied", "/data/out/t1"), "/data/out/t1: permission denied"),
        (OSError(errno.ENOSPC, "No space left on device", "/data/out/t1/frame.npy"), "no space left on the device"),
        (OSError(errno.ENOSPC, "No space left on device"), "no space left on the device; free some space"),
        (OSError(errno.EROFS, "Read-only file system", "/mnt/ro/out"), "/mnt/ro/out: read-only file system"),
        (FileExistsError(errno.EEXIST, "File exists", "/data/out"), "/data/out: already exists"),
        (AssertionError("Torch not compiled with CUDA enabled"), "CUDA was requested but PyTorch cannot use it"),
        (RuntimeError("Found no NVIDIA driver on your system."), "use --device cpu"),
    ],
)
def test_user_fixable_errors_are_one_line(
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    exc: BaseException,
    expected: str,
) -> None:
    import edgeaff.train.prepare

    monkeypatch.setattr(edgeaff.train.prepare, "prepare_dataset", _failing_prepare(exc))
    args = ["prepare", str(tmp_path), str(tmp_path / "out"), "--vggish-weights", "random:1"]
    assert expected in one_error(args, capsys)


@pytest.mark.parametrize(
    "exc",
    [
        OSError(errno.EIO, "Input/output error", "/dev/sdz"),  # not something a user fixes by choosing a path
        OSError(errno.EACCES, "Permission denied"),  # no path: a bug, not a user's choice
        ValueError("a real bug"),
        RuntimeError("CUDA error: an illegal memory access was encountered"),
    ],
)
def test_real_bugs_keep_their_traceback(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, exc: BaseException) -> None:
    import edgeaff.train.prepare

    monkeypatch.setattr(edgeaff.train.prepare, "prepare_dataset", _failing_prepare(exc))
    with pytest.raises(type(exc)):
        main(["prepare", str(tmp_path), str(tmp_path / "out"), "--vggish-weights", "random:1"])


def test_messages_name_both_paths_of_a_rename() -> None:
    exc = OSError(errno.EXDEV, "Invalid cross-device link", "/a", None, "/b")
    assert describe_os_error(exc) is None
    exc = OSError(errno.ENOTDIR, "Not a directory", "/a/file", None, "/b")
    assert describe_os_error(exc) == "/a/file -> /b: a part of this path is a file, not a folder; choose another path"


@pytest.mark.parametrize("command", [["prepare", "raw", "prepared"], ["train", "prepared", "-o", "run"]])
def test_a_bad_ray_address_is_refused_when_parsed(
    command: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # nothing is read or made: the option fails first
    line = one_error([*command, "--ray", "host without port"], capsys)
    assert "--ray 'host without port'" in line and "HOST:PORT" in line
    assert not list(tmp_path.iterdir())
