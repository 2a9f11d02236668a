"""Audio features per video frame, computed as the audio arrives: one MFCC-39 row and one VGGish log-mel example.

Rows are chosen exactly as ``edgeaff prepare`` chooses them (``reference.md`` §4.3-4.4, :mod:`.alignment`):

* by frame index (constant frame rate ``fps``): MFCC row ``round(i / fps / 0.01)``, VGGish example ``i`` starting at
  log-mel row ``round((1 / fps) · 100 · i)``, both clamped at the end the way the reference clamps them;
* by timestamp (variable frame rate, live sources): MFCC row ``round(t / 0.01)``, example start ``round(t · 100)``,
  clamped to the last row / last complete example.

A frame's features are *ready* once the audio they read has arrived: the MFCC row 4 rows (40 ms) after its own
frame, the VGGish example 0.975 s after the frame's time (its 96 log-mel rows). At the end of the audio
(:meth:`FrameAudio.finish`) the reference's end padding is applied and every frame is ready, late frames taking the
clamped last row/example. Rows no later frame can need are released, so memory stays bounded on long streams.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from edgeaff.runtime.audio.alignment import LOGMEL_RATE_HZ, MFCC_STEP_S, vggish_example_count
from edgeaff.runtime.audio.logmel import LogMelStream
from edgeaff.runtime.audio.mfcc import Mfcc39Stream
from edgeaff.runtime.spec import FeatureSpec

# Rows kept behind the last frame served, for sources whose timestamps step back a little.
RELEASE_SLACK_ROWS = 50


@dataclasses.dataclass(frozen=True)
class FrameKey:
    """Which audio a frame reads: its index and time, and the rule (``fps`` set: by index)."""

    index: int
    t_s: float
    fps: float | None


@dataclasses.dataclass(frozen=True)
class FrameAudioFeatures:
    """A frame's raw MFCC-39 row ``(39,)``, its VGGish log-mel example ``(96, 64)`` and where that example starts."""

    mfcc: np.ndarray
    example: np.ndarray
    start_row: int


class FrameAudio:
    """Streaming MFCC rows and VGGish examples for frames requested in (roughly) increasing time.

    Example:
        >>> import numpy as np
        >>> audio = FrameAudio(FeatureSpec())
        >>> audio.push(np.zeros(32000, dtype=np.float32))
        >>> key = FrameKey(index=0, t_s=0.0, fps=30.0)
        >>> audio.ready(key)
        True
        >>> features = audio.take(key)
        >>> features.mfcc.shape, features.example.shape
        ((39,), (96, 64))
    """

    def __init__(self, spec: FeatureSpec) -> None:
        self.spec = spec
        self._mfcc_stream = Mfcc39Stream(spec=spec.mfcc)
        self._logmel = LogMelStream(spec=spec.vggish)
        self._mfcc = np.zeros((0, spec.mfcc.dim), dtype=np.float32)
        self._mfcc_first = 0  # global row index of self._mfcc[0]
        self._mfcc_count = 0  # rows received so far
        self._finished = False
        self.samples = 0

    @property
    def finished(self) -> bool:
        """Whether the audio has ended."""
        return self._finished

    @property
    def empty(self) -> bool:
        """The audio ended without a single sample (treat as no audio)."""
        return self._finished and self.samples == 0

    @property
    def buffered_rows(self) -> tuple[int, int]:
        """MFCC rows and log-mel rows held in memory (for the boundedness checks)."""
        return len(self._mfcc), self._logmel.rows_computed - self._logmel.first_kept_row

    def push(self, samples: np.ndarray) -> None:
        """Add mono samples in [-1, 1] at the feature sample rate."""
        chunk = np.asarray(samples, dtype=np.float32).reshape(-1)
        if self._finished or chunk.size == 0:
            return
        self.samples += chunk.size
        self._append_mfcc(self._mfcc_stream.push(chunk))
        self._logmel.push(chunk)

    def finish(self) -> None:
        """End of audio: flush the MFCC look-ahead and apply the log-mel end padding."""
        if self._finished:
            return
        self._finished = True
        if self.samples:
            self._append_mfcc(self._mfcc_stream.flush())
            self._logmel.finish()

    def _append_mfcc(self, rows: np.ndarray) -> None:
        if len(rows):
            self._mfcc = np.concatenate([self._mfcc, rows.astype(np.float32, copy=False)])
            self._mfcc_count += len(rows)

    def _mfcc_row(self, key: FrameKey) -> int:
        if key.fps is not None:
            row = round(int(key.index) / key.fps / MFCC_STEP_S)  # the reference's float order, round half to even
        else:
            row = int(np.round(max(key.t_s, 0.0) / MFCC_STEP_S))
        return min(row, self._mfcc_count - 1) if self._finished else row

    def _example_start(self, key: FrameKey) -> int | None:
        """First log-mel row of the frame's example, or ``None`` while it cannot be known yet."""
        rows = self._logmel.rows_computed
        frames = self.spec.vggish.example_frames
        if key.fps is not None:
            hop = (1 / float(key.fps)) * LOGMEL_RATE_HZ
            count = vggish_example_count(rows, key.fps, example_frames=frames)
            if self._finished:
                return round(hop * min(int(key.index), count - 1))
            return round(hop * int(key.index)) if key.index < count else None
        start = int(np.round(max(key.t_s, 0.0) * LOGMEL_RATE_HZ))
        if self._finished:
            return min(start, rows - frames)
        return start if start + frames <= rows else None

    def ready(self, key: FrameKey) -> bool:
        """Whether the frame's MFCC row and VGGish example can be taken now."""
        if self._finished:
            return True
        return self._mfcc_row(key) < self._mfcc_count and self._example_start(key) is not None

    def take(self, key: FrameKey) -> FrameAudioFeatures | None:
        """The frame's MFCC row and VGGish log-mel example; ``None`` when the audio was empty.

        Raises:
            RuntimeError: the features are not ready (check :meth:`ready` first).
        """
        if self.empty:
            return None
        if not self.ready(key):
            raise RuntimeError(f"audio features of frame {key.index} are not ready")
        row = self._mfcc_row(key)
        start = self._example_start(key)
        assert start is not None  # ready() guarantees it
        row = max(row, self._mfcc_first)  # a timestamp that stepped back beyond the kept rows: the nearest kept row
        mfcc = self._mfcc[row - self._mfcc_first].copy()
        example = self._logmel.example_from_row(max(start, self._logmel.first_kept_row))
        self._release(row, start)
        return FrameAudioFeatures(mfcc, example, start)

    def _release(self, row: int, start: int) -> None:
        drop = row - RELEASE_SLACK_ROWS - self._mfcc_first
        if drop > 0:
            self._mfcc = self._mfcc[drop:]
            self._mfcc_first += drop
        self._logmel.release_before(start - RELEASE_SLACK_ROWS)
