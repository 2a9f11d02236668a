"""Videos for the inference tests, written with PyAV from the test data: a real face that comes and goes, speech."""

from __future__ import annotations

import fractions
import wave
from collections.abc import Callable, Sequence
from pathlib import Path

import av
import numpy as np
from face_scenes import background, paste, placement

DATA = Path(__file__).resolve().parent / "data"
SPEECH = DATA / "speech_16k.wav"


def speech() -> np.ndarray:
    """The espeak speech fixture, mono float32 at 16 kHz."""
    with wave.open(str(SPEECH)) as handle:
        pcm = np.frombuffer(handle.readframes(handle.getnframes()), dtype=np.int16)
    return pcm.astype(np.float32) / 32768.0


def write_media(
    path: Path,
    frames: Sequence[np.ndarray] | Callable[[int], np.ndarray],
    *,
    count: int | None = None,
    rate: int = 25,
    audio: np.ndarray | None = None,
    audio_rate: int = 16000,
    pts: Sequence[int] | None = None,
    time_base: fractions.Fraction | None = None,
) -> Path:
    """Write BGR frames (a list, or a function of the index) as H.264 in ``path``, with mono AAC audio if given."""
    total = len(frames) if count is None else count  # type: ignore[arg-type]
    frame_of = frames if callable(frames) else frames.__getitem__
    first = frame_of(0)
    container = av.open(str(path), "w")
    video = container.add_stream("libx264", rate=rate)
    video.height, video.width = first.shape[:2]
    video.pix_fmt = "yuv420p"
    video.options = {"crf": "18", "preset": "veryfast"}
    if time_base is not None:
        video.codec_context.time_base = time_base
    sound = container.add_stream("aac", rate=audio_rate, layout="mono") if audio is not None else None
    for index in range(total):
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame_of(index)), format="bgr24")
        if pts is not None:
            frame.pts, frame.time_base = pts[index], time_base
        for packet in video.encode(frame):
            container.mux(packet)
    for packet in video.encode():
        container.mux(packet)
    if sound is not None and audio is not None:
        step = sound.codec_context.frame_size or 1024
        for start in range(0, len(audio), step):
            block = np.ascontiguousarray(audio[None, start : start + step], dtype=np.float32)
            frame = av.AudioFrame.from_ndarray(block, format="fltp", layout="mono")
            frame.sample_rate, frame.pts = audio_rate, start
            for packet in sound.encode(frame):
                container.mux(packet)
        for packet in sound.encode():
            container.mux(packet)
    container.close()
    return path


def face_frames(visible: Callable[[int], bool], *, width: int = 320, height: int = 240) -> Callable[[int], np.ndarray]:
    """Frame i: a smooth background, with the astronaut's photo (60 % of the frame height) drifting slowly when
    ``visible(i)``."""
    scene = background(height, width, seed=5)
    scale = 0.6 * height / 256

    def frame(index: int) -> np.ndarray:
        if not visible(index):
            return scene
        centre = (width / 2 + 10 * np.sin(index / 15.0), height / 2 + 5 * np.cos(index / 20.0))
        return paste(scene, placement(centre, scale))

    return frame
