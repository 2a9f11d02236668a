"""Files edgeaff writes and reads: atomic output, bounded JSON, work folders it can recognise, the umask's modes.

* :func:`atomic_output`: a result file either exists complete or not at all; :func:`remove_stale_temporaries`
  clears what a killed run of it left.
* :func:`read_json` / :func:`parse_json`: every JSON document edgeaff reads (bundle manifests, checkpoint metadata,
  safetensors headers, ``dataset.json``, ``runs.json``, engine sidecars) goes through one bounded reader: a size
  limit before anything is parsed and a nesting-depth limit after, each refused with one line.
* :func:`work_directory` / :func:`remove_stale_work_directories`: hidden folders a command builds its output in
  (``.NAME.partial-…``, ``.tmp-…``). Each holds a marker file that the running process keeps locked; a later run
  removes only folders that carry the marker and whose lock is free (their writer is gone), never anything else.
* Folders and files are created with the modes the umask gives (0755/0644 under umask 022), never ``mkdtemp``'s or
  ``mkstemp``'s private 0700/0600, so another account (a Jetson's service user) can read what edgeaff wrote.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from edgeaff.runtime.errors import InvalidInputError

JSON_MAX_BYTES = 64 * 1024 * 1024
"""Default size limit of a JSON document (the largest edgeaff writes, a big ``dataset.json``, is well under 1 MB)."""
JSON_MAX_DEPTH = 32
"""Default nesting limit: edgeaff's documents nest at most about eight levels."""
WORK_MARKER = ".edgeaff-work"
"""Name of the marker file inside a work directory (see :func:`work_directory`)."""


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it is fsynced and renamed onto ``path``.

    If the body raises (or the process dies), ``path`` is left untouched and the temporary file is removed
    (or, after a hard kill, left as ``.<name>.<pid>.<random>.tmp``, a name no reader mistakes for a result and
    :func:`stale_temporary` recognises once that process is gone). An operating-system error with an errno that
    names no file (a full disk during a write) is given ``path`` as its file name, so the message can say where it
    happened.

    Example:
        >>> import tempfile, pathlib
        >>> out = pathlib.Path(tempfile.mkdtemp()) / "result.txt"
        >>> with atomic_output(out) as tmp:
        ...     _ = tmp.write_text("done")
        >>> out.read_text()
        'done'
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.{os.getpid()}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    with contextlib.suppress(OSError):
        os.chmod(tmp, 0o666 & ~current_umask())  # what open() would have given the file, not mkstemp's 0600
    try:
        yield tmp
        # Again after the body: some writers (safetensors) replace the file with a new private (0600) one.
        os.chmod(tmp, 0o666 & ~current_umask())
        with open(tmp, "rb+") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, target)
        _fsync_directory(target.parent)
    except BaseException as exc:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        if isinstance(exc, OSError) and exc.errno is not None and exc.filename is None:
            exc.filename = str(target)
        raise


def stale_temporary(file_name: str) -> bool:
    """Whether ``file_name`` is a temporary file of :func:`atomic_output` whose process no longer runs."""
    parts = file_name.split(".")
    if len(parts) < 4 or parts[0] != "" or parts[-1] != "tmp" or not parts[-3].isdigit():
        return False
    pid = int(parts[-3])
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except OSError:  # the process exists but belongs to someone else
        return False
    return _zombie(pid)


def _zombie(pid: int) -> bool:
    """Whether ``pid`` has ended but not been reaped yet (a killed worker whose parent is gone, in a container whose
    first process does not reap orphans): it signals like a live process but will never finish its file."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False  # no /proc (not Linux) or gone meanwhile: the signal test above decides
    fields = stat.rsplit(")", 1)[-1].split()
    return bool(fields) and fields[0] in ("Z", "X")


def remove_stale_temporaries(folder: str | os.PathLike[str], names: Iterable[str]) -> list[Path]:
    """Remove the temporaries that killed runs of :func:`atomic_output` left in ``folder`` for targets whose file
    names start with one of ``names``; returns what was removed.

    Only files of exactly the pattern ``atomic_output`` gives (``.<target>.<pid>.<random>.tmp``) are touched, only
    regular files, and only when the process that made them is gone (:func:`stale_temporary`).
    """
    prefixes = tuple(f".{name}" for name in names)
    removed = []
    with contextlib.suppress(OSError):
        for entry in os.scandir(folder):
            if not (entry.name.startswith(prefixes) and entry.is_file(follow_symlinks=False)):
                continue
            if stale_temporary(entry.name):
                with contextlib.suppress(OSError):
                    os.unlink(entry.path)
                    removed.append(Path(entry.path))
    return removed


def current_umask() -> int:
    """The process's umask, read without changing it where Linux allows (``/proc/self/status``)."""
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    mask = os.umask(0o022)  # elsewhere: set and restore (not thread-safe, hence the /proc path first)
    os.umask(mask)
    return mask


def apply_umask(path: str | os.PathLike[str]) -> None:
    """Give ``path`` the mode a plain ``mkdir``/``open`` would have: 0777 (folders) or 0666 (files) minus the umask."""
    target = Path(path)
    base = 0o777 if target.is_dir() else 0o666
    os.chmod(target, base & ~current_umask())


def _fsync_directory(directory: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def sha256_file(path: str | os.PathLike[str], *, chunk_size: int = 1 << 20) -> str:
    """Return the hex sha256 of a file's content."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(chunk_size):
            digest.update(chunk)
    return digest.hexdigest()


# ---------------------------------------------------------------------------------------------------------------------
# Bounded JSON


def _depth(document: Any) -> int:
    """Nesting depth of a parsed JSON value (a scalar is 0, ``[]`` is 1), without recursion."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(document, 0)]
    while stack:
        value, level = stack.pop()
        if isinstance(value, dict):
            children: Any = value.values()
        elif isinstance(value, list):
            children = value
        else:
            continue
        level += 1
        deepest = max(deepest, level)
        stack.extend((child, level) for child in children)
    return deepest


def parse_json(
    text: str | bytes,
    *,
    source: str,
    max_bytes: int = JSON_MAX_BYTES,
    max_depth: int = JSON_MAX_DEPTH,
    error: type[InvalidInputError] = InvalidInputError,
) -> Any:
    """Parse a JSON document that came from outside, within a size and a nesting limit.

    Args:
        text: the document.
        source: what it is, for messages (a path, or ``"PATH: edgeaff metadata"``).
        max_bytes: longest document accepted (bytes when given bytes, characters when given text).
        max_depth: deepest nesting of arrays and objects accepted.
        error: the exception class raised (a subclass of :class:`InvalidInputError`).

    Returns:
        The parsed value.

    Raises:
        InvalidInputError: (or ``error``) too large, not UTF-8, not JSON, or nested too deeply, with one line.

    Example:
        >>> parse_json('{"a": [1, 2]}', source="example")
        {'a': [1, 2]}
    """
    if len(text) > max_bytes:
        raise error(f"{source}: {len(text)} bytes of JSON is more than the {max_bytes} this file may have")
    try:
        document = json.loads(text)
    except RecursionError:
        raise error(f"{source}: JSON nested more deeply than {max_depth} levels; not a file edgeaff wrote") from None
    except UnicodeDecodeError as exc:
        raise error(f"{source}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except ValueError as exc:  # json.JSONDecodeError, and over-long integers
        raise error(f"{source}: not valid JSON ({exc})") from None
    if _depth(document) > max_depth:
        raise error(f"{source}: JSON nested more deeply than {max_depth} levels; not a file edgeaff wrote")
    return document


def read_json(
    path: str | os.PathLike[str],
    *,
    max_bytes: int = JSON_MAX_BYTES,
    max_depth: int = JSON_MAX_DEPTH,
    error: type[InvalidInputError] = InvalidInputError,
) -> Any:
    """Read a JSON file within a size and a nesting limit (see :func:`parse_json`).

    At most ``max_bytes + 1`` bytes are read, whatever the file's size, so a huge or endless file (a FIFO, a
    device) costs nothing.

    Raises:
        InvalidInputError: (or ``error``) a missing or unreadable file, too large, not JSON, or nested too deeply.
    """
    file = Path(path)
    try:
        with open(file, "rb") as handle:
            data = handle.read(max_bytes + 1)
    except FileNotFoundError:
        raise error(f"{file}: not found") from None
    except IsADirectoryError:
        raise error(f"{file}: is a folder, not a JSON file") from None
    except OSError as exc:
        raise error(f"{file}: cannot be read ({exc.strerror or exc})") from None
    if len(data) > max_bytes:
        raise error(f"{file}: larger than the {max_bytes} bytes this file may have; not a file edgeaff wrote")
    return parse_json(data, source=str(file), max_bytes=max_bytes, max_depth=max_depth, error=error)


# ---------------------------------------------------------------------------------------------------------------------
# Work directories that edgeaff made and can recognise later


@dataclasses.dataclass
class WorkDirectory:
    """A hidden folder an edgeaff process is building something in (see :func:`work_directory`)."""

    path: Path
    _lock_fd: int | None = None

    def unmark(self) -> None:
        """Remove the marker before the folder is renamed into place (the lock is kept until the context ends).

        A folder without a marker is never removed by :func:`remove_stale_work_directories`, so a concurrent
        cleaner cannot touch it between this call and the rename.
        """
        with contextlib.suppress(FileNotFoundError):
            (self.path / WORK_MARKER).unlink()


@contextlib.contextmanager
def work_directory(parent: str | os.PathLike[str], prefix: str) -> Iterator[WorkDirectory]:
    """Create ``parent/<prefix><random>`` with the umask's mode, marked and locked as this process's work.

    The caller fills the folder, calls :meth:`WorkDirectory.unmark` and renames it into place. If the body raises,
    the folder is removed; if the process is killed, the folder stays with its marker, and the next
    :func:`remove_stale_work_directories` with the same ``prefix`` removes it.

    Example:
        >>> import tempfile, pathlib, os
        >>> parent = pathlib.Path(tempfile.mkdtemp())
        >>> with work_directory(parent, ".result.partial-") as work:
        ...     _ = (work.path / "data.txt").write_text("x")
        ...     work.unmark()
        ...     os.replace(work.path, parent / "result")
        >>> sorted(p.name for p in parent.iterdir())
        ['result']
    """
    base = Path(parent)
    base.mkdir(parents=True, exist_ok=True)
    path = Path(tempfile.mkdtemp(prefix=prefix, dir=base))
    work = WorkDirectory(path)
    try:
        apply_umask(path)
        fd = os.open(path / WORK_MARKER, os.O_RDWR | os.O_CREAT, 0o644)
        work._lock_fd = fd
        fcntl.flock(fd, fcntl.LOCK_EX)
        os.write(fd, f"edgeaff work directory of process {os.getpid()}\n".encode())
        yield work
    except BaseException:
        shutil.rmtree(path, ignore_errors=True)
        raise
    finally:
        if work._lock_fd is not None:
            os.close(work._lock_fd)
            work._lock_fd = None


def remove_stale_work_directories(parent: str | os.PathLike[str], prefix: str) -> list[Path]:
    """Remove the work directories under ``parent`` named ``<prefix>…`` whose process is gone.

    A folder is removed only if it is a real folder (not a link), carries the :data:`WORK_MARKER` file, and that
    marker's lock can be taken (no running process holds it). Anything else with a similar name is left alone.

    Returns:
        The folders removed.
    """
    base = Path(parent)
    removed: list[Path] = []
    if not base.is_dir():
        return removed
    for candidate in sorted(base.glob(f"{glob_escape(prefix)}*")):
        marker = candidate / WORK_MARKER
        if candidate.is_symlink() or not candidate.is_dir() or marker.is_symlink() or not marker.is_file():
            continue
        try:
            fd = os.open(marker, os.O_RDONLY | os.O_NOFOLLOW)
        except OSError:
            continue
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                continue  # its process is still working in it
            shutil.rmtree(candidate, ignore_errors=True)
            if not candidate.exists():
                removed.append(candidate)
        finally:
            os.close(fd)
    return removed


def glob_escape(text: str) -> str:
    """``text`` with the glob wildcards ``*?[`` escaped, for building a pattern from a file name."""
    return "".join(f"[{c}]" if c in "*?[" else c for c in text)


def overlaps(a: str | os.PathLike[str], b: str | os.PathLike[str]) -> bool:
    """Whether two paths are the same, or one lies inside the other (after resolving links)."""
    first, second = Path(a).resolve(), Path(b).resolve()
    return first == second or first.is_relative_to(second) or second.is_relative_to(first)
