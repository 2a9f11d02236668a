"""The ``edgeaff`` typer app, its ``--version`` option and the console entry point :func:`main`.

The commands live in the sibling modules and are registered on the app by :mod:`edgeaff.cli`.
"""

from __future__ import annotations

import errno
import sys
from typing import Annotated

import typer

import edgeaff
from edgeaff.runtime.errors import EdgeaffError

app = typer.Typer(
    name="edgeaff",
    help="Audio-visual continuous emotion recognition (valence/arousal): train, export, and run on the edge.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
)


def _version_callback(value: bool) -> None:
    if value:
        typer.echo(f"edgeaff {edgeaff.__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", callback=_version_callback, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    """Audio-visual continuous emotion recognition (valence/arousal): train, export, and run on the edge."""


def main(argv: list[str] | None = None) -> None:
    """Console entry point: the one boundary where problems the user can fix become one line, without a traceback.

    * :class:`~edgeaff.runtime.errors.EdgeaffError`: its message, with its exit code (2 for bad input).
    * Operating-system errors about a path the user chose (:data:`USER_FIXABLE_ERRNOS`: permission, full disk,
      read-only file system, a file where a folder is needed, ...): the path, what went wrong and what to do; exit 2.
    * PyTorch's "CUDA requested but not available" errors: one line, exit 2.

    Everything else is a bug and keeps its traceback. Usage errors (unknown options, missing arguments) are reported
    by typer itself with exit code 2.
    """
    try:
        app(args=argv, prog_name="edgeaff")
    except EdgeaffError as exc:
        typer.echo(f"error: {exc}", err=True)
        sys.exit(exc.exit_code)
    except OSError as exc:
        message = describe_os_error(exc)
        if message is None:
            raise
        typer.echo(f"error: {message}", err=True)
        sys.exit(2)
    except (RuntimeError, AssertionError) as exc:
        if not cuda_unavailable(exc):
            raise
        typer.echo(
            f"error: CUDA was requested but PyTorch cannot use it here ({_first_line(exc)}); "
            "use --device cpu, or install a CUDA build of PyTorch on a machine with an NVIDIA GPU",
            err=True,
        )
        sys.exit(2)


USER_FIXABLE_ERRNOS: dict[int, str] = {
    errno.EACCES: "permission denied; choose a location you can write to (or read, for an input), or fix its "
    "permissions",
    errno.EPERM: "operation not permitted; choose another location or fix its permissions",
    errno.ENOSPC: "no space left on the device; free some space or choose an output on another disk",
    errno.EDQUOT: "disk quota exceeded; free some space or choose an output on another disk",
    errno.EROFS: "read-only file system; choose an output on a writable disk",
    errno.ENOTDIR: "a part of this path is a file, not a folder; choose another path",
    errno.EEXIST: "already exists (a file where a folder is needed?); choose another path",
    errno.EISDIR: "is a folder where a file is needed; choose another path",
    errno.ENAMETOOLONG: "the name is too long for the file system; choose a shorter path",
    errno.ELOOP: "too many levels of symbolic links; choose another path",
    errno.ENOENT: "no such file or folder; check the path",
}
"""errno -> what went wrong and what to do. Other errnos (EIO, EMFILE, ...) keep their traceback."""


def describe_os_error(exc: OSError) -> str | None:
    """One line for an operating-system error the user can fix, or ``None`` when it is not one (a bug).

    An error without a path is described only for a full disk or quota, where the path rarely matters.
    """
    advice = USER_FIXABLE_ERRNOS.get(exc.errno) if exc.errno is not None else None
    if advice is None:
        return None
    paths = [str(p) for p in (exc.filename, exc.filename2) if p is not None]
    if not paths and exc.errno not in (errno.ENOSPC, errno.EDQUOT):
        return None
    where = " -> ".join(paths)
    return f"{where}: {advice}" if where else advice


_CUDA_UNAVAILABLE = (
    "Torch not compiled with CUDA enabled",
    "Found no NVIDIA driver",
    "No CUDA GPUs are available",
    "CUDA driver version is insufficient",
    "no CUDA-capable device is detected",
)


def cuda_unavailable(exc: BaseException) -> bool:
    """Whether ``exc`` is PyTorch saying that CUDA was asked for but cannot be used on this machine."""
    text = str(exc)
    return any(marker in text for marker in _CUDA_UNAVAILABLE)


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__
