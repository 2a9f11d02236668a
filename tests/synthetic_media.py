"""Tiny media files written with PyAV for the tests: video at a given rate or timestamps, optional audio."""

from __future__ import annotations

import fractions
import wave
from collections.abc import Sequence
from pathlib import Path

import av
import numpy as np


def write_video(
    path: Path,
    *,
    rate: fractions.Fraction | int = 30,
    n_frames: int = 12,
    pts: Sequence[int] | None = None,
    time_base: fractions.Fraction | None = None,
    codec: str = "libx264",
    audio_codec: str | None = "aac",
    audio: np.ndarray | None = None,
    audio_rate: int = 48000,
    layout: str = "stereo",
) -> Path:
    """Write a small video (64×48) and, unless ``audio_codec`` is None, an audio track.

    ``audio`` is ``(channels, samples)`` float in [-1, 1] (default: a 440 Hz tone as long as the video). With ``pts``
    and ``time_base`` the frames get those timestamps (variable frame rate).
    """
    container = av.open(str(path), "w")
    video = container.add_stream(codec, rate=rate)
    video.width, video.height, video.pix_fmt = 64, 48, "yuv420p"
    if time_base is not None:
        video.codec_context.time_base = time_base
    astream = container.add_stream(audio_codec, rate=audio_rate, layout=layout) if audio_codec else None
    stamps = list(pts) if pts is not None else list(range(n_frames))
    for i, stamp in enumerate(stamps):
        image = np.full((48, 64, 3), (i * 20) % 256, np.uint8)
        frame = av.VideoFrame.from_ndarray(image, format="rgb24")
        if pts is not None:
            frame.pts, frame.time_base = stamp, time_base
        for packet in video.encode(frame):
            container.mux(packet)
    for packet in video.encode():
        container.mux(packet)
    if astream is not None:
        channels = 2 if layout == "stereo" else 1
        if audio is None:
            seconds = len(stamps) / float(rate)
            t = np.arange(int(seconds * audio_rate)) / audio_rate
            audio = np.tile(0.3 * np.sin(2 * np.pi * 440 * t), (channels, 1))
        _encode_audio(container, astream, np.asarray(audio, dtype=np.float32), audio_rate, layout)
    container.close()
    return path


def _encode_audio(
    container: av.container.OutputContainer, stream: av.AudioStream, audio: np.ndarray, rate: int, layout: str
) -> None:
    step = stream.codec_context.frame_size or 1024
    fmt = stream.codec_context.format.name
    for start in range(0, audio.shape[1], step):
        block = np.ascontiguousarray(audio[:, start : start + step])
        if fmt == "s16":
            frame = av.AudioFrame.from_ndarray(
                np.round(block.T.reshape(1, -1) * 32767).astype(np.int16), format="s16", layout=layout
            )
        else:
            frame = av.AudioFrame.from_ndarray(block, format="fltp", layout=layout)
        frame.sample_rate, frame.pts = rate, start
        for packet in stream.encode(frame):
            container.mux(packet)
    for packet in stream.encode():
        container.mux(packet)


def write_wav(path: Path, pcm: np.ndarray, *, rate: int = 16000) -> Path:
    """Write int16 samples ``(samples,)`` or ``(samples, channels)`` as a PCM wav."""
    pcm = np.asarray(pcm, dtype=np.int16)
    channels = 1 if pcm.ndim == 1 else pcm.shape[1]
    with wave.open(str(path), "wb") as handle:
        handle.setnchannels(channels)
        handle.setsampwidth(2)
        handle.setframerate(rate)
        handle.writeframes(pcm.tobytes())
    return path
