"""Text result files, one row per frame.

============================  ========================================================================================
``<name>.csv``                ``frame, time_s, <dimensions>, face, audio`` (+ ``gap`` for live sources, + ``latency_ms``
                              in stream mode)
``<name>.txt``                the ABAW submission format: header ``valence,arousal`` (in that order, whatever the
                              reference's set-built header did), one row per frame; only when the bundle has both
``<name>.models.csv``         raw per-model predictions before ensembling, one column per model in manifest order
============================  ========================================================================================
"""

from __future__ import annotations

from pathlib import Path
from types import TracebackType
from typing import IO, Any

from edgeaff.runtime.errors import InvalidInputError
from edgeaff.runtime.pipeline.options import Mode
from edgeaff.runtime.pipeline.prediction import Prediction
from edgeaff.runtime.sinks.base import RunContext

SUBMISSION_COLUMNS = ("valence", "arousal")


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
    ``gap`` flag for live sources, 1 on the first frame after the stream dropped and reconnected)."""

    def __init__(self, path: Path, context: RunContext) -> None:
        if not context.dimensions:
            raise InvalidInputError("the bundle has no valence or arousal model")
        self.dimensions = context.dimensions
        self.latency = context.mode is Mode.STREAM
        self.gaps = context.info.live
        header = ["frame", "time_s", *self.dimensions, "face", "audio"]
        header += (["gap"] if self.gaps else []) + (["latency_ms"] if self.latency else [])
        super().__init__(path, header)

    def write(self, prediction: Prediction) -> None:
        values = prediction.values
        cells = [
            str(prediction.frame),
            f"{prediction.time_s:.6f}",
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


class ModelsCsvSink(_TextSink):
    """``<name>.models.csv``: each model's raw prediction (needs a pipeline made with ``per_model=True``)."""

    def __init__(self, path: Path, context: RunContext) -> None:
        super().__init__(path, ["frame", "time_s", *context.model_names])

    def write(self, prediction: Prediction) -> None:
        if prediction.models is None:
            raise InvalidInputError("per-model values are missing: make the pipeline with per_model=True")
        self._line([str(prediction.frame), f"{prediction.time_s:.6f}", *(f"{x:.9g}" for x in prediction.models)])
