"""What every sink shares: the :class:`Sink` contract and the :class:`RunContext` it is made for."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any, Protocol

from edgeaff.runtime.io.sources import SourceInfo
from edgeaff.runtime.pipeline.options import Mode
from edgeaff.runtime.pipeline.prediction import Prediction

if TYPE_CHECKING:
    from edgeaff.runtime.pipeline.run import PipelineRun


@dataclasses.dataclass(frozen=True)
class RunContext:
    """What a sink needs to know before the first prediction.

    Attributes:
        info: the source.
        mode: offline or stream.
        dimensions: the dimensions predicted, valence first.
        model_names: per-model column names, in manifest order.
        crop_size: the model's face crop side (a frame size for sources without one).
        tracks: multi-face mode (``faces="all"``): predictions carry a track id, several per frame.
    """

    info: SourceInfo
    mode: Mode
    dimensions: tuple[str, ...]
    model_names: tuple[str, ...]
    crop_size: int = 48
    tracks: bool = False

    @classmethod
    def of(cls, run: PipelineRun) -> RunContext:
        """The context of an opened run."""
        crop = run.pipeline.bundle.feature_spec.face.image_size
        return cls(run.info, run.mode, run.dimensions, run.model_names, crop, run.pipeline.options.multi_face)


class Sink(Protocol):
    """Consumes the predictions of one run, in frame order.

    ``stage`` names the timer stage its writing is recorded under. :meth:`finish` is called once after the last
    prediction when the run succeeded; it returns entries for the run's summary (or ``{}``). A sink that holds a
    file is also a context manager, closed before the result files are renamed into place.
    """

    stage: str

    def write(self, prediction: Prediction) -> None:
        """Consume one prediction."""
        ...

    def finish(self) -> dict[str, Any]:
        """The run succeeded: complete the output; returns summary entries."""
        ...
