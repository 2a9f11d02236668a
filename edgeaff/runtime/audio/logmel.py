"""VGGish log-mel frontend and per-frame examples in numpy (``reference.md`` §4.4).

As the reference (AudioSet ``mel_features.py`` / ``vggish_input.py`` with its own changes):

* the end of the 16 kHz signal is padded with 1 s of its last sample (``np.pad(..., "edge")``);
* STFT: 400-sample (25 ms) frames every 160 samples (10 ms), the first at sample 0, incomplete frames dropped,
  periodic Hann ``0.5 − 0.5 cos(2πn / 400)``, 512-point real FFT, **magnitude** (not power);
* 64 triangular mel bands, equally spaced on ``1127 ln(1 + f / 700)`` between 125 and 7500 Hz, evaluated at the
  FFT bin frequencies ``linspace(0, 8000, 257)``, weights ``max(0, min(rising, falling))``, DC bin zeroed;
* ``log(mel + 0.01)``;
* one example per video frame: the 96 log-mel rows (0.96 s) **starting** at the frame's time (see
  :mod:`edgeaff.runtime.audio.alignment` for the start row, exactly as the reference computed it).

For a live source an example can only be built 0.975 s after its frame's time (:class:`LogMelStream`).
"""

from __future__ import annotations

import math

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from edgeaff.runtime.audio.alignment import vggish_starts_for_times
from edgeaff.runtime.audio.signal import as_signal
from edgeaff.runtime.errors import InvalidInputError
from edgeaff.runtime.spec import VggishSpec


def vggish_mel_matrix(spec: VggishSpec = VggishSpec()) -> np.ndarray:  # noqa: B008 - frozen dataclass default
    """``(fft_length / 2 + 1, mel_bins)`` weights that post-multiply STFT magnitudes (AudioSet construction)."""
    nyquist = spec.sample_rate / 2.0
    if not 0.0 <= spec.fmin_hz < spec.fmax_hz <= nyquist:
        raise InvalidInputError(f"VGGish mel range must satisfy 0 <= fmin < fmax <= {nyquist} Hz, got {spec}")
    bins_mel = _mel(np.linspace(0.0, nyquist, spec.fft_length // 2 + 1))
    edges = np.linspace(_mel(spec.fmin_hz), _mel(spec.fmax_hz), spec.mel_bins + 2)
    lower, centre, upper = edges[:-2], edges[1:-1], edges[2:]
    rising = (bins_mel[:, None] - lower) / (centre - lower)
    falling = (upper - bins_mel[:, None]) / (upper - centre)
    weights = np.maximum(0.0, np.minimum(rising, falling))
    weights[0, :] = 0.0
    return weights


def _mel(hz: np.ndarray | float) -> np.ndarray:
    return 1127.0 * np.log(1.0 + np.asarray(hz, dtype=np.float64) / 700.0)


class LogMelFrontend:
    """STFT window, FFT size and mel matrix for one :class:`VggishSpec`."""

    def __init__(self, spec: VggishSpec = VggishSpec()) -> None:  # noqa: B008
        self.spec = spec
        self.window_length = round(spec.sample_rate * spec.stft_window_s)
        self.hop_length = round(spec.sample_rate * spec.stft_hop_s)
        if self.window_length < 1 or self.hop_length < 1 or spec.fft_length < self.window_length:
            raise InvalidInputError(f"VGGish STFT parameters give no frames: {spec}")
        self.window = 0.5 - 0.5 * np.cos(2.0 * math.pi / self.window_length * np.arange(self.window_length))
        self.mel_matrix = vggish_mel_matrix(spec)

    def frame_count(self, n_samples: int) -> int:
        """Log-mel rows for ``n_samples`` samples (complete STFT frames only)."""
        return 0 if n_samples < self.window_length else (n_samples - self.window_length) // self.hop_length + 1

    def rows(self, samples: np.ndarray, n_rows: int) -> np.ndarray:
        """Log-mel rows ``(n_rows, mel_bins)`` float64 of the first ``n_rows`` STFT frames of ``samples``."""
        if n_rows == 0:
            return np.zeros((0, self.spec.mel_bins))
        frames = sliding_window_view(samples, self.window_length)[:: self.hop_length][:n_rows]
        magnitude = np.abs(np.fft.rfft(frames * self.window, n=self.spec.fft_length, axis=1))
        return np.log(magnitude @ self.mel_matrix + self.spec.log_offset)


def log_mel(signal: np.ndarray, *, spec: VggishSpec = VggishSpec()) -> np.ndarray:  # noqa: B008
    """VGGish log-mel spectrogram of a clip, with the reference's 1 s end padding.

    Args:
        signal: mono samples in [-1, 1] at ``spec.sample_rate`` (``int16 / 32768``), at least one sample.
        spec: frontend parameters.

    Returns:
        ``(F, 64)`` float32, ``F = (N + 16000 − 400) // 160 + 1``.

    Raises:
        InvalidInputError: an empty, non-1-D or non-finite signal.

    Example:
        >>> log_mel(np.zeros(16000, dtype=np.float32)).shape
        (198, 64)
    """
    samples = as_signal(signal, what="VGGish input", allow_empty=False)
    pad = round(spec.end_padding_s * spec.sample_rate)
    padded = np.pad(samples, (0, pad), mode="edge")
    frontend = LogMelFrontend(spec)
    return frontend.rows(padded, frontend.frame_count(len(padded))).astype(np.float32)


def examples_at_rows(log_mel_rows: np.ndarray, start_rows: np.ndarray, *, example_frames: int = 96) -> np.ndarray:
    """Gather ``(N, example_frames, bins)`` examples starting at ``start_rows`` (a strided view, then one copy).

    Raises:
        InvalidInputError: a start row whose example would run past the end or lies before 0.
    """
    rows = np.asarray(log_mel_rows)
    starts = np.asarray(start_rows, dtype=np.int64)
    if rows.ndim != 2 or len(rows) < example_frames:
        raise InvalidInputError(f"log-mel must be (F >= {example_frames}, bins), got shape {rows.shape}")
    if starts.size and (starts.min() < 0 or starts.max() > len(rows) - example_frames):
        raise InvalidInputError(
            f"VGGish example starts must lie in [0, {len(rows) - example_frames}], got {starts.min()}..{starts.max()}"
        )
    windows = sliding_window_view(rows, example_frames, axis=0)  # (F - 95, bins, 96)
    return np.ascontiguousarray(windows[starts].transpose(0, 2, 1))


def vggish_examples(
    log_mel_rows: np.ndarray,
    frame_times_s: np.ndarray,
    *,
    spec: VggishSpec = VggishSpec(),  # noqa: B008
) -> np.ndarray:
    """One VGGish example per video frame: the 96 log-mel rows starting at ``round(t · 100)``.

    A frame whose example would run past the end takes the last complete example. For a constant frame rate,
    reproduce the reference bit for bit with ``examples_at_rows(log_mel, vggish_starts_for_fps(...))`` instead
    (see :mod:`edgeaff.runtime.audio.alignment` for the rare rows where the two differ).

    Args:
        log_mel_rows: ``(F, 64)`` from :func:`log_mel`.
        frame_times_s: ``(N,)`` frame timestamps in seconds from the start of the audio.
        spec: frontend parameters (``example_frames``).

    Returns:
        ``(N, 96, 64)`` float32.

    Raises:
        InvalidInputError: fewer than 96 log-mel rows, or bad timestamps.
    """
    rows = np.asarray(log_mel_rows)
    starts = vggish_starts_for_times(frame_times_s, len(rows), example_frames=spec.example_frames)
    return examples_at_rows(rows, starts, example_frames=spec.example_frames).astype(np.float32, copy=False)


class LogMelStream:
    """Log-mel rows and VGGish examples for live audio.

    Push samples in any chunk size; :meth:`example_at` returns the example of a frame at time ``t`` (seconds from
    the first sample) once its last STFT window has arrived: rows ``r .. r + 95`` with ``r = round(t · 100)`` need
    samples up to ``160 (r + 95) + 400``, i.e. **0.975 s of audio after t** (0.96 s of rows plus the rest of the last
    25 ms window). :meth:`finish` appends the reference's 1 s end padding, after which frames near or past the end
    get the last complete example, as in :func:`vggish_examples`. Rows match :func:`log_mel` of the whole signal.

    Frames must be requested in non-decreasing time; rows no longer needed are released.
    """

    def __init__(self, *, spec: VggishSpec = VggishSpec()) -> None:  # noqa: B008
        self.spec = spec
        self._frontend = LogMelFrontend(spec)
        self._pending = np.zeros(0)  # samples from the next STFT frame's start on
        self._rows = np.zeros((0, spec.mel_bins))  # kept log-mel rows
        self._first_row = 0  # global index of self._rows[0]
        self._n_rows = 0  # rows computed so far
        self._last_sample = 0.0
        self._seen_samples = 0
        self._finished = False

    @property
    def lookahead_s(self) -> float:
        """Audio needed after a frame's time before its example is complete (0.975 s for the reference spec)."""
        hop, win = self._frontend.hop_length, self._frontend.window_length
        return (hop * (self.spec.example_frames - 1) + win) / self.spec.sample_rate

    @property
    def rows_computed(self) -> int:
        """Log-mel rows computed so far."""
        return self._n_rows

    def push(self, samples: np.ndarray) -> None:
        """Append mono samples in [-1, 1].

        Raises:
            InvalidInputError: after :meth:`finish`, or a non-1-D / non-finite chunk.
        """
        if self._finished:
            raise InvalidInputError("this log-mel stream is finished; start a new LogMelStream")
        chunk = as_signal(samples, what="VGGish stream chunk", allow_empty=True)
        if chunk.size:
            self._last_sample = float(chunk[-1])
            self._seen_samples += chunk.size
        self._extend(chunk)

    def finish(self) -> None:
        """End of audio: append the 1 s end padding (last sample repeated) as the batch function does.

        Raises:
            InvalidInputError: no samples were pushed.
        """
        if self._finished:
            return
        if self._seen_samples == 0:
            raise InvalidInputError("no audio was pushed to the log-mel stream")
        pad = round(self.spec.end_padding_s * self.spec.sample_rate)
        self._extend(np.full(pad, self._last_sample))
        self._finished = True

    def _extend(self, chunk: np.ndarray) -> None:
        self._pending = np.concatenate([self._pending, chunk])
        n_new = self._frontend.frame_count(len(self._pending))
        if n_new:
            self._rows = np.concatenate([self._rows, self._frontend.rows(self._pending, n_new)])
            self._pending = self._pending[n_new * self._frontend.hop_length :]
            self._n_rows += n_new

    def start_row(self, t: float) -> int:
        """Log-mel row where the example of a frame at ``t`` seconds starts (clamped once the stream is finished)."""
        start = int(np.round(max(t, 0.0) * (1.0 / self.spec.stft_hop_s)))
        if self._finished:
            start = min(start, max(self._n_rows - self.spec.example_frames, 0))
        return start

    def is_ready(self, t: float) -> bool:
        """Whether the example of a frame at ``t`` seconds can be built now."""
        return self.start_row(t) + self.spec.example_frames <= self._n_rows

    @property
    def first_kept_row(self) -> int:
        """Index of the oldest log-mel row still held (rows before it were released)."""
        return self._first_row

    @property
    def finished(self) -> bool:
        """Whether :meth:`finish` was called (the row count is final)."""
        return self._finished

    def example_at(self, t: float) -> np.ndarray:
        """The ``(96, 64)`` float32 example of a frame at ``t`` seconds; releases rows before it.

        Raises:
            InvalidInputError: the example is not complete yet (wait for more audio, or :meth:`finish`), or ``t``
                is earlier than a frame already served.
        """
        start = self.start_row(t)
        if start + self.spec.example_frames > self._n_rows:
            raise InvalidInputError(
                f"the VGGish example at t={t:.3f} s needs {self.lookahead_s:.3f} s of audio after it; "
                f"only {self._n_rows} log-mel rows have arrived"
            )
        if start < self._first_row:
            raise InvalidInputError(f"frame time {t:.3f} s is earlier than a frame already served; request in order")
        example = self.example_from_row(start)
        self.release_before(start)
        return example

    def example_from_row(self, start: int) -> np.ndarray:
        """The ``(96, 64)`` float32 example made of log-mel rows ``start .. start + 95`` (nothing is released).

        For callers that choose rows themselves, e.g. by the reference's frame-index rule
        (:func:`edgeaff.runtime.audio.alignment.vggish_starts_for_fps`).

        Raises:
            InvalidInputError: those rows have not all arrived, or were released.
        """
        frames = self.spec.example_frames
        if start + frames > self._n_rows:
            raise InvalidInputError(
                f"log-mel rows {start}..{start + frames - 1} have not arrived ({self._n_rows} have)"
            )
        if start < self._first_row:
            raise InvalidInputError(f"log-mel row {start} was already released (rows from {self._first_row} are kept)")
        offset = start - self._first_row
        return self._rows[offset : offset + frames].astype(np.float32)

    def release_before(self, row: int) -> None:
        """Drop the rows before ``row`` (no later example may start before it)."""
        drop = min(max(row - self._first_row, 0), len(self._rows))
        if drop:
            self._rows = self._rows[drop:]
            self._first_row += drop
