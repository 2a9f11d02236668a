"""The result files of ``edgeaff infer``, written atomically.

============================  ========================================================================================
``<name>.csv``                one row per frame: ``frame, time_s, <dimensions>, face, audio`` (+ ``latency_ms`` when
                              streaming)
``<name>.txt``                the ABAW submission format: header ``valence,arousal`` (written in that order, whatever
                              the reference's set-built header did), one row per frame; only when the bundle has both
``<name>.models.csv``         raw per-model predictions before ensembling, one column per model in manifest order
                              (``--prepared`` always, otherwise with ``--per-model``)
``<name>.json``               the run summary (written last)
============================  ========================================================================================

Every file is written to a hidden temporary name beside its destination and renamed when the run succeeds, the
summary last; a failed or interrupted run leaves no file under a result name (only ``.*.tmp`` files after a hard
kill). Streaming runs write rows as they come, into the temporary files.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import IO, Any

import numpy as np

from edgeaff.runtime.errors import InvalidInputError
from edgeaff.runtime.files import atomic_output

SUBMISSION_COLUMNS = ("valence", "arousal")


class ResultFiles:
    """Open result files for one run; use as a context manager (renamed into place only on success).

    Args:
        out_dir: output directory (created).
        name: file-name stem.
        dimensions: the dimension columns, in order.
        model_names: per-model columns for ``<name>.models.csv``, or ``None`` for no such file.
        latency: add a ``latency_ms`` column.
    """

    def __init__(
        self,
        out_dir: Path,
        name: str,
        *,
        dimensions: Sequence[str],
        model_names: Sequence[str] | None,
        latency: bool,
    ) -> None:
        if not dimensions:
            raise InvalidInputError("the bundle has no valence or arousal model")
        self.out_dir = Path(out_dir)
        self.name = name
        self.dimensions = tuple(dimensions)
        self.model_names = None if model_names is None else tuple(model_names)
        self.latency = latency
        self.summary: dict[str, Any] | None = None
        self.paths: dict[str, Path] = {}
        self.rows = 0
        self._stack = contextlib.ExitStack()
        self._handles: dict[str, IO[str]] = {}
        self._extra: dict[str, Path] = {}

    @property
    def submission(self) -> bool:
        """Whether the ABAW submission file is written (both dimensions present)."""
        return set(SUBMISSION_COLUMNS) <= set(self.dimensions)

    def __enter__(self) -> ResultFiles:
        try:
            self.out_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise InvalidInputError(f"cannot create the output folder {self.out_dir} ({exc.strerror})") from None
        stack = self._stack.__enter__()
        try:
            # Entered first, renamed last: the summary appears only after every other file is in place.
            self._summary_tmp = stack.enter_context(self._target("summary", f"{self.name}.json"))
            header = ["frame", "time_s", *self.dimensions, "face", "audio"] + (["latency_ms"] if self.latency else [])
            self._open("csv", f"{self.name}.csv", ",".join(header))
            if self.submission:
                self._open("txt", f"{self.name}.txt", ",".join(SUBMISSION_COLUMNS))
            if self.model_names is not None:
                self._open("models", f"{self.name}.models.csv", ",".join(["frame", "time_s", *self.model_names]))
        except BaseException:
            stack.__exit__(None, None, None)
            raise
        return self

    def _target(self, key: str, file_name: str) -> contextlib.AbstractContextManager[Path]:
        self.paths[key] = self.out_dir / file_name
        return atomic_output(self.paths[key])

    def _open(self, key: str, file_name: str, header: str) -> None:
        tmp = self._stack.enter_context(self._target(key, file_name))
        handle = self._stack.enter_context(open(tmp, "w", encoding="utf-8", newline="\n"))  # noqa: SIM115
        handle.write(header + "\n")
        self._handles[key] = handle

    def extra(self, key: str, file_name: str) -> Path:
        """A temporary path for another result file (plot, overlay), renamed with the others on success."""
        tmp = self._stack.enter_context(self._target(key, file_name))
        self._extra[key] = tmp
        return tmp

    def write(
        self,
        index: int,
        t_s: float,
        values: Mapping[str, float],
        *,
        face: bool,
        audio: bool,
        latency_ms: float | None = None,
        raw: np.ndarray | None = None,
    ) -> None:
        """Write one frame's row to every file."""
        cells = [
            str(index),
            f"{t_s:.6f}",
            *(f"{values[d]:.6f}" for d in self.dimensions),
            str(int(face)),
            str(int(audio)),
        ]
        if self.latency:
            cells.append("" if latency_ms is None else f"{latency_ms:.1f}")
        self._handles["csv"].write(",".join(cells) + "\n")
        if "txt" in self._handles:
            self._handles["txt"].write(f"{values['valence']:.6f},{values['arousal']:.6f}\n")
        if "models" in self._handles and raw is not None:
            self._handles["models"].write(",".join([str(index), f"{t_s:.6f}", *(f"{x:.9g}" for x in raw)]) + "\n")
        self.rows += 1

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc_type is None and self.summary is None:
            error = RuntimeError("ResultFiles closed without a summary")
            self._stack.__exit__(RuntimeError, error, None)  # removes the temporary files
            raise error
        if exc_type is None and self.summary is not None:
            document = {**self.summary, "outputs": {k: str(p) for k, p in self.paths.items()}}
            self._summary_tmp.write_text(json.dumps(document, indent=2, default=_jsonable) + "\n")
        self._stack.__exit__(exc_type, exc, tb)


def _jsonable(value: object) -> object:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"cannot write {type(value).__name__} to JSON")
