"""Writing the synthetic videos with PyAV: H.264 + AAC in MP4, MPEG-4 Part 2 + PCM in AVI.

Encoders run single-threaded with fixed options and the muxers are asked for bit-exact output, so the same frames and
audio give byte-identical files with the same PyAV/FFmpeg build.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from edgeaff.runtime.errors import MissingDependencyError


@dataclass(frozen=True)
class MediaFormat:
    """How one kind of video file is encoded.

    Attributes:
        container: file extension and muxer (``mp4``, ``avi``).
        video_codec: FFmpeg encoder name.
        video_options: encoder options.
        audio_codec: FFmpeg encoder name.
    """

    container: str
    video_codec: str
    video_options: tuple[tuple[str, str], ...]
    audio_codec: str


MEDIA_FORMATS = {
    "mp4": MediaFormat(
        container="mp4",
        video_codec="libx264",
        video_options=(("preset", "veryfast"), ("crf", "20"), ("threads", "1")),
        audio_codec="aac",
    ),
    "avi": MediaFormat(
        container="avi",
        video_codec="mpeg4",
        video_options=(("b", "1500k"), ("threads", "1")),
        audio_codec="pcm_s16le",
    ),
}


def write_video(
    path: Path,
    frames: Iterable[np.ndarray],
    *,
    media: MediaFormat,
    fps: int,
    size: tuple[int, int],
    audio: np.ndarray,
    sample_rate: int,
    stored_rate: int,
) -> int:
    """Encode frames and an audio track into one file, interleaving audio with video frame by frame.

    Args:
        path: output file (its extension should match ``media.container``).
        frames: (height, width, 3) uint8 RGB frames, consumed lazily.
        media: the encoding.
        fps: frame rate (integer, as in Aff-Wild2: 30 or 25).
        size: (width, height), both even.
        audio: (channels, samples) float32 in [-1, 1] at ``sample_rate``, one or two channels; its length should
            be frames / fps seconds.
        sample_rate: sample rate of ``audio``.
        stored_rate: sample rate of the stored track (FFmpeg resamples).

    Returns:
        The number of video frames written.
    """
    av = _import_av()
    width, height = size
    written = 0
    with av.open(str(path), mode="w", format=media.container) as container:
        container.flags |= av.container.Flags.bitexact.value
        video = container.add_stream(media.video_codec, rate=fps)
        video.width, video.height = width, height
        video.pix_fmt = "yuv420p"
        video.codec_context.time_base = Fraction(1, fps)
        video.codec_context.thread_count = 1
        video.codec_context.flags |= av.codec.context.Flags.bitexact.value
        video.options = dict(media.video_options)
        layout = "mono" if audio.shape[0] == 1 else "stereo"
        sound = container.add_stream(media.audio_codec, rate=stored_rate, layout=layout)
        sound.codec_context.flags |= av.codec.context.Flags.bitexact.value
        total = audio.shape[1]
        for index, rgb in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
            frame.pts = index
            frame.time_base = Fraction(1, fps)
            container.mux(video.encode(frame))
            start = min(total, round(index * sample_rate / fps))
            stop = min(total, round((index + 1) * sample_rate / fps))
            _encode_audio(av, container, sound, audio[:, start:stop], start=start, rate=sample_rate, layout=layout)
            written += 1
        rest = min(total, round(written * sample_rate / fps))
        _encode_audio(av, container, sound, audio[:, rest:], start=rest, rate=sample_rate, layout=layout)
        container.mux(video.encode(None))
        container.mux(sound.encode(None))
    return written


def _import_av() -> Any:
    try:
        import av
    except ImportError as exc:
        raise MissingDependencyError(
            f"writing synthetic videos needs PyAV, a base dependency of edgeaff ({exc}): pip install av"
        ) from exc
    return av


def _encode_audio(
    av: Any, container: Any, stream: Any, chunk: np.ndarray, *, start: int, rate: int, layout: str
) -> None:
    if chunk.shape[1] == 0:
        return
    frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(chunk, dtype=np.float32), format="fltp", layout=layout)
    frame.sample_rate = rate
    frame.time_base = Fraction(1, rate)
    frame.pts = start
    container.mux(stream.encode(frame))
