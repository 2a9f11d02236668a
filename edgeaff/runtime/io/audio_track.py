"""Audio decoding: any common container to the mono 16 kHz signal both audio features start from.

The reference converted each video with ``ffmpeg -i in -ac 1 -ar 16000 -f wav out`` (16-bit PCM) and read the wav
as ``int16 / 32768`` (``reference.md`` §4.3-4.4). :func:`decode_audio` does the same in-process with PyAV: FFmpeg's
own resampler (libswresample, via ``av.AudioResampler``) mixes to mono, resamples and converts to signed 16-bit
exactly where the CLI would, then the samples are divided by 32768. Measured against the ffmpeg 5.1 CLI on files
made for the tests: AAC-in-mp4 is bit-identical; PCM-in-avi and Opus-in-webm differ by at most 2 LSB (resampler
versions). AAC-in-Matroska differs in its first 1024 samples because newer FFmpeg (the one inside PyAV) trims the
AAC encoder delay there and FFmpeg 5.1 did not.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from edgeaff.runtime.errors import InvalidInputError
from edgeaff.runtime.io.media import CorruptMediaError, import_av, open_media

INT16_SCALE = 32768.0


class NoAudioTrackError(InvalidInputError):
    """The media file has no audio stream, so no audio features can be computed from it.

    Catch it to treat such a file as video-only (e.g. skip it, or run a visual-only model).
    """


def decode_audio(path: str | Path, *, sample_rate: int = 16000) -> np.ndarray:
    """Decode a file's audio to mono float32 in [-1, 1) at ``sample_rate``, as ``ffmpeg -ac 1 -ar RATE`` + int16 wav.

    The audio stream FFmpeg ranks best (``av_find_best_stream``) is used; all its channels are mixed to mono with
    FFmpeg's default downmix, resampled by libswresample, rounded to int16 and divided by 32768.

    Args:
        path: a video or audio file (mp4, avi, mkv, webm, wav, ...).
        sample_rate: output rate in Hz (the features expect 16000).

    Returns:
        ``(samples,)`` float32 array.

    Raises:
        NoAudioTrackError: the file has no audio stream.
        MediaNotFoundError, NotMediaError: see :func:`edgeaff.runtime.io.media.open_media`.
        CorruptMediaError: the file cannot be opened or its audio fails to decode (damaged or truncated), or the
            audio stream decodes to no samples.
        InvalidInputError: ``sample_rate`` is not a positive integer.

    Example:
        >>> signal = decode_audio("talk.mp4")  # doctest: +SKIP
        >>> signal.dtype, signal.ndim  # doctest: +SKIP
        (dtype('float32'), 1)
    """
    if isinstance(sample_rate, bool) or not isinstance(sample_rate, int) or sample_rate <= 0:
        raise InvalidInputError(f"sample_rate must be a positive integer in Hz, got {sample_rate!r}")
    av = import_av()
    chunks: list[np.ndarray] = []
    with open_media(path) as container:
        if not container.streams.audio:
            raise NoAudioTrackError(
                f"{path}: has no audio track, so MFCC/VGGish features cannot be computed; "
                "use a file with sound or a visual-only model"
            )
        stream = container.streams.best("audio")
        resampler = av.AudioResampler(format="s16", layout="mono", rate=sample_rate)
        try:
            for frame in container.decode(stream):
                chunks.extend(_samples(out) for out in resampler.resample(frame))
            chunks.extend(_samples(out) for out in resampler.resample(None))
        except av.error.FFmpegError as exc:
            done = sum(len(c) for c in chunks) / sample_rate
            reason = getattr(exc, "strerror", None) or str(exc)
            raise CorruptMediaError(
                f"{path}: audio decoding failed after {done:.2f} s ({reason}); the file is damaged or truncated: "
                "re-download it or re-encode its audio"
            ) from None
    if not chunks or sum(len(c) for c in chunks) == 0:
        raise CorruptMediaError(f"{path}: the audio track decodes to no samples; re-encode the file's audio")
    pcm = np.concatenate(chunks)
    return (pcm.astype(np.float32) / np.float32(INT16_SCALE)).astype(np.float32, copy=False)


def _samples(frame: Any) -> np.ndarray:
    """Packed mono s16 samples of a resampled PyAV frame."""
    return np.asarray(frame.to_ndarray(), dtype=np.int16).reshape(-1)
