"""The temporal part of the pipeline, fed one frame's features at a time (embeddings, raw VGGish, raw MFCC).

* :class:`WindowedTemporal` (offline): the reference's windows (:mod:`edgeaff.runtime.pipeline.windows`: length W,
  hop H, the last window ending at the last frame, one window for sequences of at most W frames) run on the
  windowed ``temporal`` graph, overlapping predictions averaged per frame. Only the last W frames' features are
  kept (a ring buffer): a window runs as soon as it is complete, and the final window is known at the end.
  A sequence shorter than W runs as one window of its own length: the graph is causal, so the reference's zero
  padding after the last frame cannot change any real frame's prediction.
* :class:`StreamingTemporal` (live): the ``temporal_stream`` graph with its state, one chunk of frames per call.
"""

from __future__ import annotations

import numpy as np

from edgeaff.runtime.artifacts.manifest import StreamingEntry
from edgeaff.runtime.backends.base import Runner
from edgeaff.runtime.errors import InvalidInputError
from edgeaff.runtime.pipeline.timing import StageTimer
from edgeaff.runtime.pipeline.windows import final_window, window_closed_by
from edgeaff.runtime.spec import FeatureSpec


class GrowingArray:
    """A float64 array that grows along axis 0 (capacity doubles), for per-frame sums and counts."""

    def __init__(self, width: int) -> None:
        self._data = np.zeros((1024, width), dtype=np.float64)
        self.length = 0

    def ensure(self, length: int) -> None:
        """Make rows ``[0, length)`` addressable (new rows are zero)."""
        if length > len(self._data):
            grown = np.zeros((max(length, 2 * len(self._data)), self._data.shape[1]), dtype=np.float64)
            grown[: self.length] = self._data[: self.length]
            self._data = grown
        self.length = max(self.length, length)

    def view(self) -> np.ndarray:
        """Rows ``[0, length)`` (a view)."""
        return self._data[: self.length]


class TemporalFeed:
    """Builds the feed of a temporal graph from per-frame arrays; zeros where the graph wants audio the frames lack."""

    def __init__(self, runner: Runner, spec: FeatureSpec) -> None:
        names = {spec.name for spec in runner.inputs}
        self.audio = "vggish" in names and "mfcc" in names
        self.widths = (spec.vggish.embedding_dim, spec.mfcc.dim)
        self.runner = runner

    def feed(self, embeddings: np.ndarray, vggish: np.ndarray | None, mfcc: np.ndarray | None) -> dict[str, np.ndarray]:
        """``{"embeddings": (1, L, M, E)[, "vggish": (1, L, V), "mfcc": (1, L, C)]}`` float32 (widths: the spec's)."""
        length = embeddings.shape[0]
        feed = {"embeddings": np.ascontiguousarray(embeddings[None], dtype=np.float32)}
        if self.audio:
            zeros = (np.zeros((1, length, width), np.float32) for width in self.widths)
            given = (vggish, mfcc)
            for name, values, empty in zip(("vggish", "mfcc"), given, zeros, strict=True):
                feed[name] = empty if values is None else np.asarray(values, np.float32)[None]
        return feed


class WindowedTemporal:
    """Offline windows over a stream of frames with bounded memory (see the module docstring).

    Args:
        runner: an entered runner of the ``temporal`` graph.
        window: window length W (the feature spec's, 300).
        hop: hop H (200).
        models: M, the number of models in the graph's output.
        embedding_shape: (M, E) of one frame's embeddings.
        timer: records the ``temporal`` stage.
        spec: the feature spec (audio feature widths; default: the reference's).
    """

    def __init__(
        self,
        runner: Runner,
        *,
        window: int,
        hop: int,
        models: int,
        embedding_shape: tuple[int, int],
        timer: StageTimer,
        spec: FeatureSpec | None = None,
    ) -> None:
        if not 0 < hop <= window:
            raise InvalidInputError(f"invalid windowing: window={window}, hop={hop}")
        spec = spec or FeatureSpec()
        self.window, self.hop, self.models = window, hop, models
        self._feed = TemporalFeed(runner, spec)
        self._runner = runner
        self._timer = timer
        self._embeddings = np.zeros((window, *embedding_shape), dtype=np.float32)
        self._vggish = np.zeros((window, spec.vggish.embedding_dim), dtype=np.float32)
        self._mfcc = np.zeros((window, spec.mfcc.dim), dtype=np.float32)
        self._sums = GrowingArray(models)
        self._counts = GrowingArray(1)
        self.count = 0
        self.windows: list[tuple[int, int]] = []  # (start, length) of every window run

    @property
    def buffered_frames(self) -> int:
        """Frames held in the ring buffer (at most the window length)."""
        return min(self.count, self.window)

    def push(self, embedding: np.ndarray, vggish: np.ndarray | None = None, mfcc: np.ndarray | None = None) -> None:
        """Add the next frame's (M, E) embeddings and raw VGGish / MFCC features (``None``: zeros)."""
        closed = window_closed_by(self.count, window=self.window, hop=self.hop)
        if closed is not None:
            self._run(closed, self.window)  # frame `count` exists, so this regular window is certain
        slot = self.count % self.window
        self._embeddings[slot] = embedding
        self._vggish[slot] = 0.0 if vggish is None else vggish
        self._mfcc[slot] = 0.0 if mfcc is None else mfcc
        self.count += 1

    def finish(self) -> np.ndarray:
        """Run the final window and return the (frames, M) float64 overlap-averaged predictions.

        Raises:
            InvalidInputError: no frame was pushed.
        """
        if self.count == 0:
            raise InvalidInputError("no frames to predict")
        self._run(*final_window(self.count, window=self.window))
        counts = self._counts.view()[:, 0]
        return self._sums.view() / counts[:, None]

    def release(self) -> None:
        """Free the ring buffer after :meth:`finish` (a series that ended keeps only its per-frame sums)."""
        self._embeddings = self._embeddings[:0]
        self._vggish = self._vggish[:0]
        self._mfcc = self._mfcc[:0]

    def _run(self, start: int, length: int) -> None:
        slots = (start + np.arange(length)) % self.window
        has_audio = self._feed.audio
        feed = self._feed.feed(
            self._embeddings[slots],
            self._vggish[slots] if has_audio else None,
            self._mfcc[slots] if has_audio else None,
        )
        with self._timer.measure("temporal", frames=length):
            predictions = self._runner.infer(feed)["predictions"][0]
        self._sums.ensure(start + length)
        self._counts.ensure(start + length)
        self._sums.view()[start : start + length] += predictions
        self._counts.view()[start : start + length] += 1.0
        self.windows.append((start, length))


class StreamingTemporal:
    """The streaming graph with its state: feed chunks of frames in order, get each frame's (M,) predictions.

    Args:
        runner: an entered runner of the ``temporal_stream`` graph.
        streaming: the bundle's streaming entry (state size and tensor names).
        max_chunk: most frames per call (the engine profile's maximum, the window length).
        timer: records the ``temporal`` stage.
    """

    def __init__(
        self,
        runner: Runner,
        streaming: StreamingEntry,
        *,
        max_chunk: int,
        timer: StageTimer,
        spec: FeatureSpec | None = None,
    ) -> None:
        self._runner = runner
        self._feed = TemporalFeed(runner, spec or FeatureSpec())
        self._state_in = streaming.state_input
        self._state_out = streaming.state_output
        self.state = np.zeros((1, streaming.state_size), dtype=np.float32)  # zeros: the windowed graph's zero history
        self._size = streaming.state_size
        self.max_chunk = max_chunk
        self._timer = timer

    def reset(self) -> None:
        """Forget the history: the next frame is predicted as the first frame of a stream."""
        self.state = np.zeros((1, self._size), dtype=np.float32)

    def step(self, embeddings: np.ndarray, vggish: np.ndarray | None, mfcc: np.ndarray | None) -> np.ndarray:
        """Advance by ``C`` frames: (C, M, E) embeddings [+ (C, 128), (C, 39) raw audio] → (C, M) predictions."""
        outputs = []
        for begin in range(0, embeddings.shape[0], self.max_chunk):
            stop = begin + self.max_chunk
            part_v = None if vggish is None else vggish[begin:stop]
            part_m = None if mfcc is None else mfcc[begin:stop]
            feed = self._feed.feed(embeddings[begin:stop], part_v, part_m)
            feed[self._state_in] = self.state
            with self._timer.measure("temporal", frames=feed["embeddings"].shape[1]):
                result = self._runner.infer(feed)
            self.state = result[self._state_out]
            outputs.append(result["predictions"][0])
        return np.concatenate(outputs).astype(np.float64)
