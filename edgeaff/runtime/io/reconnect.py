"""Keeping a live source going across dropped connections: retries with backoff, and one timeline for all sessions.

A live source (a camera, a network stream) is read in *sessions*: one open container or capture each. A session
is a generator of :class:`VideoFrame` and :class:`AudioChunk` items on its own clock (its first frame at 0 s with
index 0, its audio aligned to that frame, the rule of :class:`~edgeaff.runtime.io.network.NetworkStreamSource`).
It ends by returning (the source's true end) or by raising :class:`StreamLostError` (the stream was lost) after
closing what it opened. :func:`reconnecting` reopens dropped sessions as a :class:`ReconnectPolicy` says, and
:class:`Timeline` joins the sessions into one stream:

* **Times.** Session ``k`` starts at ``offset_k``; its frames are at ``offset_k + t``. The first session starts at
  0 s. A later one starts at the time of the last frame before the drop plus the wall-clock time between that
  frame's arrival and the arrival of the new session's first frame (at least one nominal frame interval, so
  times strictly increase across a gap), which is how far the camera's own clock moved meanwhile. Within a
  session, a timestamp that would run backwards is held at the previous one.
* **Indices.** The first frame after a gap has index ``last + lost + 1`` where ``lost`` estimates the frames the
  camera produced meanwhile: ``round(gap · fps) - 1`` at the nominal rate (0 when the rate is unknown).
* **Gaps.** Between the last frame before the drop and the first frame after it comes one :class:`SourceGap`
  (``start_s``, ``end_s`` the two frames' times).
* **Audio.** Sample ``n`` of the delivered audio is at ``n / sample_rate`` s on the timeline, gaps included: a
  session's audio sample 0 is placed at ``offset_k``; the stretch from where the audio stood up to there is filled
  with silence (in chunks of at most one second, sent right after the gap, before the first frame after it), and
  audio that would overlap what was already delivered is cut. The audio therefore never runs backwards or
  overlaps, and stays aligned with the frames.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Callable, Generator, Iterator
from types import TracebackType

import numpy as np

from edgeaff.runtime.io.live_reader import LiveReader, reader_timeout
from edgeaff.runtime.io.sources import (
    AudioChunk,
    GapReason,
    Outages,
    ReconnectPolicy,
    SourceGap,
    SourceInfo,
    SourceItem,
    SourceTimeoutError,
    VideoFrame,
)

Session = Generator[VideoFrame | AudioChunk, None, None]
# Slice of the interruptible waits between attempts.
_POLL_S = 0.05


class StreamLostError(Exception):
    """A session lost its stream (raised by the session, after it closed what it opened)."""

    def __init__(self, reason: GapReason, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


class ReopenFailedError(Exception):
    """A reopen attempt failed (the camera or server is not back yet)."""


class Timeline:
    """Joins the sessions of one live source into a single stream (the rules are in the module docstring).

    Args:
        fps: nominal frame rate, for the index estimate and the smallest step across a gap (``None``: unknown).
        sample_rate: audio samples per second (irrelevant without audio).
        audio: the source delivers audio: the silence of a gap is then sent with the gap, before the first frame
            after it, so the frames before the gap need not wait for the new session's sound.
    """

    def __init__(self, *, fps: float | None, sample_rate: int = 16000, audio: bool = False) -> None:
        self.fps = fps if fps and fps > 0 else None
        self.sample_rate = sample_rate
        self.audio = audio
        self.outages = Outages()
        self._offset = 0.0
        self._index_base = 0
        self._last: VideoFrame | None = None  # last frame delivered (timeline time and index)
        self._started = False  # the current session has delivered its first frame
        self._audio_at = 0  # samples delivered on the timeline
        self._session_audio = 0  # samples the current session has sent
        self._audio_ended = False

    @property
    def last_arrival(self) -> float | None:
        """``time.perf_counter()`` at the arrival of the last frame delivered, ``None`` before the first."""
        return None if self._last is None else self._last.arrival

    def new_session(self) -> None:
        """The next items come from a new session (call after a reconnection, before its items)."""
        self._started = False
        self._session_audio = 0

    def add(self, item: VideoFrame | AudioChunk, *, outage: Outage | None = None) -> Iterator[SourceItem]:
        """The timeline's items for one session item: a frame (after a :class:`SourceGap` when it ends
        ``outage``) or audio (after silence filling a gap; possibly cut or nothing)."""
        if isinstance(item, AudioChunk):
            yield from self._audio(item)
            return
        if not self._started:
            self._start_session(item, outage)
            if outage is not None and self._last is not None:
                yield self._gap(item, outage)
                if self.audio and not self._audio_ended:
                    yield from self._silence(round(self._offset * self.sample_rate) - self._audio_at)
            self._started = True
        t_s = self._offset + item.t_s
        if self._last is not None and t_s < self._last.t_s:
            t_s = self._last.t_s  # a stream timestamp that runs backwards: held, never reordered
        frame = dataclasses.replace(item, index=self._index_base + item.index, t_s=t_s)
        self._last = frame
        yield frame

    def _start_session(self, first: VideoFrame, outage: Outage | None) -> None:
        last = self._last
        if last is None:
            return  # the source's first frame: timeline 0 s, index 0
        step = 1.0 / self.fps if self.fps else 1e-3
        self._offset = last.t_s + max(first.arrival - last.arrival, step)
        lost = max(round((self._offset - last.t_s) * self.fps) - 1, 0) if self.fps else 0
        self._index_base = last.index + 1 + lost - first.index
        if outage is not None:
            outage.lost_frames = lost

    def _gap(self, first: VideoFrame, outage: Outage) -> SourceGap:
        assert self._last is not None
        gap = SourceGap(self._last.t_s, self._offset + first.t_s, outage.reason, outage.attempts,
                        outage.lost_frames, outage.detail)  # fmt: skip
        counted = self.outages
        self.outages = Outages(counted.reconnects + 1, counted.attempts, counted.lost_s + gap.duration_s,
                               counted.lost_frames + gap.lost_frames)  # fmt: skip
        return gap

    def count_attempt(self) -> None:
        """One more reopen attempt."""
        self.outages = dataclasses.replace(self.outages, attempts=self.outages.attempts + 1)

    def _audio(self, chunk: AudioChunk) -> Iterator[AudioChunk]:
        if self._audio_ended:
            return
        if chunk.final:
            self._audio_ended = True
        if not self._started:
            # a session aligns its audio to its first frame and sends none before it; anything else has no place
            if chunk.final:
                yield AudioChunk(np.zeros(0, np.float32), final=True)
            return
        samples = chunk.samples
        target = round(self._offset * self.sample_rate) + self._session_audio
        self._session_audio += len(samples)
        if target > self._audio_at:
            yield from self._silence(target - self._audio_at)
        elif target < self._audio_at:
            samples = samples[self._audio_at - target :]  # already covered: never overlap, never run backwards
        self._audio_at += len(samples)
        if samples.size or chunk.final:
            yield AudioChunk(samples, final=chunk.final)

    def _silence(self, count: int) -> Iterator[AudioChunk]:
        while count > 0:
            size = min(count, self.sample_rate)
            yield AudioChunk(np.zeros(size, np.float32))
            self._audio_at += size
            count -= size


@dataclasses.dataclass
class Outage:
    """One outage in progress: since the last frame, until a frame comes again or the source gives up."""

    reason: GapReason
    detail: str
    since: float  # perf_counter() of the last frame (or of the start, before any frame)
    attempts: int = 0
    lost_frames: int = 0
    last_error: str = ""  # why the latest reopen attempt failed


def _sleep(seconds: float, stopping: Callable[[], bool]) -> None:
    """Wait ``seconds`` unless the reader is asked to stop meanwhile."""
    end = time.perf_counter() + seconds
    pause = threading.Event()
    while not stopping():
        left = end - time.perf_counter()
        if left <= 0:
            return
        pause.wait(min(left, _POLL_S))


def reconnecting(
    first: Session,
    reopen: Callable[[], Session],
    timeline: Timeline,
    policy: ReconnectPolicy | None,
    *,
    stopping: Callable[[], bool],
    what: str,
    started: float,
) -> Iterator[SourceItem]:
    """The items of ``first`` and of the sessions ``reopen()`` opens after each drop, on one timeline.

    Args:
        first: the session opened when the source was entered.
        reopen: opens a new session; raises :class:`ReopenFailedError` when it cannot (yet). Opening may also
            succeed and the session drop before its first frame: that counts as a failed attempt too.
        timeline: joins the sessions (and counts the outages).
        policy: when to retry and when to give up; ``None``: the items of ``first`` as they come, its end or error
            (the source without reconnection).
        stopping: true once the reader is asked to stop: the loop then returns at once.
        what: the source, for messages.
        started: ``time.perf_counter()`` when the source was entered (the give-up clock before any frame).

    Raises:
        SourceTimeoutError: no frame for ``policy.give_up_s`` after a drop, or the attempts ran out.
    """
    if policy is None:
        yield from first
        return
    session: Session | None = first
    outage: Outage | None = None
    try:
        while not stopping():
            if session is None:
                assert outage is not None
                session = _reopen(reopen, timeline, policy, outage, stopping=stopping, what=what)
                if session is None:
                    return  # asked to stop while waiting
                timeline.new_session()
            try:
                for item in session:
                    if stopping():
                        return
                    ended = outage if isinstance(item, VideoFrame) else None
                    yield from timeline.add(item, outage=ended)
                    if ended is not None:
                        outage = None
                return  # the source's own end
            except StreamLostError as drop:
                session = None
                if outage is None:
                    since = timeline.last_arrival
                    outage = Outage(drop.reason, drop.detail, since if since is not None else started)
                else:
                    outage.reason, outage.detail = drop.reason, drop.detail
    finally:
        if session is not None:
            session.close()


def _reopen(
    reopen: Callable[[], Session],
    timeline: Timeline,
    policy: ReconnectPolicy,
    outage: Outage,
    *,
    stopping: Callable[[], bool],
    what: str,
) -> Session | None:
    """Wait and reopen until a session opens; ``None`` when asked to stop."""
    deadline = outage.since + policy.give_up_s
    while not stopping():
        now = time.perf_counter()
        if not policy.allows(outage.attempts + 1) or now >= deadline:
            tried = f"{outage.attempts} reconnection attempt{'s' if outage.attempts != 1 else ''}"
            latest = f"; last attempt: {outage.last_error}" if outage.last_error else ""
            raise SourceTimeoutError(
                f"{what}: gave up after {now - outage.since:.1f} s without a frame and {tried} ({outage.reason.value}: "
                f"{outage.detail}{latest}); check the camera or stream, or allow longer with --reconnect"
            )
        _sleep(min(policy.wait_before(outage.attempts + 1), deadline - now), stopping)
        if stopping():
            return None
        outage.attempts += 1
        timeline.count_attempt()
        try:
            return reopen()
        except ReopenFailedError as exc:
            outage.last_error = str(exc)
    return None


class ReconnectingSource:
    """What cameras and network streams share: sessions read in a :class:`LiveReader` thread, reopened after a
    drop when a policy is given, joined on one :class:`Timeline`, and counted.

    A subclass sets :attr:`info`, :attr:`timeout_s` and :attr:`reconnect`, opens its first session in
    ``__enter__`` and then calls :meth:`_start`; it provides :meth:`_first_session`, :meth:`_reopen` and
    :meth:`_release`.
    """

    info: SourceInfo
    timeout_s: float
    reconnect: ReconnectPolicy | None
    _reader: LiveReader | None = None
    _timeline: Timeline | None = None
    _entered = 0.0

    @property
    def dropped_frames(self) -> int:
        """Frames dropped because the consumer fell behind."""
        return 0 if self._reader is None else self._reader.dropped_frames

    @property
    def outages(self) -> Outages:
        """Reconnections and lost time so far."""
        return Outages() if self._timeline is None else self._timeline.outages

    def _start(self, *, sample_rate: int = 16000) -> None:
        """Start reading (the first session is open and :attr:`info` describes it)."""
        self._timeline = Timeline(fps=self.info.fps, sample_rate=sample_rate, audio=self.info.has_audio)
        self._entered = time.perf_counter()
        self._reader = LiveReader(
            self._produce, timeout_s=reader_timeout(self.timeout_s, self.reconnect), what=self.info.uri
        )
        self._reader.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        # The reader thread owns the open container or capture and closes it when it stops, which may be after a
        # blocked read returns: closing it here, under a read in progress, is not safe.
        if self._reader is not None:
            self._reader.stop()

    def __iter__(self) -> Iterator[SourceItem]:
        if self._reader is None:
            raise RuntimeError(f"{type(self).__name__}: use it in a 'with' block before iterating")
        return iter(self._reader)

    def _produce(self, stopping: Callable[[], bool]) -> Iterator[SourceItem]:
        assert self._timeline is not None
        first = self._first_session(stopping)
        try:
            yield from reconnecting(first, lambda: self._reopen(stopping), self._timeline, self.reconnect,
                                    stopping=stopping, what=self.info.uri, started=self._entered)  # fmt: skip
        finally:
            self._release()  # opened, but its session never started

    def _first_session(self, stopping: Callable[[], bool]) -> Session:
        """The session of what ``__enter__`` opened."""
        raise NotImplementedError

    def _reopen(self, stopping: Callable[[], bool]) -> Session:
        """Open anew and return the new session; raise :class:`ReopenFailedError` when it cannot."""
        raise NotImplementedError

    def _release(self) -> None:
        """Close what is open and not owned by a running session."""
        raise NotImplementedError
