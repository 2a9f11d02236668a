"""Dataset-scale inference: many videos through the public runtime API, locally in parallel or on Ray, resumable.

``edgeaff infer FOLDER|GLOB|LIST.txt|VIDEO... -o OUT`` is this package: each worker opens one
:class:`~edgeaff.runtime.Pipeline` and runs video after video on it, writing each one's results with
:func:`~edgeaff.runtime.write_results` into ``OUT`` in the input's folder structure, and ``OUT/batch-index.csv``
(+ ``.parquet``) lists every video's status. A rerun skips the videos whose results are complete and current.

Example::

    from edgeaff.batch import BatchSettings, find_videos, run_batch
    from edgeaff.runtime import PipelineOptions

    items = find_videos(["corpus/"], "results")
    settings = BatchSettings.create("bundle", PipelineOptions())
    report = run_batch(items, "results", settings, workers=2)
    print(report.count(VideoStatus.FAILED), "failed")

Like :mod:`edgeaff.bench`, it uses only what :mod:`edgeaff.runtime` re-exports (plus the runtime's top-level
helpers), never torch; Ray is imported only for ``ray=``.
"""

from edgeaff.batch.discover import VIDEO_EXTENSIONS, BatchItem, find_videos, holds_videos, is_glob, is_list_file
from edgeaff.batch.progress import BatchProgress, RichProgress
from edgeaff.batch.runner import BatchReport, run_batch
from edgeaff.batch.settings import BatchSettings
from edgeaff.batch.worker import VideoResult, VideoStatus, VideoWorker

__all__ = [
    "VIDEO_EXTENSIONS",
    "BatchItem",
    "BatchProgress",
    "BatchReport",
    "BatchSettings",
    "RichProgress",
    "VideoResult",
    "VideoStatus",
    "VideoWorker",
    "find_videos",
    "holds_videos",
    "is_glob",
    "is_list_file",
    "run_batch",
]
