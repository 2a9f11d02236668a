"""PyTorch modules → single-file ONNX graphs with fixed tensor names (``torch.onnx.export(..., dynamo=True)``).

:func:`build_graphs` turns a list of fold models into the bundle's FP32 graphs: the per-frame visual graph, VGGish
(when a model is multimodal), the windowed temporal graph and its streaming variant. Each graph is checked with
``onnx.checker`` and its opset is verified to be the one requested.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import logging
import time
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from edgeaff.export import streaming, temporal_graph, visual_graph
from edgeaff.runtime.artifacts.manifest import StateSegment, TensorEntry
from edgeaff.runtime.errors import EdgeaffError
from edgeaff.runtime.spec import AudioNormalization, FeatureSpec
from edgeaff.train.model import EmotionModel

DEFAULT_OPSET = 18
MIN_OPSET = 17
VGGISH_INPUT = "log_mel"
VGGISH_OUTPUT = "vggish"


class ExportError(EdgeaffError):
    """A graph could not be exported as requested."""


@dataclasses.dataclass(frozen=True)
class ExportedGraph:
    """One FP32 graph written to disk, with its tensors and the module it came from (kept for parity checks)."""

    name: str
    path: Path
    inputs: tuple[TensorEntry, ...]
    outputs: tuple[TensorEntry, ...]
    module: nn.Module
    opset: int


def export_module(
    module: nn.Module,
    path: Path,
    *,
    name: str,
    inputs: Sequence[TensorEntry],
    outputs: Sequence[TensorEntry],
    example: Sequence[torch.Tensor],
    opset: int,
) -> ExportedGraph:
    """Export ``module(*example)`` to a single ``.onnx`` file at ``path``.

    Dynamic axes are the string entries of each input's shape; axes with the same string share one symbol.

    Raises:
        ExportError: the exporter failed, or produced a different opset than ``opset``.
    """
    import onnx

    module = module.eval()
    shared: dict[str, Any] = {}
    dynamic_shapes: dict[str, dict[int, Any]] = {}
    for info in inputs:
        axes = {}
        for axis, dim in enumerate(info.shape):
            if isinstance(dim, str):
                axes[axis] = shared.setdefault(dim, torch.export.Dim(dim, min=1))
        dynamic_shapes[info.name] = axes
    path.parent.mkdir(parents=True, exist_ok=True)
    log = io.StringIO()
    torch_logger = logging.getLogger("torch.onnx")
    level = torch_logger.level
    torch_logger.setLevel(logging.ERROR)  # e.g. "torchvision is not installed" notes on every export
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
            warnings.simplefilter("ignore")
            torch.onnx.export(
                module,
                tuple(example),
                str(path),
                input_names=[i.name for i in inputs],
                output_names=[o.name for o in outputs],
                opset_version=opset,
                dynamo=True,
                dynamic_shapes=tuple(dynamic_shapes[i.name] for i in inputs),
                external_data=False,
                optimize=True,
                verbose=False,
            )
    except Exception as exc:  # the exporter raises many internal exception types
        raise ExportError(f"exporting the {name} graph to ONNX failed: {exc}") from exc
    finally:
        torch_logger.setLevel(level)
    model = onnx.load(str(path))
    got = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), None)
    if got != opset:
        hint = f" (the converter said: {log.getvalue().strip().splitlines()[-1]})" if log.getvalue().strip() else ""
        raise ExportError(
            f"the {name} graph could not be expressed in ONNX opset {opset}; it came out as opset {got}{hint}. "
            f"Use --opset {got} (TensorRT 10 and ONNX Runtime accept it)"
        )
    onnx.checker.check_model(model, full_check=True)
    return ExportedGraph(name, path, tuple(inputs), tuple(outputs), module, opset)


class _TemporalWithAudio(nn.Module):
    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, embeddings: torch.Tensor, vggish: torch.Tensor, mfcc: torch.Tensor) -> torch.Tensor:
        return self.inner(embeddings, vggish, mfcc)


class _StreamWithAudio(nn.Module):
    def __init__(self, inner: streaming.StreamingEnsemble) -> None:
        super().__init__()
        self.inner = inner

    def forward(
        self, embeddings: torch.Tensor, vggish: torch.Tensor, mfcc: torch.Tensor, state: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        return self.inner(embeddings, vggish, mfcc, state)


class _StreamVisualOnly(nn.Module):
    def __init__(self, inner: streaming.StreamingEnsemble) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, embeddings: torch.Tensor, state: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.inner(embeddings, None, None, state)


@dataclasses.dataclass(frozen=True)
class GraphSet:
    """The FP32 graphs of a bundle and what the manifest needs to describe them."""

    graphs: dict[str, ExportedGraph]
    trunks: visual_graph.TrunkPlan
    state_segments: tuple[StateSegment, ...]
    state_size: int


def build_graphs(
    models: list[EmotionModel],
    normalizations: list[AudioNormalization | None],
    *,
    feature_spec: FeatureSpec,
    vggish: nn.Module | None,
    directory: Path,
    opset: int = DEFAULT_OPSET,
    log: Callable[[str], None] = lambda _: None,
) -> GraphSet:
    """Export the visual, VGGish (if given), temporal and streaming graphs of ``models`` into ``directory``.

    Args:
        models: fold models in bundle order (eval mode).
        normalizations: each model's audio statistics (``None`` for unimodal models).
        feature_spec: the shared feature spec (face crop and audio widths).
        vggish: the VGGish network for multimodal bundles, else ``None``.
        directory: where ``visual.onnx``, ``vggish.onnx``, ``temporal.onnx`` and ``temporal_stream.onnx`` go.
        opset: ONNX opset (at least 17).
        log: receives one line per exported graph.

    Raises:
        ExportError: when a graph cannot be exported at ``opset``.
    """
    if opset < MIN_OPSET:
        raise ExportError(f"--opset must be at least {MIN_OPSET}, got {opset}")
    count = len(models)
    embedding_dim = models[0].config.backbone.embedding_dim
    face = feature_spec.face
    multimodal = any(m.config.multimodal for m in models)
    vggish_dim, mfcc_dim = feature_spec.vggish.embedding_dim, feature_spec.mfcc.dim
    graphs: dict[str, ExportedGraph] = {}
    plan = visual_graph.plan_trunks(models)

    def timed(**kwargs: Any) -> ExportedGraph:
        started = time.perf_counter()
        graph = export_module(**kwargs, opset=opset)
        log(f"exported the {graph.name} graph in {time.perf_counter() - started:.1f} s")
        return graph

    with torch.no_grad():
        frames = torch.randint(0, 256, (2, face.image_size, face.image_size, 3), dtype=torch.uint8)
        graphs["visual"] = timed(
            module=visual_graph.VisualEnsemble(models, face, plan),
            path=directory / "visual.onnx",
            name="visual",
            inputs=[TensorEntry(visual_graph.FRAMES_INPUT, ("frames", face.image_size, face.image_size, 3), "uint8")],
            outputs=[TensorEntry(visual_graph.EMBEDDINGS_OUTPUT, ("frames", count, embedding_dim), "float32")],
            example=[frames],
        )
        if vggish is not None:
            spec = feature_spec.vggish
            graphs["vggish"] = timed(
                module=vggish,
                path=directory / "vggish.onnx",
                name="vggish",
                inputs=[TensorEntry(VGGISH_INPUT, ("examples", spec.example_frames, spec.mel_bins), "float32")],
                outputs=[TensorEntry(VGGISH_OUTPUT, ("examples", spec.embedding_dim), "float32")],
                example=[torch.randn(2, spec.example_frames, spec.mel_bins)],
            )

        window_inputs = [
            TensorEntry(temporal_graph.EMBEDDINGS_INPUT, ("batch", "steps", count, embedding_dim), "float32")
        ]
        if multimodal:
            window_inputs += [
                TensorEntry(temporal_graph.VGGISH_INPUT, ("batch", "steps", vggish_dim), "float32"),
                TensorEntry(temporal_graph.MFCC_INPUT, ("batch", "steps", mfcc_dim), "float32"),
            ]
        example = [torch.randn(2, 8, count, embedding_dim)]
        if multimodal:
            example += [torch.randn(2, 8, vggish_dim), torch.randn(2, 8, mfcc_dim)]
        ensemble = temporal_graph.TemporalEnsemble(models, normalizations)
        graphs["temporal"] = timed(
            module=_TemporalWithAudio(ensemble) if multimodal else ensemble,
            path=directory / "temporal.onnx",
            name="temporal",
            inputs=window_inputs,
            outputs=[TensorEntry(temporal_graph.PREDICTIONS_OUTPUT, ("batch", "steps", count), "float32")],
            example=example,
        )

        stream = streaming.StreamingEnsemble(models, normalizations)
        state_info = TensorEntry(streaming.STATE_INPUT, ("batch", stream.state_size), "float32")
        graphs["temporal_stream"] = timed(
            module=_StreamWithAudio(stream) if multimodal else _StreamVisualOnly(stream),
            path=directory / "temporal_stream.onnx",
            name="temporal_stream",
            inputs=[*window_inputs, state_info],
            outputs=[
                TensorEntry(temporal_graph.PREDICTIONS_OUTPUT, ("batch", "steps", count), "float32"),
                TensorEntry(streaming.STATE_OUTPUT, ("batch", stream.state_size), "float32"),
            ],
            example=[*example, torch.zeros(2, stream.state_size)],
        )
    return GraphSet(graphs, plan, stream.segments, stream.state_size)
