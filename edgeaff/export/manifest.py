"""Assemble a bundle's ``manifest.json`` content (no torch).

What a runtime needs: ``models`` (index m of every (…, M) output), ``graphs`` (tensor names, shapes, dtypes, one
hashed file per precision), ``streaming`` (packed state size and layout), ``audio_normalization`` (where the
per-model constants are applied: inside the temporal graphs), ``feature_spec`` (how to compute the inputs) and
``visual`` (shared trunk or not). The rest documents provenance, parity and precision recipes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgeaff.export.bundle import graph_entry
from edgeaff.export.sources import CheckpointSource
from edgeaff.runtime.artifacts.bundle import TENSORRT_INT8
from edgeaff.runtime.spec import FeatureSpec

if TYPE_CHECKING:
    from edgeaff.export.torch2onnx import GraphSet
    from edgeaff.train.checkpoint import CheckpointMetadata

GRAPH_DESCRIPTIONS = {
    "visual": "uint8 RGB face crops (N, S, S, 3) -> centre crop, (x/255-0.5)/0.5, backbones -> unit-norm embeddings "
    "(N, M, E), model order as in 'models'",
    "vggish": "log-mel examples (N, 96, 64) -> raw VGGish embeddings (N, 128), no PCA or quantisation",
    "temporal": "window of embeddings (B, L, M, E) [+ raw vggish (B, L, 128), raw mfcc (B, L, 39)] -> predictions "
    "(B, L, M); causal, zero history before the window's first frame",
    "temporal_stream": "chunk of C >= 1 frames (B, C, M, E) [+ raw audio] and state (B, S) -> predictions (B, C, M) "
    "and state_out (B, S); start from zeros",
}


def build_manifest(
    directory: Path,
    *,
    sources: Sequence[CheckpointSource],
    metadata: Sequence[CheckpointMetadata],
    feature_spec: FeatureSpec,
    graph_set: GraphSet,
    files: Mapping[str, Mapping[str, str]],
    vggish: Any,
    parity: Mapping[str, Any],
    recipes: Mapping[str, Any],
    versions: Mapping[str, str],
    created: str,
) -> dict[str, Any]:
    """The manifest document (without format/schema keys, which :func:`bundle.write_manifest` adds)."""
    models = []
    for index, (source, meta) in enumerate(zip(sources, metadata, strict=True)):
        models.append(
            {
                "index": index,
                "fold": meta.fold,
                "dimension": meta.dimension,
                "kind": meta.model.kind,
                "fusion": meta.model.fusion,
                "backbone": meta.model.backbone.name,
                "receptive_field": meta.model.receptive_field,
                "checkpoint": {
                    "file": source.path.name,
                    "sha256": source.sha256,
                    "weights_sha256": meta.weights_sha256,
                    "created": meta.created,
                    "provenance": meta.provenance,
                },
                "metrics": meta.metrics,
                "normalization": None if meta.normalization is None else meta.normalization.to_dict(),
            }
        )
    graphs = {
        name: graph_entry(
            directory,
            description=GRAPH_DESCRIPTIONS[name],
            inputs=[t.to_dict() for t in graph.inputs],
            outputs=[t.to_dict() for t in graph.outputs],
            files=files[name],
            opset=graph.opset,
        )
        for name, graph in graph_set.graphs.items()
    }
    # ``int8_trt`` is the TensorRT form of ``int8``, not a precision of its own.
    precisions = ["fp32", *sorted({p for per_graph in files.values() for p in per_graph} - {"fp32", TENSORRT_INT8})]
    return {
        "created": created,
        "versions": dict(versions),
        "models": models,
        "feature_spec": feature_spec.to_dict(),
        "audio_normalization": {
            "location": "temporal_graph",
            "note": "temporal graphs take raw VGGish and MFCC features and apply each model's (x - mean) / std "
            "inside; the per-model constants under models[].normalization are for information",
        },
        "visual": {**graph_set.trunks.to_dict(), "embedding_dim": metadata[0].model.backbone.embedding_dim},
        "vggish": None if vggish is None else {"source": vggish.source, "sha256": vggish.sha256},
        "streaming": {
            "graph": "temporal_stream",
            "state_input": "state",
            "state_output": "state_out",
            "state_size": graph_set.state_size,
            "dtype": "float32",
            "initial": "zeros",
            "receptive_field": max(meta.model.receptive_field for meta in metadata),
            "chunk": "any C >= 1 frames per call",
            "layout": "each segment is (channels, steps) row-major at offset, oldest step first",
            "segments": [s.to_dict() for s in graph_set.state_segments],
        },
        "graphs": graphs,
        "optional_graphs": ["face_detector"],
        "precisions": precisions,
        "precision_rule": "a precision uses graphs[g].variants[precision] where present, else graphs[g].variants.fp32",
        "precision_recipes": dict(recipes),
        "parity": dict(parity),
    }
