"""Consumers of predictions: result files (CSV, ABAW txt, per-model CSV, JSON summary written last), the overlay
video, the plot and live printing. :func:`write_results` is ``edgeaff infer``'s file output over a pipeline run."""

from edgeaff.runtime.sinks.base import RunContext, Sink
from edgeaff.runtime.sinks.live import LiveSink, live_line
from edgeaff.runtime.sinks.results import Outputs, Results, ResultSet, write_results
from edgeaff.runtime.sinks.tables import CsvSink, ModelsCsvSink, SubmissionSink

__all__ = [
    "CsvSink",
    "LiveSink",
    "ModelsCsvSink",
    "Outputs",
    "ResultSet",
    "Results",
    "RunContext",
    "Sink",
    "SubmissionSink",
    "live_line",
    "write_results",
]
