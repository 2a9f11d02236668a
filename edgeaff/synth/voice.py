"""A speech-like voice whose arousal can be heard: louder, higher, faster and brighter as arousal rises.

The voice is additive: harmonics of a glottal pitch F0, shaped by vowel formants that change per syllable, gated by a
syllable envelope, plus a noise burst at each syllable onset. It is meant to survive AAC coding and to show in the
audio features of the paper's pipeline: loudness in MFCC c0 and the log-mel energy, spectral slope in the higher
cepstra and the mel distribution, pitch and syllable rate in the mel pattern over time.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

SAMPLE_RATE = 16_000
CONTROL_RATE = 100
"""Rate (Hz) of the control grid on which loudness, pitch and formants are computed before interpolation."""

LOUDNESS_DB = (-25.0, 12.0)
"""RMS level of a sounding syllable in dBFS: ``LOUDNESS_DB[0] + LOUDNESS_DB[1] * arousal`` (24 dB over the range)."""
PITCH_OCTAVES = 0.55
"""F0 = speaker F0 · 2^(PITCH_OCTAVES · arousal)."""
SYLLABLE_RATE = (3.6, 1.4)
"""Syllables per second: ``SYLLABLE_RATE[0] + SYLLABLE_RATE[1] * arousal`` (2.2 to 5.0)."""
TILT = (1.25, 0.45)
"""Harmonic k has amplitude k^-(TILT[0] - TILT[1] * arousal) before the formants: brighter with arousal."""
NOISE_FLOOR_DB = -62.0
HIGHEST_HARMONIC_HZ = 7000.0

_VOWELS = np.array(
    [
        [730.0, 1090.0, 2440.0],  # a
        [530.0, 1840.0, 2480.0],  # e
        [270.0, 2290.0, 3010.0],  # i
        [570.0, 840.0, 2410.0],  # o
        [300.0, 870.0, 2240.0],  # u
    ]
)
_BANDWIDTHS = np.array([90.0, 110.0, 170.0])
_FORMANT_GAINS = np.array([1.0, 0.6, 0.3])


@dataclass(frozen=True)
class Voice:
    """A speaker: mean pitch and vocal-tract scale."""

    f0_hz: float
    formant_factor: float


def speak(
    rng: np.random.Generator,
    arousal: np.ndarray,
    fps: float,
    samples: int,
    voice: Voice,
    *,
    sample_rate: int = SAMPLE_RATE,
) -> np.ndarray:
    """Synthesise a voice that follows a per-frame arousal curve.

    Args:
        rng: random source (syllable pauses, vowels, noise).
        arousal: (frames,) arousal in [-1, 1]; frame i starts at i / fps.
        fps: video frame rate.
        samples: length of the result.
        voice: the speaker.
        sample_rate: sample rate of the result.

    Returns:
        (samples,) float32 mono signal, without the room noise floor (see :func:`room_noise`).
    """
    seconds = samples / sample_rate
    control_times = np.arange(int(np.ceil(seconds * CONTROL_RATE)) + 2) / CONTROL_RATE
    frame_times = np.arange(len(arousal)) / fps
    arousal_c = np.interp(control_times, frame_times, np.clip(arousal, -1.0, 1.0))
    t = np.arange(samples) / sample_rate
    arousal_s = np.interp(t, control_times, arousal_c)

    # syllables: a phase that advances at the arousal-dependent rate; some syllables are pauses
    syllable_phase = np.cumsum(SYLLABLE_RATE[0] + SYLLABLE_RATE[1] * arousal_s) / sample_rate
    syllable = syllable_phase.astype(np.int64)
    within = syllable_phase - syllable
    count = int(syllable[-1]) + 2 if samples else 1
    sounding = rng.random(count) >= 0.18
    vowel = rng.integers(0, len(_VOWELS), count)
    voiced_part = 0.7
    envelope = np.where(within < voiced_part, np.sin(np.pi * np.minimum(within / voiced_part, 1.0)) ** 0.6, 0.0)
    envelope *= sounding[syllable]

    # pitch: speaker F0 raised with arousal, with a rise-fall inside each syllable
    f0 = voice.f0_hz * np.exp2(PITCH_OCTAVES * arousal_s) * (1.0 + 0.06 * np.sin(np.pi * within))
    phase = 2.0 * np.pi * np.cumsum(f0) / sample_rate

    # harmonic amplitudes on the control grid: spectral tilt x formant resonances of the syllable's vowel
    control_syllable = np.interp(control_times, t, syllable.astype(np.float64)).astype(np.int64)
    formants = _VOWELS[vowel[np.minimum(control_syllable, count - 1)]] * voice.formant_factor
    formants = _smooth(formants, 3)
    f0_c = voice.f0_hz * np.exp2(PITCH_OCTAVES * arousal_c)
    tilt_c = TILT[0] - TILT[1] * arousal_c
    harmonics = int(HIGHEST_HARMONIC_HZ // (voice.f0_hz * np.exp2(-PITCH_OCTAVES)))
    k = np.arange(1, harmonics + 1)[:, None]
    freq = k * f0_c[None, :]
    resonance = (
        _FORMANT_GAINS[None, None, :] / (1.0 + ((freq[:, :, None] - formants[None, :, :]) / _BANDWIDTHS) ** 2)
    ).sum(axis=2) + 0.02
    amplitude = resonance * k ** (-tilt_c[None, :]) * (freq < HIGHEST_HARMONIC_HZ)
    amplitude /= np.sqrt(0.5 * (amplitude**2).sum(axis=0, keepdims=True))  # unit RMS whatever the spectrum

    # sum of harmonics: sin(k·phase) by the Chebyshev recurrence, amplitudes interpolated linearly between controls
    position = t * CONTROL_RATE
    left = np.minimum(position.astype(np.int64), len(control_times) - 2)
    fraction = position - left
    twice_cos = 2.0 * np.cos(phase)
    previous, current = np.zeros(samples), np.sin(phase)
    signal = np.zeros(samples)
    for index in range(harmonics):
        row = amplitude[index]
        if row.any():
            signal += (row[left] + (row[left + 1] - row[left]) * fraction) * current
        previous, current = current, twice_cos * current - previous

    # a short noise burst (a consonant) at the start of each sounding syllable
    burst = np.where(within < 0.06, 1.0 - within / 0.06, 0.0) * sounding[syllable]
    noise = np.diff(rng.standard_normal(samples + 1)) / np.sqrt(2.0)
    signal = signal * envelope + 0.35 * burst * noise

    level = np.power(10.0, (LOUDNESS_DB[0] + LOUDNESS_DB[1] * arousal_s) / 20.0)
    return (signal * level).astype(np.float32)


def room_noise(rng: np.random.Generator, samples: int) -> np.ndarray:
    """A quiet, slightly low-passed noise floor at ``NOISE_FLOOR_DB`` dBFS RMS, so silences are not digital zero."""
    white = rng.standard_normal(samples + 1)
    coloured = (white[1:] + white[:-1]) / np.sqrt(2.0)
    return (coloured * 10.0 ** (NOISE_FLOOR_DB / 20.0)).astype(np.float32)


def limit(signal: np.ndarray, ceiling: float = 0.95) -> np.ndarray:
    """Soft-limit peaks above ``ceiling`` (tanh knee), leaving the body of the signal linear."""
    knee = 0.8 * ceiling
    magnitude = np.abs(signal)
    over = magnitude > knee
    out = signal.copy()
    out[over] = np.sign(signal[over]) * (knee + (ceiling - knee) * np.tanh((magnitude[over] - knee) / (ceiling - knee)))
    return out


def _smooth(values: np.ndarray, width: int) -> np.ndarray:
    """Moving average along axis 0 (edges repeated), to glide between syllables' formants."""
    if width <= 1:
        return values
    padded = np.concatenate(
        [np.repeat(values[:1], width // 2, axis=0), values, np.repeat(values[-1:], width // 2, axis=0)]
    )
    kernel = np.ones(width) / width
    return np.stack([np.convolve(padded[:, j], kernel, mode="valid") for j in range(values.shape[1])], axis=1)
