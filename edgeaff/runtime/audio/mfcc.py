"""39-D MFCC at 100 Hz in numpy, reproducing openSMILE's ``MFCC12_0_D_A`` configuration (``reference.md`` §4.3).

Step by step, as openSMILE's components compute it (read from openSMILE 3.0's source):

1. Samples in 16-bit units: the signal (``int16 / 32768``, see :func:`edgeaff.runtime.io.audio_track.decode_audio`) is
   multiplied by 32768. openSMILE reads ``int16 / 32767`` and its HTK-compatible mel stage multiplies the power by
   ``32767²`` again, so the mel energies are those of the raw 16-bit sample values.
2. ``cFramer``: frames of ``round(0.025 · sr)`` = 400 samples every ``round(0.010 · sr)`` = 160, the first starting at
   sample 0; an incomplete last frame is dropped, so a signal of N samples has ``(N − 400) // 160 + 1`` rows
   (none below 400 samples). Row t covers ``[t · 10 ms, t · 10 ms + 25 ms)``.
3. ``cVectorPreemphasis`` inside each frame: ``y[0] = (1 − k) x[0]``, ``y[n] = x[n] − k x[n − 1]``, k = 0.97.
4. ``cWindower`` Hamming: ``0.54 − 0.46 cos(2πn / (L − 1))`` (symmetric).
5. ``cTransformFFT``: zero-padded at the end to the next power of two (512), real FFT; ``cFFTmagphase`` magnitude,
   squared by ``cMelspec`` (``usePower = 1``).
6. ``cMelspec`` (HTK-compatible): 26 triangles equally spaced on ``mel(f) = 1127 ln(1 + f / 700)`` between
   ``mel(0)`` and ``mel(8000)``; FFT bins strictly between ``round(fmin / Δf)`` and ``round(fmax / Δf)`` are used (DC
   and the Nyquist bin are not); each bin gives weight ``w`` to the band whose centre lies above it and ``1 − w`` to
   the next band, ``w`` linear in mel.
7. ``cMfcc`` (HTK-compatible): ``log(max(E, 1))`` (the mel floor is forced to 1), DCT-II
   ``c_i = sqrt(2 / 26) Σ_m log E_m cos(π i (m + ½) / 26)``, lifter ``1 + (L / 2) sin(π i / L)`` with L = 22, and
   **HTK coefficient order**: ``[c1 … c12, c0]``. openSMILE names these columns ``mfcc[0] … mfcc[12]``, so the
   reference's "mfcc0..12" columns hold c1..c12 then c0; this module keeps that order.
8. ``cDeltaRegression`` (deltawin 2): ``d[t] = Σ_{i=1..2} i (x[t + i] − x[t − i]) / 10`` with the first/last row
   repeated beyond the ends; the delta-deltas are the same regression of the deltas. One asymmetry, found by
   comparing with openSMILE and kept: at the start the delta-delta stage repeats the first delta row, but at the
   end it reads two further delta rows, which openSMILE's delta stage computes past the last frame from the
   repeated last static row (so the last two delta-delta rows differ from a plain edge-padded regression).

Output columns: ``[static(13), delta(13), delta-delta(13)]``, float32.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from edgeaff.runtime.audio.signal import as_signal
from edgeaff.runtime.errors import InvalidInputError
from edgeaff.runtime.spec import MfccSpec

INT16_UNITS = 32768.0


def htk_mel(hz: np.ndarray | float) -> np.ndarray:
    """HTK mel scale ``1127 ln(1 + f / 700)`` (0 for f <= 0, as openSMILE)."""
    f = np.asarray(hz, dtype=np.float64)
    return np.where(f > 0, 1127.0 * np.log1p(np.maximum(f, 0.0) / 700.0), 0.0)


class MfccFrontend:
    """Precomputed window, mel filterbank, DCT and lifter for one :class:`MfccSpec`.

    Args:
        spec: MFCC parameters (the reference's by default).

    Raises:
        InvalidInputError: unsupported window, or parameters that give no frames or bands.
    """

    def __init__(self, spec: MfccSpec = MfccSpec()) -> None:  # noqa: B008 - frozen dataclass, safe default
        if spec.window != "hamming":
            raise InvalidInputError(f"MFCC window {spec.window!r} is not supported; openSMILE's config uses 'hamming'")
        self.spec = spec
        self.frame_length = round(spec.frame_length_s * spec.sample_rate)
        self.frame_step = round(spec.frame_step_s * spec.sample_rate)
        if self.frame_length < 2 or self.frame_step < 1 or spec.mel_bands < 2 or spec.num_ceps < 1:
            raise InvalidInputError(f"MFCC spec gives no usable frames or bands: {spec}")
        self.fft_length = 1 << max(2, (self.frame_length - 1).bit_length())
        n = np.arange(self.frame_length, dtype=np.float64)
        self.window = 0.54 - 0.46 * np.cos(2.0 * math.pi * n / (self.frame_length - 1))
        self.mel_matrix = self._mel_matrix()  # (bins, bands)
        bands = spec.mel_bands
        order = [*range(1, spec.num_ceps), 0]  # HTK order: c1..c_{n-1}, c0
        i = np.asarray(order, dtype=np.float64)[None, :]
        m = np.arange(bands, dtype=np.float64)[:, None]
        lifter = 1.0 + spec.cep_lifter / 2.0 * np.sin(math.pi * i / spec.cep_lifter) if spec.cep_lifter > 0 else 1.0
        self.dct_matrix = math.sqrt(2.0 / bands) * np.cos(math.pi * i / bands * (m + 0.5)) * lifter  # (bands, ceps)

    def _mel_matrix(self) -> np.ndarray:
        spec = self.spec
        n_bins = self.fft_length // 2 + 1
        bin_hz = spec.sample_rate / self.fft_length
        nyquist = spec.sample_rate / 2.0
        lo = spec.fmin_hz if 0.0 <= spec.fmin_hz <= min(nyquist, spec.fmax_hz) else 0.0
        hi = spec.fmax_hz if lo <= spec.fmax_hz <= nyquist and spec.fmax_hz > 0 else nyquist
        lo_mel, hi_mel = float(htk_mel(lo)), float(htk_mel(hi))
        bands = spec.mel_bands
        centres = lo_mel + np.arange(bands + 2) * (hi_mel - lo_mel) / (bands + 1)  # edges and centres
        first_bin = min(round(lo / bin_hz), n_bins)
        last_bin = min(round(hi / bin_hz), n_bins)
        weights = np.zeros((n_bins, bands))
        for k in range(first_bin + 1, last_bin):
            mel = float(htk_mel(k * bin_hz))
            upper = int(np.searchsorted(centres, mel, side="left"))  # first centre >= mel
            if upper < 1 or upper > bands + 1:
                continue
            w = (centres[upper] - mel) / (centres[upper] - centres[upper - 1])
            if upper - 2 >= 0:
                weights[k, upper - 2] += w
            if upper - 1 < bands:
                weights[k, upper - 1] += 1.0 - w
        return weights

    def frame_count(self, n_samples: int) -> int:
        """Rows openSMILE produces for ``n_samples`` samples (complete frames only)."""
        return 0 if n_samples < self.frame_length else (n_samples - self.frame_length) // self.frame_step + 1

    def static(self, samples: np.ndarray, n_frames: int) -> np.ndarray:
        """Static coefficients ``(n_frames, num_ceps)`` float64 of the first ``n_frames`` frames of ``samples``.

        ``samples`` are in 16-bit units (float64) and must hold at least the samples of those frames.
        """
        if n_frames == 0:
            return np.zeros((0, self.spec.num_ceps))
        frames = sliding_window_view(samples, self.frame_length)[:: self.frame_step][:n_frames]
        emphasised = np.empty_like(frames)
        k = self.spec.preemphasis
        emphasised[:, 0] = (1.0 - k) * frames[:, 0]
        emphasised[:, 1:] = frames[:, 1:] - k * frames[:, :-1]
        spectrum = np.fft.rfft(emphasised * self.window, n=self.fft_length, axis=1)
        power = spectrum.real**2 + spectrum.imag**2
        energies = power @ self.mel_matrix
        log_energies = np.log(np.maximum(energies, 1.0))  # HTK-compatible mel floor 1.0
        return log_energies @ self.dct_matrix


def regress_rows(rows: np.ndarray, targets: np.ndarray, *, window: int, offset: int = 0, last: int) -> np.ndarray:
    """openSMILE/HTK delta regression for the rows ``targets`` (global indices), rows beyond ``[0, last]`` clamped.

    ``d[t] = Σ_{i=1..W} i (x[t+i] − x[t−i]) / (2 Σ i²)``, with the first/last row repeated beyond the ends (openSMILE
    pads its window processors with the first/last frame); W = 0 gives ``x[t] − x[t−1]``. ``rows`` holds the global
    rows ``offset .. offset + len(rows) − 1``. Batch and streaming code both call this, so they compute identically.
    """
    if window == 0:
        return rows[targets - offset] - rows[np.clip(targets - 1, 0, last) - offset]
    num = np.zeros((len(targets), rows.shape[1]))
    for i in range(1, window + 1):
        later = rows[np.clip(targets + i, 0, last) - offset]
        earlier = rows[np.clip(targets - i, 0, last) - offset]
        num += i * (later - earlier)
    return num / (2.0 * sum(i * i for i in range(1, window + 1)))


def mfcc39(signal: np.ndarray, *, spec: MfccSpec = MfccSpec()) -> np.ndarray:  # noqa: B008
    """MFCCs with deltas and delta-deltas, as openSMILE ``MFCC12_0_D_A`` (see the module docstring).

    Args:
        signal: mono samples in [-1, 1] at ``spec.sample_rate`` (``int16 / 32768``).
        spec: MFCC parameters.

    Returns:
        ``(T, 3 · num_ceps)`` float32, ``T = (N − 400) // 160 + 1`` for the reference spec (0 rows below 400 samples).
        Columns are HTK-ordered ``[c1..c12, c0]`` then their deltas and delta-deltas.

    Raises:
        InvalidInputError: the signal is not 1-D or has non-finite values.

    Example:
        >>> import numpy as np
        >>> mfcc39(np.zeros(16000, dtype=np.float32)).shape
        (98, 39)
    """
    frontend = MfccFrontend(spec)
    samples = as_signal(signal, what="MFCC input") * INT16_UNITS
    static = frontend.static(samples, frontend.frame_count(len(samples)))
    w, n = spec.delta_window, len(static)
    # openSMILE's delta stage runs W rows past the end (statics repeated); the delta-delta stage reads those rows.
    delta = regress_rows(static, np.arange(n + w if n else 0), window=w, last=n - 1)
    accel = regress_rows(delta, np.arange(n), window=w, last=n + w - 1)
    delta = delta[:n]
    return np.concatenate([static, delta, accel], axis=1).astype(np.float32)


class Mfcc39Stream:
    """Incremental :func:`mfcc39` for live audio: push samples in any chunk size, get the rows that became final.

    Row t needs static frames up to t + 4 (two delta steps of window 2), i.e. samples up to
    ``160 (t + 4) + 400``: the look-ahead is **4 rows = 40 ms** beyond row t's own 25 ms frame (65 ms after the
    row's start time). :meth:`flush` ends the stream and returns the held-back rows, computed with the same end
    padding as the batch function. The concatenation of all outputs equals ``mfcc39`` of the concatenated input:
    the same per-frame arithmetic and the same regression code run, so the rows came out bit-identical in every run
    here; the tests allow ``rtol = 1e-6`` in case a BLAS/FFT library batches rows differently.

    Example:
        >>> import numpy as np
        >>> stream = Mfcc39Stream()
        >>> rows = [stream.push(chunk) for chunk in np.zeros((10, 1600), dtype=np.float32)]
        >>> sum(len(r) for r in rows) + len(stream.flush())
        98
    """

    def __init__(self, *, spec: MfccSpec = MfccSpec()) -> None:  # noqa: B008
        self.spec = spec
        self._frontend = MfccFrontend(spec)
        self._window = spec.delta_window
        self._pending = np.zeros(0)  # samples from the next frame's start on, 16-bit units
        empty = np.zeros((0, spec.num_ceps))
        self._static, self._static_from = empty, 0  # buffered static rows and the global index of the first
        self._delta, self._delta_from = empty, 0
        self._n_static = 0  # static rows computed
        self._n_delta = 0  # delta rows computed
        self._n_out = 0  # rows returned
        self._done = False

    @property
    def lookahead_rows(self) -> int:
        """Rows a row waits for after its own frame (4 for deltawin 2)."""
        return 2 * self._window

    @property
    def rows_emitted(self) -> int:
        """Rows returned so far."""
        return self._n_out

    def push(self, samples: np.ndarray) -> np.ndarray:
        """Add samples (mono, [-1, 1]); return the ``(k, 39)`` float32 rows that are now final (k may be 0).

        Raises:
            InvalidInputError: after :meth:`flush`, or for a non-1-D / non-finite chunk.
        """
        if self._done:
            raise InvalidInputError("this MFCC stream was flushed; start a new Mfcc39Stream")
        chunk = as_signal(samples, what="MFCC stream chunk", allow_empty=True) * INT16_UNITS
        self._pending = np.concatenate([self._pending, chunk])
        n_new = self._frontend.frame_count(len(self._pending))
        if n_new:
            static = self._frontend.static(self._pending, n_new)
            self._pending = self._pending[n_new * self._frontend.frame_step :]
            self._static = np.concatenate([self._static, static])
            self._n_static += n_new
        return self._advance(final=False)

    def flush(self) -> np.ndarray:
        """End the stream: return the held-back rows (the last frame repeated as the batch function does)."""
        if self._done:
            return np.zeros((0, self.spec.dim), dtype=np.float32)
        self._done = True
        return self._advance(final=True)

    def _advance(self, *, final: bool) -> np.ndarray:
        w, last = self._window, self._n_static - 1
        if self._n_static == 0:
            return np.zeros((0, self.spec.dim), dtype=np.float32)
        # deltas computable: t + w <= last, and at the end W rows past it (see mfcc39)
        ready = self._n_static + w if final else self._n_static - w
        if ready > self._n_delta:
            targets = np.arange(self._n_delta, ready)
            new = regress_rows(self._static, targets, window=w, offset=self._static_from, last=last)
            self._delta = np.concatenate([self._delta, new])
            self._n_delta = ready
        done = self._n_static if final else self._n_delta - w  # delta-deltas computable
        if done <= self._n_out:
            return np.zeros((0, self.spec.dim), dtype=np.float32)
        targets = np.arange(self._n_out, done)
        accel = regress_rows(self._delta, targets, window=w, offset=self._delta_from, last=self._n_delta - 1)
        rows = np.concatenate(
            [self._static[targets - self._static_from], self._delta[targets - self._delta_from], accel], axis=1
        )
        self._n_out = done
        # keep only what later rows need: statics for rows not yet out or as delta context, deltas likewise
        keep_static = max(0, min(self._n_out, self._n_delta - w))
        self._static = self._static[keep_static - self._static_from :]
        self._static_from = keep_static
        keep_delta = max(0, self._n_out - w)
        self._delta = self._delta[keep_delta - self._delta_from :]
        self._delta_from = keep_delta
        return rows.astype(np.float32)
