"""The batch index: one row per video (:class:`~edgeaff.batch.worker.VideoResult`), as CSV and, when pyarrow is
installed, Parquet.

``OUT/batch-index.csv`` (and ``OUT/batch-index.parquet``) are replaced atomically each time they are written (every
few seconds while the batch runs, and at its end), so a reader never sees half a file. Rows are sorted by video.

=====================  =============================================================================================
``video``              the video's path relative to the batch root (``/``-separated)
``status``             ``done``, ``failed``, ``interrupted`` or ``pending`` (:class:`~edgeaff.batch.worker.VideoStatus`)
``frames``             frames processed
``frames_with_face``   frames where a face was found
``duration_s``         duration processed, in seconds
``fps``                the video's frame rate
``wall_s``             seconds its run took
``reused``             1 when complete results from an earlier run were kept
``results``            its summary JSON, relative to the output folder (``done`` rows)
``error``              why it failed (one line)
=====================  =============================================================================================
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from edgeaff.batch.discover import INDEX_NAME, BatchItem
from edgeaff.batch.worker import VideoResult, VideoStatus
from edgeaff.runtime.files import atomic_output

COLUMNS = (
    "video",
    "status",
    "frames",
    "frames_with_face",
    "duration_s",
    "fps",
    "wall_s",
    "reused",
    "results",
    "error",
)


def index_rows(items: Iterable[BatchItem], results: dict[str, VideoResult], out_dir: Path) -> list[dict[str, Any]]:
    """The index rows of ``items`` (those without a result are ``pending``), sorted by video."""
    rows = []
    for item in sorted(items, key=lambda i: i.key):
        result = results.get(item.key) or VideoResult(item.key, VideoStatus.PENDING)
        done = result.status is VideoStatus.DONE
        rows.append(
            {
                "video": item.key,
                "status": str(result.status),
                "frames": result.frames,
                "frames_with_face": result.frames_with_face,
                "duration_s": result.duration_s,
                "fps": result.fps,
                "wall_s": None if result.wall_s is None else round(result.wall_s, 3),
                "reused": int(result.reused),
                "results": item.summary.relative_to(out_dir).as_posix() if done else None,
                "error": result.error,
            }
        )
    return rows


def write_index(rows: list[dict[str, Any]], out_dir: Path) -> list[Path]:
    """Write the index files atomically; returns their paths (CSV, then Parquet if pyarrow is installed)."""
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: "" if v is None else v for k, v in row.items()})
    written = [out_dir / f"{INDEX_NAME}.csv"]
    with atomic_output(written[0]) as tmp:
        tmp.write_text(text.getvalue(), encoding="utf-8")
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        return written
    schema = pa.schema(
        [
            ("video", pa.string()),
            ("status", pa.string()),
            ("frames", pa.int64()),
            ("frames_with_face", pa.int64()),
            ("duration_s", pa.float64()),
            ("fps", pa.float64()),
            ("wall_s", pa.float64()),
            ("reused", pa.int8()),
            ("results", pa.string()),
            ("error", pa.string()),
        ]
    )
    written.append(out_dir / f"{INDEX_NAME}.parquet")
    with atomic_output(written[1]) as tmp:
        pq.write_table(pa.Table.from_pylist(rows, schema=schema), tmp)
    return written
