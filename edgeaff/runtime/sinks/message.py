"""One prediction as a JSON message: the format ``edgeaff serve`` streams over WebSockets and ``--publish``
sends to an MQTT broker (one rule, used by both).

A message is a JSON object with ``frame``, ``time_s``, ``valence`` and ``arousal`` (``null`` for a dimension the
bundle lacks), ``face``, ``box`` (``[x0, y0, x1, y1]`` in frame pixels or ``null``), ``audio``, ``gap``,
``latency_ms`` (stream mode, else ``null``), ``models`` (``{name: value}``, only when the pipeline gives per-model
values) and ``track`` (only when the prediction carries a track id). Floats are written with Python's shortest
round-trip form, so a reader gets back exactly the pipeline's values.
"""

from __future__ import annotations

import json
import math
import numbers
from collections.abc import Sequence
from typing import Any

from edgeaff.runtime.pipeline.prediction import Prediction


def _number(value: float | None) -> float | None:
    if value is None:
        return None
    number = float(value)
    return number if math.isfinite(number) else None  # JSON has no NaN or infinity


def prediction_record(prediction: Prediction, model_names: Sequence[str] = ()) -> dict[str, Any]:
    """The message for one prediction as a dict (see the module docstring).

    Args:
        prediction: the pipeline's prediction.
        model_names: the run's per-model names, in manifest order (labels of ``models``).

    Example:
        >>> p = Prediction(3, 0.1, 0.25, None, True, (1.0, 2.0, 30.0, 40.0), False)
        >>> prediction_record(p)["box"], prediction_record(p)["arousal"]
        ([1.0, 2.0, 30.0, 40.0], None)
    """
    record: dict[str, Any] = {
        "frame": int(prediction.frame),
        "time_s": float(prediction.time_s),
        "valence": _number(prediction.valence),
        "arousal": _number(prediction.arousal),
        "face": bool(prediction.face),
        "box": None if prediction.box is None else [float(v) for v in prediction.box],
        "audio": bool(prediction.audio),
        "gap": bool(prediction.gap),
        "latency_ms": _number(prediction.latency_ms),
    }
    if prediction.models is not None:
        values = [float(v) for v in prediction.models.reshape(-1)]
        names = list(model_names) if len(model_names) == len(values) else [str(i) for i in range(len(values))]
        record["models"] = {name: _number(value) for name, value in zip(names, values, strict=True)}
    track = getattr(prediction, "track", None)  # multi-person tracks, where the pipeline gives them
    if track is not None:
        record["track"] = int(track) if isinstance(track, numbers.Integral) else str(track)
    return record


def to_json(record: dict[str, Any]) -> str:
    """A record as compact JSON text (no NaN: :func:`prediction_record` already replaced non-finite values)."""
    return json.dumps(record, separators=(",", ":"), allow_nan=False)
