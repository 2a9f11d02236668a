"""Grouped temporal graphs: one operator per TCN layer for all models of one structure, equal to the per-model graphs.

Six ir-tiny models with random weights, in an order that interleaves three structures (multimodal ``paper``,
unimodal, multimodal ``abaw2``), so the graphs have three groups of two and must put the outputs back in model order.
The grouped windowed and streaming graphs under ONNX Runtime are compared with the per-model graphs (one group per
model, the same exporter) and with each fold model's own PyTorch modules, within 1e-5; the stream is fed in uneven
chunks from a zero state. The packed state is checked against what it must hold (the last inputs of a convolution),
which is what the manifest's segments say.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from builders import tiny_models

from edgeaff.export import streaming, temporal_graph
from edgeaff.export.grouped_temporal import plan_groups
from edgeaff.export.parity import run_stream, torch_predictions
from edgeaff.export.torch2onnx import _StreamWithAudio, _TemporalWithAudio, export_module
from edgeaff.runtime.artifacts.manifest import StateSegment, TensorEntry
from edgeaff.runtime.backends.ort import OrtRunner
from edgeaff.runtime.spec import AudioNormalization, ScalarStats

pytestmark = pytest.mark.slow  # exports four graphs (about a minute)

TOLERANCE = 1e-5
SPECS = [
    ("multimodal", "paper"),
    ("unimodal", None),
    ("multimodal", "abaw2"),
    ("multimodal", "paper"),
    ("unimodal", None),
    ("multimodal", "abaw2"),
]
LENGTH = 140  # longer than the receptive field (121)
CHUNKS = (1, 1, 3, 16, 64, 7)


def _normalizations(models: list[torch.nn.Module]) -> list[AudioNormalization | None]:
    return [
        AudioNormalization(mfcc=ScalarStats(1.0 + i, 8.0 + i), vggish=ScalarStats(-0.1 * i, 0.5 + 0.1 * i))
        if m.config.multimodal
        else None
        for i, m in enumerate(models)
    ]


class _Graphs:
    def __init__(self, root: Path) -> None:
        self.models = tiny_models(SPECS, seed=40, share_trunk=False)
        self.normalizations = _normalizations(self.models)
        count, width = len(self.models), self.models[0].config.backbone.embedding_dim
        inputs = [
            TensorEntry("embeddings", ("batch", "steps", count, width), "float32"),
            TensorEntry("vggish", ("batch", "steps", 128), "float32"),
            TensorEntry("mfcc", ("batch", "steps", 39), "float32"),
        ]
        example = [torch.randn(2, 8, count, width), torch.randn(2, 8, 128), torch.randn(2, 8, 39)]
        predictions = TensorEntry("predictions", ("batch", "steps", count), "float32")
        self.paths: dict[str, Path] = {}
        self.streams: dict[str, streaming.StreamingEnsemble] = {}
        for grouped, tag in ((True, "grouped"), (False, "per_model")):
            window = temporal_graph.TemporalEnsemble(self.models, self.normalizations, grouped=grouped)
            self.paths[f"window_{tag}"] = export_module(
                _TemporalWithAudio(window),
                root / f"window_{tag}.onnx",
                name="temporal",
                inputs=inputs,
                outputs=[predictions],
                example=example,
                opset=18,
            ).path
            stream = streaming.StreamingEnsemble(self.models, self.normalizations, grouped=grouped)
            state = TensorEntry("state", ("batch", stream.state_size), "float32")
            self.paths[f"stream_{tag}"] = export_module(
                _StreamWithAudio(stream),
                root / f"stream_{tag}.onnx",
                name="temporal_stream",
                inputs=[*inputs, state],
                outputs=[predictions, TensorEntry("state_out", ("batch", stream.state_size), "float32")],
                example=[*example, torch.zeros(2, stream.state_size)],
                opset=18,
            ).path
            self.streams[tag] = stream
        rng = np.random.default_rng(5)
        self.embeddings = rng.normal(0, 1, (2, LENGTH, count, width)).astype(np.float32)
        self.vggish = rng.normal(-0.1, 0.5, (2, LENGTH, 128)).astype(np.float32)
        self.mfcc = rng.normal(1.0, 8.0, (2, LENGTH, 39)).astype(np.float32)


@pytest.fixture(scope="module")
def graphs(tmp_path_factory: pytest.TempPathFactory) -> _Graphs:
    return _Graphs(tmp_path_factory.mktemp("grouped"))


def _window(path: Path, g: _Graphs) -> np.ndarray:
    with OrtRunner(path) as runner:
        return runner.infer({"embeddings": g.embeddings, "vggish": g.vggish, "mfcc": g.mfcc})["predictions"]


def _ops(path: Path, kind: str) -> int:
    return sum(node.op_type == kind for node in onnx.load(str(path)).graph.node)


def test_models_group_by_structure() -> None:
    models = tiny_models(SPECS, seed=40, share_trunk=False)
    assert plan_groups(models) == ((0, 3), (1, 4), (2, 5))
    assert plan_groups(models, grouped=False) == tuple((i,) for i in range(6))


def test_grouped_window_equals_the_per_model_graphs_and_the_models(graphs: _Graphs) -> None:
    grouped = _window(graphs.paths["window_grouped"], graphs)
    per_model = _window(graphs.paths["window_per_model"], graphs)
    expected = torch_predictions(graphs.models, graphs.normalizations, graphs.embeddings, graphs.vggish, graphs.mfcc)
    assert grouped.shape == (2, LENGTH, 6)
    assert np.abs(grouped - per_model).max() < TOLERANCE
    assert np.abs(grouped - expected).max() < TOLERANCE
    assert np.abs(expected).max() > 0.05  # the comparison is not between zeros
    # One convolution per TCN layer and group: half the per-model graph's with groups of two.
    assert _ops(graphs.paths["window_grouped"], "Conv") * 2 == _ops(graphs.paths["window_per_model"], "Conv")


def test_grouped_stream_equals_the_per_model_stream_and_the_window(graphs: _Graphs) -> None:
    size = graphs.streams["grouped"].state_size
    assert size == graphs.streams["per_model"].state_size
    arrays = (graphs.embeddings, graphs.vggish, graphs.mfcc)
    grouped, state = run_stream(graphs.paths["stream_grouped"], *arrays, state_size=size, chunks=CHUNKS)
    per_model, _ = run_stream(graphs.paths["stream_per_model"], *arrays, state_size=size, chunks=CHUNKS)
    expected = torch_predictions(graphs.models, graphs.normalizations, *arrays)
    assert np.abs(grouped - per_model).max() < TOLERANCE
    assert np.abs(grouped - expected).max() < TOLERANCE
    assert state.shape == (2, size)
    assert _ops(graphs.paths["stream_grouped"], "MatMul") * 2 == _ops(graphs.paths["stream_per_model"], "MatMul")


def _segment(state: np.ndarray, segments: tuple[StateSegment, ...], **where: object) -> np.ndarray:
    (segment,) = [s for s in segments if all(getattr(s, k) == v for k, v in where.items())]
    return state[:, segment.offset : segment.offset + segment.size].reshape(-1, segment.steps, segment.channels)


def test_the_state_holds_what_the_segments_say(graphs: _Graphs) -> None:
    stream = graphs.streams["grouped"]
    segments = stream.segments
    assert [s.offset for s in segments] == sorted(s.offset for s in segments)
    assert sum(s.size for s in segments) == stream.state_size
    arrays = (graphs.embeddings[:, :30], graphs.vggish[:, :30], graphs.mfcc[:, :30])
    _, state = run_stream(graphs.paths["stream_grouped"], *arrays, state_size=stream.state_size, chunks=(1, 12, 17))
    for model in range(6):
        # The first visual convolution's history: the model's last four embeddings, oldest first.
        history = _segment(state, segments, model=model, branch="visual", block=0, conv=1)
        assert history.shape == (2, 4, 64)
        assert np.array_equal(history, graphs.embeddings[:, 26:30, model])
    for model, stats in enumerate(graphs.normalizations):
        if stats is None:
            assert not [s for s in segments if s.model == model and s.branch != "visual"]
            continue
        # The first VGGish convolution's history: the last four frames normalised with the model's own statistics.
        history = _segment(state, segments, model=model, branch="vggish", block=0, conv=1)
        expected = (graphs.vggish[:, 26:30] - np.float32(stats.vggish.mean)) / np.float32(stats.vggish.std)
        assert np.abs(history - expected).max() < 1e-6
