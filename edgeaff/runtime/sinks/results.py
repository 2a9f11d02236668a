"""A run's result files, written atomically: :class:`ResultSet` and :func:`write_results`.

Every file is written to a hidden temporary name beside its destination and renamed when the run succeeds, the
JSON summary last, so a summary proves that every other file is complete. A failed or interrupted run leaves no
file under a result name (after a hard kill only ``.<name>.*.tmp`` files, which a later run removes). Streaming runs
write rows as they come, into the temporary files.

:func:`write_results` is ``edgeaff infer``: a :class:`~edgeaff.runtime.pipeline.run.PipelineRun` and the sinks its
options ask for.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np

from edgeaff.runtime.errors import InvalidInputError
from edgeaff.runtime.files import atomic_output
from edgeaff.runtime.files import remove_stale_temporaries as remove_stale_files
from edgeaff.runtime.io.sources import SourceTimeoutError
from edgeaff.runtime.pipeline.options import Mode
from edgeaff.runtime.pipeline.prediction import Prediction
from edgeaff.runtime.pipeline.run import PipelineRun
from edgeaff.runtime.sinks.base import RunContext, Sink


@dataclasses.dataclass(frozen=True)
class Outputs:
    """Which result files and printing a run gets, besides ``<name>.csv`` and ``<name>.json`` (always).

    Attributes:
        per_model: ``<name>.models.csv`` with each model's raw prediction.
        overlay: ``<name>.overlay.mp4``: the video with the face box and a valence-arousal widget.
        plot: ``<name>.png``: the traces over time.
        live: print each prediction as it comes (stream mode).
    """

    per_model: bool = False
    overlay: bool = False
    plot: bool = False
    live: bool = False


@dataclasses.dataclass(frozen=True)
class Results:
    """What a run wrote: its summary document and the result files by kind (``csv``, ``txt``, ``models``, ...)."""

    summary: dict[str, Any]
    paths: dict[str, Path]


class ResultSet:
    """Temporary files for one run's results, renamed into place together on success (the summary last).

    Args:
        out_dir: the output directory (created).
        name: the file-name stem.
    """

    def __init__(self, out_dir: str | Path, name: str) -> None:
        self.out_dir = Path(out_dir)
        self.name = name
        self.paths: dict[str, Path] = {}
        self.summary: dict[str, Any] | None = None
        self._stack = contextlib.ExitStack()
        self._summary_tmp: Path | None = None

    def __enter__(self) -> ResultSet:
        try:
            self.out_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise InvalidInputError(f"cannot create the output folder {self.out_dir} ({exc.strerror})") from None
        remove_stale_temporaries(self.out_dir, self.name)
        self._stack.__enter__()
        try:
            # Entered first, renamed last: the summary appears only after every other file is in place.
            self._summary_tmp = self.target("summary", f"{self.name}.json")
        except BaseException:
            self._stack.__exit__(None, None, None)
            raise
        return self

    def target(self, key: str, file_name: str) -> Path:
        """A temporary path for result ``key`` (final name ``file_name``), renamed on success."""
        self.paths[key] = self.out_dir / file_name
        return self._stack.enter_context(atomic_output(self.paths[key]))

    def enter(self, manager: contextlib.AbstractContextManager[Any]) -> Any:
        """Enter ``manager`` (a sink's open file) so that it closes before the files are renamed."""
        return self._stack.enter_context(manager)

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc_type is None and self.summary is None:
            error = RuntimeError("ResultSet closed without a summary")
            self._stack.__exit__(RuntimeError, error, None)  # removes the temporary files
            raise error
        if exc_type is None and self.summary is not None and self._summary_tmp is not None:
            document = {**self.summary, "outputs": {k: str(p) for k, p in self.paths.items()}}
            self._summary_tmp.write_text(json.dumps(document, indent=2, default=_jsonable) + "\n")
        self._stack.__exit__(exc_type, exc, tb)


def remove_stale_temporaries(out_dir: Path, name: str) -> list[Path]:
    """Remove the temporary result files of ``name`` that a killed run left in ``out_dir`` (only this run's result
    names, only when the process that made them is gone: :func:`edgeaff.runtime.files.remove_stale_temporaries`)."""
    return remove_stale_files(out_dir, (*(f"{name}{suffix}." for suffix in _SUFFIXES), f"{name}.track"))


_SUFFIXES = (".csv", ".txt", ".models.csv", ".json", ".overlay.mp4", ".png")


def _jsonable(value: object) -> object:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"cannot write {type(value).__name__} to JSON")


def build_sinks(files: ResultSet, context: RunContext, outputs: Outputs, *, show: Callable[[str], None]) -> list[Sink]:
    """The sinks ``outputs`` asks for, writing into ``files``' temporary paths."""
    from edgeaff.runtime.sinks.tables import CsvSink, ModelsCsvSink, SubmissionSink, TrackSubmissionSink

    name = files.name
    sinks: list[Sink] = [files.enter(CsvSink(files.target("csv", f"{name}.csv"), context))]
    if context.tracks:
        if TrackSubmissionSink.applies(context):
            sinks.append(TrackSubmissionSink(files.target, context))
    elif SubmissionSink.applies(context):
        sinks.append(files.enter(SubmissionSink(files.target("txt", f"{name}.txt"), context)))
    if outputs.per_model:
        sinks.append(files.enter(ModelsCsvSink(files.target("models", f"{name}.models.csv"), context)))
    if outputs.overlay:
        from edgeaff.runtime.sinks.overlay import OverlaySink

        sinks.append(files.enter(OverlaySink(files.target("overlay", f"{name}.overlay.mp4"), context)))
    if outputs.plot:
        from edgeaff.runtime.sinks.plot import PlotSink

        sinks.append(PlotSink(files.target("plot", f"{name}.png"), context))
    if outputs.live:
        from edgeaff.runtime.sinks.live import LiveSink

        sinks.append(LiveSink(show, context))
    return sinks


def write_results(
    run: PipelineRun,
    out_dir: str | Path,
    *,
    name: str | None = None,
    outputs: Outputs | None = None,
    echo: Callable[[str], None] = print,
    show: Callable[[str], None] = print,
    sinks: Sequence[Sink] = (),
) -> Results:
    """Run ``run`` to its end and write its result files into ``out_dir`` (see the module docstring).

    ``echo`` gets the final line (frames, speed, files); ``show`` the per-frame lines of ``outputs.live``; ``sinks``
    are more consumers of the same predictions (the application's own), fed after the result files.

    Raises:
        InvalidInputError: options that do not fit the source (``live`` offline, ``overlay`` without images).
        SourceTimeoutError: a live source went silent (the results of the frames received are written first).
        and whatever the run raises.
    """
    outputs = outputs or Outputs()
    started = time.perf_counter()
    with run:
        context = RunContext.of(run)
        if outputs.live and context.mode is not Mode.STREAM:
            raise InvalidInputError("--live prints predictions as they come, which needs --mode stream")
        if outputs.overlay and not run.pipeline.options.images:
            raise InvalidInputError("an overlay needs the frames: make the pipeline with images=True")
        if outputs.per_model and not run.pipeline.options.per_model:
            raise InvalidInputError("per-model results need a pipeline made with per_model=True")
        timeout: SourceTimeoutError | None = None
        with ResultSet(out_dir, name or context.info.name) as files:
            consumers = [*build_sinks(files, context, outputs, show=show), *sinks]
            rows = 0
            try:
                for prediction in run:
                    rows += 1
                    _write(consumers, prediction, run)
            except SourceTimeoutError as exc:
                timeout = exc
            except KeyboardInterrupt:
                if not context.info.live:
                    raise
                echo("stopped by the user (Ctrl-C); writing the results of the frames so far")
                for prediction in run.stop():
                    rows += 1
                    _write(consumers, prediction, run)
            summary = run.report()
            for sink in consumers:
                summary.update(sink.finish())
            files.summary = summary
    wall = time.perf_counter() - started
    if timeout is not None:
        raise SourceTimeoutError(f"{timeout}; the results of the {rows} frames received were written")
    echo(f"{rows} frames in {wall:.1f} s ({rows / wall if wall > 0 else 0:.1f} frames/s) -> "
         + ", ".join(str(p) for p in files.paths.values()))  # fmt: skip
    return Results(files.summary or {}, dict(files.paths))


def _write(sinks: list[Sink], prediction: Prediction, run: PipelineRun) -> None:
    for sink in sinks:
        with run.timer.measure(sink.stage):
            sink.write(prediction)
