"""The push interface: an application that owns its camera and microphone hands frames and audio over.

:class:`PushStream` (from :meth:`Pipeline.open_stream`) takes RGB frames with their times and PCM audio with the
time of its first sample, and returns the predictions that became final with each call. Frames and audio go
through the same :class:`~edgeaff.runtime.pipeline.processor.FrameProcessor` as a source read by
:meth:`Pipeline.run`, and the audio through the same conversion (libswresample to mono 16-bit at 16 kHz), so the
same frames and audio give the same numbers.

Audio timeline (the rule the network source applies): the first frame's time is the origin. The first audio block
is placed by its time: audio before the origin is dropped, a later start is padded with silence. Later blocks
follow on without a break; a block whose time differs from where the previous one ended by more than
:data:`AUDIO_JITTER_S` is moved there (a gap is filled with silence, an overlap is cut). Audio pushed before the
first frame waits for it (at most :data:`MAX_EARLY_AUDIO_S` seconds of it).
"""

from __future__ import annotations

import math
import time
from typing import TYPE_CHECKING, Any

import numpy as np

from edgeaff.runtime.errors import InvalidInputError
from edgeaff.runtime.io.audio_track import MonoResampler, check_pcm
from edgeaff.runtime.io.sources import SourceInfo, SourceKind, VideoFrame, safe_name
from edgeaff.runtime.pipeline.prediction import Prediction
from edgeaff.runtime.pipeline.processor import FrameProcessor, Notes
from edgeaff.runtime.pipeline.timing import StageTimer

if TYPE_CHECKING:
    from collections.abc import Callable

    from edgeaff.runtime.pipeline.pipeline import Pipeline

AUDIO_JITTER_S = 0.05
MAX_EARLY_AUDIO_S = 60.0
MAX_SIDE = 16384  # pixels: the largest frame side accepted


class PushedAudio:
    """Audio blocks with their times → mono 16 kHz samples on the frames' timeline (see the module docstring)."""

    def __init__(self, sample_rate: int) -> None:
        self.sample_rate = sample_rate
        self.origin: float | None = None
        self._resampler: MonoResampler | None = None
        self._format: tuple[int, int] | None = None  # (rate, channels) the resampler was made for
        self._expected: float | None = None  # caller's time where the next block should start
        self._early: list[tuple[np.ndarray, int, float | None]] = []
        self._early_s = 0.0

    def start(self, origin: float) -> np.ndarray:
        """The first frame arrived at ``origin``: returns the samples of the audio that waited for it."""
        self.origin = origin
        early, self._early = self._early, []
        parts = [self._convert(samples, rate, t_s) for samples, rate, t_s in early]
        return np.concatenate(parts) if parts else np.zeros(0, np.float32)

    def push(self, samples: np.ndarray, rate: int, t_s: float | None) -> np.ndarray:
        """Samples at the feature rate for one block (empty while no frame has arrived).

        Raises:
            InvalidInputError: bad samples or rate (:func:`~edgeaff.runtime.io.audio_track.check_pcm`), or too much
                audio before the first frame.
        """
        block, _ = check_pcm(samples, rate)
        if self.origin is None:
            self._early_s += block.shape[0] / int(rate)
            if self._early_s > MAX_EARLY_AUDIO_S:
                raise InvalidInputError(
                    f"more than {MAX_EARLY_AUDIO_S:g} s of audio were pushed before the first frame; push frames "
                    "and audio as they come (interleaved)"
                )
            self._early.append((block, rate, t_s))
            return np.zeros(0, np.float32)
        return self._convert(block, rate, t_s)

    def flush(self) -> np.ndarray:
        """What the resampler still holds (at the end of the audio)."""
        return self._resampler.flush() if self._resampler is not None else np.zeros(0, np.float32)

    def _convert(self, block: np.ndarray, rate: int, t_s: float | None) -> np.ndarray:
        assert self.origin is not None
        channels = int(block.shape[1])
        out = []
        if self._resampler is None or self._format != (int(rate), channels):
            if self._resampler is not None:
                out.append(self._resampler.flush())
            self._resampler = MonoResampler(self.sample_rate)
            self._format = (int(rate), channels)
        start = t_s if t_s is not None else (self._expected if self._expected is not None else self.origin)
        expected = self._expected if self._expected is not None else self.origin
        shift = start - expected
        if self._expected is None or abs(shift) > AUDIO_JITTER_S:
            if shift > 0:
                silence = np.zeros((round(shift * rate), *block.shape[1:]), dtype=block.dtype)
                block = np.concatenate([silence, block])
            elif shift < 0:
                block = block[min(round(-shift * rate), block.shape[0]) :]
            start = expected
        out.append(self._resampler.resample_array(block, int(rate)))
        self._expected = start + block.shape[0] / rate
        return np.concatenate(out)


class PushStream:
    """Frames and audio pushed by an application (see the module docstring). Made by :meth:`Pipeline.open_stream`.

    Not thread-safe: push from one thread (or guard it).

    Example:
        >>> with Pipeline("bundle", mode="stream") as pipeline:  # doctest: +SKIP
        ...     stream = pipeline.open_stream(fps=30.0)
        ...     for rgb, t_s, pcm, rate in capture():
        ...         for p in stream.push_audio(pcm, rate, t_s) + stream.push_frame(rgb, t_s):
        ...             print(p.frame, p.valence, p.arousal)
        ...     rest = stream.close()
    """

    def __init__(
        self,
        pipeline: Pipeline,
        *,
        fps: float | None,
        audio: bool,
        name: str,
        timer: StageTimer | None,
        echo: Callable[[str], None] | None,
    ) -> None:
        if fps is not None and not (math.isfinite(fps) and 0 < fps <= 1000):
            raise InvalidInputError(f"fps must be in (0, 1000], got {fps}")
        self.pipeline = pipeline
        self.timer = timer if timer is not None else StageTimer()
        self.ended: str | None = None
        self.wall_s = 0.0
        self.dropped_frames = 0
        info = SourceInfo(
            SourceKind.PUSH, f"push:{name}", safe_name(name), True, audio,
            None if audio else "the application pushes no audio (audio=False)", fps, None,
        )  # fmt: skip
        mode = pipeline.mode_for(info, allow_offline=True)
        notes = Notes(echo)
        self._processor = pipeline.processor(info, mode=mode, by_index=fps is not None, timer=self.timer, notes=notes)
        self._audio = PushedAudio(pipeline.bundle.feature_spec.mfcc.sample_rate) if audio else None
        self._index = 0
        self._last_t: float | None = None
        self._size: tuple[int, int] | None = None
        self._started = time.perf_counter()
        if not audio:
            notes.note(f"{info.uri}: no audio ({info.audio_note}); {self._processor.fallback_text()}")

    @property
    def processor(self) -> FrameProcessor:
        """The stream's per-source state."""
        return self._processor

    @property
    def info(self) -> SourceInfo:
        """What the stream was opened with."""
        return self._processor.info

    def push_frame(self, rgb: np.ndarray, t_s: float) -> list[Prediction]:
        """Add one picture: (H, W, 3) uint8 RGB, shown at ``t_s`` seconds (increasing from frame to frame).

        Returns:
            The predictions that became final (stream mode: usually this frame's, or earlier ones that waited for
            their audio; offline: none until :meth:`close`).

        Raises:
            InvalidInputError: a picture of another shape or dtype, a size change, or a time not after the last.
        """
        self._check_open()
        image = np.asarray(rgb)
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8 or not 0 < max(image.shape) <= MAX_SIDE:
            raise InvalidInputError(f"push_frame needs an (H, W, 3) uint8 RGB picture, got {image.shape} {image.dtype}")
        if self._size is not None and image.shape[:2] != self._size:
            raise InvalidInputError(
                f"the picture size changed from {self._size} to {image.shape[:2]}; open a new stream"
            )
        t = _time(t_s, "push_frame")
        if self._last_t is not None and not t > self._last_t:
            raise InvalidInputError(f"frame times must increase: {t} after {self._last_t}")
        arrival = time.perf_counter()
        if self._size is None:
            self._size = (int(image.shape[0]), int(image.shape[1]))
            if self._audio is not None:
                self._processor.add_audio(self._audio.start(t))
        self._last_t = t
        bgr = np.ascontiguousarray(image[:, :, ::-1])
        self._processor.add_frame(VideoFrame(self._index, t, bgr, arrival))
        self._index += 1
        return self._processor.take()

    def push_audio(self, samples: np.ndarray, sample_rate: int, t_s: float | None = None) -> list[Prediction]:
        """Add audio: (n,) mono or (n, channels) PCM, float in [-1, 1] or int16, at ``sample_rate`` Hz; ``t_s`` is
        the time of its first sample on the frames' clock (``None``: right after the previous block).

        Returns:
            The predictions that became final (frames that waited for this audio).

        Raises:
            InvalidInputError: the stream was opened with ``audio=False``, or bad samples or rate.
        """
        self._check_open()
        if self._audio is None:
            raise InvalidInputError("this stream was opened with audio=False; open it with audio=True to push audio")
        t = None if t_s is None else _time(t_s, "push_audio")
        with self.timer.measure("audio_push", frames=0):
            converted = self._audio.push(samples, sample_rate, t)
        if converted.size:
            self._processor.add_audio(converted)
        return self._processor.take()

    def close(self) -> list[Prediction]:
        """End of the stream: every frame still waiting is finished. Returns the remaining predictions."""
        if self.ended is not None:
            return []
        self.ended = "end_of_stream"
        try:
            if self._audio is not None and self._audio.origin is not None:
                self._processor.add_audio(self._audio.flush())
            self._processor.end_audio()
            rest = list(self._processor.finish()) if self._processor.frames else self._processor.take()
        finally:
            self._processor.close()
            self.wall_s = time.perf_counter() - self._started
        return rest

    def report(self) -> dict[str, Any]:
        """The stream's summary document (as :meth:`PipelineRun.report`)."""
        from edgeaff.runtime.pipeline.report import build_report

        return build_report(self)

    def _check_open(self) -> None:
        if self.ended is not None:
            raise InvalidInputError("this stream is closed; open another with Pipeline.open_stream()")


def _time(value: float, where: str) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = math.nan
    if not math.isfinite(number):
        raise InvalidInputError(f"{where}: the time must be a finite number of seconds, got {value!r}")
    return number
