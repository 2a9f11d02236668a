"""Offline windows with a ring buffer equal the reference's windowing on whole arrays; streaming chunks carry state."""

from __future__ import annotations

from collections.abc import Mapping
from types import SimpleNamespace

import numpy as np
import pytest

from edgeaff.runtime.backends.base import Runner, TensorSpec
from edgeaff.runtime.pipeline.temporal import StreamingTemporal, WindowedTemporal
from edgeaff.runtime.pipeline.timing import StageTimer

M, E, RECEPTIVE = 2, 3, 5


class CausalRunner(Runner):
    """A stand-in temporal graph: causal, zero history before the window start, window-position independent."""

    name = "causal"

    def __init__(self, *, stream: bool = False) -> None:
        super().__init__()
        self.stream = stream
        self.calls: list[int] = []

    def activate(self) -> None:
        pass

    def deactivate(self) -> None:
        pass

    @property
    def inputs(self) -> list[TensorSpec]:
        names = ["embeddings", "vggish", "mfcc"] + (["state"] if self.stream else [])
        return [TensorSpec(n, (), np.dtype(np.float32)) for n in names]

    @property
    def outputs(self) -> list[TensorSpec]:
        return [TensorSpec("predictions", (), np.dtype(np.float32))]

    def infer(self, feed: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        x = feed["embeddings"][0].sum(-1) + feed["vggish"][0, :, :1] + feed["mfcc"][0, :, :1]  # (L, M)
        history = feed["state"].reshape(RECEPTIVE - 1, M) if self.stream else np.zeros((RECEPTIVE - 1, M), np.float32)
        padded = np.concatenate([history, x])
        out = np.stack([padded[t : t + RECEPTIVE].sum(0) for t in range(len(x))])
        self.calls.append(len(x))
        result = {"predictions": out[None].astype(np.float32)}
        if self.stream:
            result["state_out"] = padded[-(RECEPTIVE - 1) :].reshape(1, -1)
        return result


def reference(features: tuple[np.ndarray, np.ndarray, np.ndarray], window: int, hop: int) -> np.ndarray:
    """reference.md §4.6/§6.1 written out on whole arrays: windows, then the mean over covering windows."""
    embeddings, vggish, mfcc = features
    n = len(embeddings)
    starts = [0] if n <= window else [*range(0, n - window, hop), n - window]
    total, count = np.zeros((n, M)), np.zeros(n)
    runner = CausalRunner()
    for s in starts:
        e = min(s + window, n)
        feed = {"embeddings": embeddings[None, s:e], "vggish": vggish[None, s:e], "mfcc": mfcc[None, s:e]}
        total[s:e] += runner.infer(feed)["predictions"][0]
        count[s:e] += 1
    return total / count[:, None]


def _features(n: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return (
        rng.normal(size=(n, M, E)).astype(np.float32),
        rng.normal(size=(n, 128)).astype(np.float32),
        rng.normal(size=(n, 39)).astype(np.float32),
    )


@pytest.mark.parametrize("length", [1, 7, 12, 13, 20, 21, 33, 64, 401])
def test_ring_buffer_windows_equal_the_reference(length: int) -> None:
    window, hop = 12, 8
    features = _features(length, length)
    runner = CausalRunner()
    stage = WindowedTemporal(runner, window=window, hop=hop, models=M, embedding_shape=(M, E), timer=StageTimer())
    for i in range(length):
        stage.push(features[0][i], features[1][i], features[2][i])
        assert stage.buffered_frames <= window
    result = stage.finish()
    np.testing.assert_allclose(result, reference(features, window, hop), rtol=0, atol=1e-5)
    expected_starts = [0] if length <= window else [*range(0, length - window, hop), length - window]
    assert [s for s, _ in stage.windows] == expected_starts


def test_windows_run_as_soon_as_complete() -> None:
    features = _features(2000, 1)
    stage = WindowedTemporal(CausalRunner(), window=300, hop=200, models=M, embedding_shape=(M, E), timer=StageTimer())
    for i in range(1000):
        stage.push(features[0][i], features[1][i], features[2][i])
    # windows 0, 200, 400 and 600 are complete once frame 900 exists: run, their frames' features are gone
    assert [s for s, _ in stage.windows] == [0, 200, 400, 600]
    assert stage._embeddings.shape[0] == 300  # the ring holds one window, whatever the length


def test_streaming_chunks_equal_one_long_pass() -> None:
    features = _features(50, 2)
    streaming = SimpleNamespace(state_input="state", state_output="state_out", state_size=(RECEPTIVE - 1) * M)
    whole = StreamingTemporal(CausalRunner(stream=True), streaming, max_chunk=300, timer=StageTimer())
    expected = whole.step(*features)
    chunked = StreamingTemporal(CausalRunner(stream=True), streaming, max_chunk=7, timer=StageTimer())
    parts = [chunked.step(*(f[a:b] for f in features)) for a, b in [(0, 1), (1, 20), (20, 50)]]
    np.testing.assert_allclose(np.concatenate(parts), expected, atol=1e-5)
    # from a zero state, the stream equals a window that starts at the same frame
    np.testing.assert_allclose(expected[:12], reference(tuple(f[:12] for f in features), 12, 8), atol=1e-5)


class EmbeddingRunner(CausalRunner):
    """A stand-in visual graph: (N, 48, 48, 3) crops -> (N, M, E) embeddings."""

    def infer(self, feed: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        return {"embeddings": np.ones((len(feed["frames"]), M, E), np.float32)}


def test_frames_stop_waiting_for_audio_that_stalls() -> None:
    from edgeaff.runtime.audio.frame_audio import FrameAudio, FrameKey
    from edgeaff.runtime.pipeline.features import MAX_WAITING_FRAMES, FaceEntry, FeatureStage, FrameState
    from edgeaff.runtime.spec import FeatureSpec

    emitted, stalls = [], []
    stage = FeatureStage(
        visual=EmbeddingRunner(),
        vggish=EmbeddingRunner(),
        audio=FrameAudio(FeatureSpec()),
        emit=emitted.extend,
        timer=StageTimer(),
        visual_batch=1,
        on_stall=stalls.append,
    )
    crop = np.zeros((48, 48, 3), np.uint8)
    for i in range(MAX_WAITING_FRAMES + 50):  # a live stream that announced audio and never sends any
        stage.add_frame(FrameState(i, i / 30, 0.0, [FaceEntry(None, True, None, crop)], FrameKey(i, i / 30, None)))
    assert stalls == [MAX_WAITING_FRAMES + 1] and stage.stalled
    assert stage.max_pending == MAX_WAITING_FRAMES + 1
    assert [f.index for f in emitted] == list(range(MAX_WAITING_FRAMES + 50)) and not any(f.audio for f in emitted)


class CountingEmbedder(EmbeddingRunner):
    """The stand-in visual graph, counting its calls and their sizes; embeddings carry each crop's first pixel."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[int] = []

    def infer(self, feed: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        self.calls.append(len(feed["frames"]))
        return {"embeddings": np.repeat(feed["frames"][:, 0, 0, :1].astype(np.float32)[:, None], M, 1)[..., [0] * E]}


class CountingVggish(EmbeddingRunner):
    def __init__(self) -> None:
        super().__init__()
        self.examples = 0

    def infer(self, feed: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        self.examples += len(feed["log_mel"])
        return {"vggish": np.ones((len(feed["log_mel"]), 128), np.float32)}


def test_the_faces_of_all_tracks_share_visual_calls_and_the_audio() -> None:
    """Multi-face frames: the crops of every track of a batch of frames go through the visual graph together (in
    calls of at most max_crops), each face gets its own embedding back, the audio features are computed once per
    frame for all of its faces, and a frame without faces needs no VGGish."""
    from edgeaff.runtime.audio.frame_audio import FrameAudio, FrameKey
    from edgeaff.runtime.pipeline.features import FaceEntry, FeatureStage, FrameState
    from edgeaff.runtime.spec import FeatureSpec

    visual, vggish, emitted = CountingEmbedder(), CountingVggish(), []
    stage = FeatureStage(visual=visual, vggish=vggish, audio=FrameAudio(FeatureSpec()), emit=emitted.extend,
                         timer=StageTimer(), visual_batch=4, max_crops=5)  # fmt: skip
    faces_per_frame = [2, 3, 0, 1, 3, 3, 0, 0]
    for i, count in enumerate(faces_per_frame):
        entries = [FaceEntry(t, True, None, np.full((48, 48, 3), 10 * i + t, np.uint8)) for t in range(count)]
        stage.add_frame(FrameState(i, i / 25, 0.0, entries, FrameKey(i, i / 25, 25.0)))
    stage.add_audio(np.zeros(16000 * 2, np.float32))
    stage.finish()
    assert visual.calls == [5, 1, 5, 1]  # frames 0-3 (6 crops) then 4-7 (6 crops), at most 5 a call
    assert [len(f.faces) for f in emitted] == faces_per_frame
    for frame in emitted:
        assert [face.track for face in frame.faces] == list(range(len(frame.faces)))
        assert [float(face.embedding[0, 0]) for face in frame.faces] == [
            10 * frame.index + t for t in range(len(frame.faces))
        ]
        assert frame.audio == bool(frame.faces)  # every frame with a face has its (shared) audio features
    distinct_examples = len({round(i * 100 / 25) for i, c in enumerate(faces_per_frame) if c})
    assert vggish.examples == distinct_examples  # one VGGish example per frame with faces, none for the others


def test_the_streamed_window_rule_is_the_window_rule() -> None:
    """Windows found frame by frame (regular windows as frames arrive, the final one at the end) are exactly
    window_starts' for every length, so training, export and the runtime share one rule."""
    from edgeaff.runtime.pipeline.windows import final_window, window_closed_by, window_starts

    for window, hop in ((300, 200), (7, 3), (5, 5)):
        for length in range(1, 4 * window + 3):
            streamed = [s for n in range(length) if (s := window_closed_by(n, window=window, hop=hop)) is not None]
            streamed.append(final_window(length, window=window)[0])
            assert streamed == window_starts(length, window=window, hop=hop), (window, hop, length)
