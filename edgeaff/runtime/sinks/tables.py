"""Text result files, one row per frame.

============================  ========================================================================================
``<name>.csv``                ``frame, time_s, <dimensions>, face, audio`` (+ ``gap`` for live sources, + ``latency_ms``
                              in stream mode); multi-face mode: ``frame, time_s, track, ...``, one row per frame and
                              track (long format), sorted by frame then track
``<name>.txt``                the ABAW submission format: header ``valence,arousal`` (in that order, whatever the
                              reference's set-built header did), one row per frame; only when the bundle has both
``<name>.track<K>.txt``       multi-face mode, sources that end: the same format for track K, one row per frame of
                              the source (Aff-Wild2's ``_left``/``_right`` files are one per person), ``-5,-5`` where
                              the track does not exist (Aff-Wild2's value for a frame without a label)
``<name>.models.csv``         raw per-model predictions before ensembling, one column per model in manifest order
                              (multi-face mode: with a ``track`` column)
============================  ========================================================================================

A multi-face frame in which nobody is followed (a :class:`Prediction` without values) has no row in any of these.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import IO, Any

from edgeaff.runtime.errors import InvalidInputError
from edgeaff.runtime.pipeline.options import Mode
from edgeaff.runtime.pipeline.prediction import Prediction
from edgeaff.runtime.sinks.base import RunContext

SUBMISSION_COLUMNS = ("valence", "arousal")
NO_VALUE = -5.0  # Aff-Wild2's value for a frame without a label: a track's file has it where the track is absent


class _TextSink:
    """A text file opened on enter, with a header line; closed on exit."""

    stage = "write"

    def __init__(self, path: Path, header: list[str]) -> None:
        self.path = path
        self._header = ",".join(header)
        self._handle: IO[str] | None = None

    def __enter__(self) -> Any:
        self._handle = open(self.path, "w", encoding="utf-8", newline="\n")
        self._handle.write(self._header + "\n")
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None

    def _line(self, cells: list[str]) -> None:
        if self._handle is None:
            raise RuntimeError(f"{self.path.name}: the sink is not open")
        self._handle.write(",".join(cells) + "\n")

    def finish(self) -> dict[str, Any]:
        return {}


class CsvSink(_TextSink):
    """``<name>.csv``: the merged values per frame, with the face and audio flags (and latency in stream mode; a
    ``gap`` flag for live sources, 1 on the first frame after the stream dropped and reconnected). Multi-face mode:
    a ``track`` column after ``time_s`` and one row per frame and track."""

    def __init__(self, path: Path, context: RunContext) -> None:
        if not context.dimensions:
            raise InvalidInputError("the bundle has no valence or arousal model")
        self.dimensions = context.dimensions
        self.latency = context.mode is Mode.STREAM
        self.gaps = context.info.live
        self.tracks = context.tracks
        header = ["frame", "time_s", *(["track"] if self.tracks else []), *self.dimensions, "face", "audio"]
        header += (["gap"] if self.gaps else []) + (["latency_ms"] if self.latency else [])
        super().__init__(path, header)

    def write(self, prediction: Prediction) -> None:
        if not prediction.subject:
            return
        values = prediction.values
        cells = [
            str(prediction.frame),
            f"{prediction.time_s:.6f}",
            *([str(prediction.track)] if self.tracks else []),
            *(f"{values[d]:.6f}" for d in self.dimensions),
            str(int(prediction.face)),
            str(int(prediction.audio)),
        ]
        if self.gaps:
            cells.append(str(int(prediction.gap)))
        if self.latency:
            cells.append("" if prediction.latency_ms is None else f"{prediction.latency_ms:.1f}")
        self._line(cells)


class SubmissionSink(_TextSink):
    """``<name>.txt`` in the ABAW submission format (both dimensions needed)."""

    def __init__(self, path: Path, context: RunContext) -> None:
        if not self.applies(context):
            raise InvalidInputError("the ABAW submission file needs both valence and arousal models")
        super().__init__(path, list(SUBMISSION_COLUMNS))

    @staticmethod
    def applies(context: RunContext) -> bool:
        """Whether the bundle predicts both dimensions."""
        return set(SUBMISSION_COLUMNS) <= set(context.dimensions)

    def write(self, prediction: Prediction) -> None:
        self._line([f"{prediction.valence:.6f}", f"{prediction.arousal:.6f}"])


class TrackSubmissionSink:
    """Multi-face mode: ``<name>.track<K>.txt`` per track in the ABAW submission format, one row per frame of the
    source (``-5,-5`` where the track does not exist), written when the run ends.

    Each track keeps its values (8 bytes a frame) until then, so it applies to sources that end (files, folders,
    pushed streams), not to live ones.

    Args:
        target: makes the temporary path of a result file: ``target(key, file_name)`` (:meth:`ResultSet.target`).
        context: the run.
    """

    stage = "write"

    def __init__(self, target: Callable[[str, str], Path], context: RunContext) -> None:
        if not self.applies(context):
            raise InvalidInputError("per-track ABAW files need both valence and arousal models and a source that ends")
        self._target = target
        self.name = context.info.name
        self._frames = 0  # frames seen: every multi-face frame gives at least one prediction
        self._last_frame: int | None = None
        self._tracks: dict[int, tuple[int, list[tuple[float, float]]]] = {}  # track -> (first ordinal, values)

    @staticmethod
    def applies(context: RunContext) -> bool:
        """Multi-face mode, both dimensions, and a source that ends."""
        return context.tracks and SubmissionSink.applies(context) and not context.info.live

    @staticmethod
    def file_name(name: str, track: int) -> str:
        """The file of track ``track`` for the result name ``name``."""
        return f"{name}.track{track}.txt"

    def write(self, prediction: Prediction) -> None:
        if prediction.frame != self._last_frame:
            self._frames += 1
            self._last_frame = prediction.frame
        if not prediction.subject or prediction.track is None:
            return
        assert prediction.valence is not None and prediction.arousal is not None
        ordinal = self._frames - 1
        first, values = self._tracks.setdefault(prediction.track, (ordinal, []))
        while first + len(values) < ordinal:  # cannot happen (a track lives on consecutive frames); kept aligned
            values.append((NO_VALUE, NO_VALUE))
        values.append((prediction.valence, prediction.arousal))

    def finish(self) -> dict[str, Any]:
        files = {}
        for track, (first, values) in sorted(self._tracks.items()):
            path = self._target(f"txt_track{track}", self.file_name(self.name, track))
            with open(path, "w", encoding="utf-8", newline="\n") as handle:
                handle.write(",".join(SUBMISSION_COLUMNS) + "\n")
                absent = f"{NO_VALUE:.6f},{NO_VALUE:.6f}\n"
                handle.write(absent * first)
                handle.writelines(f"{v:.6f},{a:.6f}\n" for v, a in values)
                handle.write(absent * (self._frames - first - len(values)))
            files[str(track)] = self.file_name(self.name, track)
        return {"track_files": files}


class ModelsCsvSink(_TextSink):
    """``<name>.models.csv``: each model's raw prediction (needs a pipeline made with ``per_model=True``); with a
    ``track`` column in multi-face mode."""

    def __init__(self, path: Path, context: RunContext) -> None:
        self.tracks = context.tracks
        super().__init__(path, ["frame", "time_s", *(["track"] if self.tracks else []), *context.model_names])

    def write(self, prediction: Prediction) -> None:
        if not prediction.subject:
            return
        if prediction.models is None:
            raise InvalidInputError("per-model values are missing: make the pipeline with per_model=True")
        track = [str(prediction.track)] if self.tracks else []
        self._line(
            [str(prediction.frame), f"{prediction.time_s:.6f}", *track, *(f"{x:.9g}" for x in prediction.models)]
        )
