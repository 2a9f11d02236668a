"""Frames held until their predictions are final (offline mode): JPEG-compressed in an unlinked temporary file.

Offline predictions are final only when the source ends (the fold ensemble is centred on the whole video), so a
caller that wants each frame's picture with its prediction (an overlay) needs the frames back then. Holding them
decoded would take gigabytes for a long video; re-decoding the source is not possible for every source (a stream)
and costs a second decode. The spool keeps each frame as a JPEG (quality 95) in a temporary file that the operating
system deletes when it is closed, or when the process dies: nothing is left behind in any case. Memory holds only
the offsets (16 bytes a frame).
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import numpy as np

from edgeaff.runtime.errors import InvalidInputError, require

JPEG_QUALITY = 95


def _cv2() -> Any:
    return require("cv2", extra="ort", purpose="keeping frames for drawing (images=True)")


class ImageSpool:
    """Append BGR frames, read them back in order. Use as a context manager (or call :meth:`close`).

    Args:
        directory: where the temporary file goes (``None``: the system's temporary folder).
    """

    def __init__(self, directory: str | Path | None = None) -> None:
        self._file: IO[bytes] | None = tempfile.TemporaryFile(prefix=".edgeaff-frames-", dir=directory)  # noqa: SIM115
        self._spans: list[tuple[int, int]] = []
        self._end = 0

    def __len__(self) -> int:
        return len(self._spans)

    @property
    def size_bytes(self) -> int:
        """Bytes written so far."""
        return self._end

    def put(self, image: np.ndarray) -> None:
        """Append one (H, W, 3) uint8 BGR frame."""
        handle = self._handle()
        ok, encoded = _cv2().imencode(".jpg", image, [1, JPEG_QUALITY])  # 1: cv2.IMWRITE_JPEG_QUALITY
        if not ok:
            raise InvalidInputError(f"could not JPEG-encode a frame of shape {image.shape}")
        data = encoded.tobytes()
        handle.seek(self._end)
        handle.write(data)
        self._spans.append((self._end, len(data)))
        self._end += len(data)

    def __iter__(self) -> Iterator[np.ndarray]:
        """The frames in the order they were put."""
        cv2 = _cv2()
        handle = self._handle()
        handle.flush()
        for offset, length in self._spans:
            handle.seek(offset)
            data = np.frombuffer(handle.read(length), dtype=np.uint8)
            yield cv2.imdecode(data, 1)  # 1: cv2.IMREAD_COLOR

    def _handle(self) -> IO[bytes]:
        if self._file is None:
            raise RuntimeError("the image spool is closed")
        return self._file

    def close(self) -> None:
        """Delete the temporary file."""
        if self._file is not None:
            self._file.close()
            self._file = None

    def __enter__(self) -> ImageSpool:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()
