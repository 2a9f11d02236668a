"""Audio decoding: any common container (or PCM an application hands over) to the mono 16 kHz signal both audio
features start from.

The reference converted each video with ``ffmpeg -i in -ac 1 -ar 16000 -f wav out`` (16-bit PCM) and read the wav
as ``int16 / 32768`` (``reference.md`` §4.3-4.4). :class:`MonoResampler` is that rule in-process, and the only copy
of it: FFmpeg's own resampler (libswresample, via ``av.AudioResampler``) mixes to mono, resamples and converts to
signed 16-bit exactly where the CLI would, then the samples are divided by 32768. Files (:func:`decode_audio`,
:class:`AudioTrackReader`), network streams and PCM pushed by an application all go through it. Measured against
the ffmpeg 5.1 CLI on files made for the tests: AAC-in-mp4 is bit-identical; PCM-in-avi and Opus-in-webm differ by
at most 2 LSB (resampler versions). AAC-in-Matroska differs in its first 1024 samples because newer FFmpeg (the one
inside PyAV) trims the AAC encoder delay there and FFmpeg 5.1 did not.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from edgeaff.runtime.errors import InvalidInputError
from edgeaff.runtime.io.media import CorruptMediaError, ffmpeg_reason, import_av, open_media

INT16_SCALE = 32768.0
# Audio a file source delivers ahead of each frame: the VGGish example of a frame ends 0.975 s after it.
AUDIO_LEAD_S = 1.25
# Channel layouts FFmpeg names by count, for PCM handed over as arrays.
_LAYOUTS = {1: "mono", 2: "stereo", 3: "2.1", 4: "quad", 5: "5.0", 6: "5.1", 7: "6.1", 8: "7.1"}


class NoAudioTrackError(InvalidInputError):
    """The media file has no audio stream, so no audio features can be computed from it.

    Catch it to treat such a file as video-only (e.g. skip it, or run a visual-only model).
    """


class MonoResampler:
    """PyAV audio frames (any format, layout and rate) to mono float32 samples at ``sample_rate``, via int16.

    Stateful like libswresample itself: feed frames in order, then :meth:`flush` once at the end.
    """

    def __init__(self, sample_rate: int = 16000) -> None:
        self.sample_rate = sample_rate
        self._resampler: Any = import_av().AudioResampler(format="s16", layout="mono", rate=sample_rate)

    def resample(self, frame: Any) -> np.ndarray:
        """Samples of one decoded frame (possibly empty while the resampler fills its filter)."""
        return _joined(self._resampler.resample(frame))

    def flush(self) -> np.ndarray:
        """The samples still held in the resampler."""
        return _joined(self._resampler.resample(None))

    def resample_array(self, samples: np.ndarray, rate: int) -> np.ndarray:
        """Samples of PCM handed over as an array (see :func:`check_pcm`).

        Raises:
            InvalidInputError: as :func:`check_pcm`.
        """
        av = import_av()
        pcm, fmt = check_pcm(samples, rate)
        if pcm.shape[0] == 0:
            return np.zeros(0, np.float32)
        frame = av.AudioFrame.from_ndarray(pcm.reshape(1, -1), format=fmt, layout=_LAYOUTS[pcm.shape[1]])
        frame.sample_rate = int(rate)
        return self.resample(frame)


def check_pcm(samples: np.ndarray, rate: int) -> tuple[np.ndarray, str]:
    """PCM handed over as an array, checked: (n,) mono or (n, channels), float in [-1, 1] or int16, 1..8 channels,
    1000..768000 Hz. Returns ``(samples as (n, channels) contiguous, FFmpeg sample format)``.

    Raises:
        InvalidInputError: another shape or dtype, too many channels, a bad rate, or non-finite samples.
    """
    array = np.asarray(samples)
    if isinstance(rate, bool) or not isinstance(rate, (int, np.integer)) or not 1000 <= int(rate) <= 768_000:
        raise InvalidInputError(f"the audio sample rate must be an integer in Hz (1000..768000), got {rate!r}")
    shape = array.shape
    if array.ndim == 1:
        array = array[:, None]
    if array.ndim != 2 or not 1 <= array.shape[1] <= len(_LAYOUTS):
        raise InvalidInputError(f"audio must be (samples,) mono or (samples, channels) with 1..8 channels, got {shape}")
    if array.dtype == np.int16:
        return np.ascontiguousarray(array), "s16"
    if not np.issubdtype(array.dtype, np.floating):
        raise InvalidInputError(f"audio samples must be float in [-1, 1] or int16, got {array.dtype}")
    if not np.isfinite(array).all():
        raise InvalidInputError("the audio holds NaN or infinite samples")
    return np.ascontiguousarray(array, dtype=np.float32), "flt"


def _joined(frames: list[Any]) -> np.ndarray:
    parts = [np.asarray(out.to_ndarray(), dtype=np.int16).reshape(-1) for out in frames]
    pcm = np.concatenate(parts) if parts else np.zeros(0, np.int16)
    return (pcm.astype(np.float32) / np.float32(INT16_SCALE)).astype(np.float32, copy=False)


class AudioTrackReader:
    """A file's best audio track decoded to mono float32 chunks (one per decoded audio frame), in order.

    Args:
        path: a video or audio file.
        sample_rate: output rate in Hz.
    """

    def __init__(self, path: str | Path, *, sample_rate: int = 16000) -> None:
        self.path = Path(path)
        self.sample_rate = sample_rate

    def chunks(self) -> Iterator[np.ndarray]:
        """Chunks of samples in order.

        Raises:
            NoAudioTrackError: the file has no audio stream.
            CorruptMediaError: the audio fails to decode (damaged or truncated).
        """
        av = import_av()
        done = 0
        with open_media(self.path) as container:
            if not container.streams.audio:
                raise NoAudioTrackError(
                    f"{self.path}: has no audio track, so MFCC/VGGish features cannot be computed; "
                    "use a file with sound or a visual-only model"
                )
            stream = container.streams.best("audio")
            resampler = MonoResampler(self.sample_rate)
            try:
                for frame in container.decode(stream):
                    chunk = resampler.resample(frame)
                    done += len(chunk)
                    yield chunk
                yield resampler.flush()
            except av.error.FFmpegError as exc:
                raise CorruptMediaError(
                    f"{self.path}: audio decoding failed after {done / self.sample_rate:.2f} s "
                    f"({ffmpeg_reason(exc)}); the file is damaged or truncated: re-download it or re-encode its audio"
                ) from None


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
    chunks = [chunk for chunk in AudioTrackReader(path, sample_rate=sample_rate).chunks() if chunk.size]
    if not chunks:
        raise CorruptMediaError(f"{path}: the audio track decodes to no samples; re-encode the file's audio")
    return np.concatenate(chunks)
