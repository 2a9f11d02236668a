"""Build a bundle's manifest through the typed schema (:mod:`edgeaff.runtime.artifacts.manifest`; no torch).

What a runtime needs: ``models`` (index m of every (…, M) output), ``graphs`` (tensor names, shapes, dtypes, one
hashed file per precision), ``streaming`` (packed state size and layout), ``audio_normalization`` (where the
per-model constants are applied: inside the temporal graphs), ``feature_spec`` (how to compute the inputs) and
``visual`` (shared trunk or not, embedding width). The rest documents provenance, parity and precision recipes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgeaff.export.bundle import graph_entry
from edgeaff.export.sources import CheckpointSource
from edgeaff.runtime.artifacts.manifest import (
    INT8_FORMS,
    CheckpointEntry,
    Dimension,
    GraphEntries,
    GraphEntry,
    Manifest,
    ModelEntry,
    ModelKind,
    Precision,
    StreamingEntry,
    VggishEntry,
    VisualEntry,
)
from edgeaff.runtime.spec import FeatureSpec

if TYPE_CHECKING:
    from edgeaff.export.torch2onnx import GraphSet
    from edgeaff.train.checkpoint import CheckpointMetadata
    from edgeaff.train.vggish import VggishWeights


def graph_descriptions(spec: FeatureSpec) -> dict[str, str]:
    """What each graph computes, in words, with the feature widths of ``spec``."""
    vggish = f"raw vggish (B, L, {spec.vggish.embedding_dim}), raw mfcc (B, L, {spec.mfcc.dim})"
    return {
        "visual": f"uint8 RGB face crops (N, {spec.face.image_size}, {spec.face.image_size}, 3) -> centre crop to "
        f"{spec.face.crop_size}, (x/255-0.5)/0.5, backbones -> unit-norm embeddings (N, M, E), model order as in "
        "'models'",
        "vggish": f"log-mel examples (N, {spec.vggish.example_frames}, {spec.vggish.mel_bins}) -> raw VGGish "
        f"embeddings (N, {spec.vggish.embedding_dim}), no PCA or quantisation",
        "temporal": f"window of embeddings (B, L, M, E) [+ {vggish}] -> predictions (B, L, M); causal, zero history "
        "before the window's first frame",
        "temporal_stream": "chunk of C >= 1 frames (B, C, M, E) [+ raw audio] and state (B, S) -> predictions "
        "(B, C, M) and state_out (B, S); start from zeros",
    }


def model_entries(
    sources: Sequence[CheckpointSource], metadata: Sequence[CheckpointMetadata]
) -> tuple[ModelEntry, ...]:
    """One :class:`ModelEntry` per checkpoint, in bundle order."""
    return tuple(
        ModelEntry(
            index=index,
            fold=meta.fold,
            dimension=Dimension.parse(meta.dimension),
            kind=ModelKind.parse(meta.model.kind),
            fusion=meta.model.fusion,
            backbone=meta.model.backbone.name,
            receptive_field=meta.model.receptive_field,
            checkpoint=CheckpointEntry(
                file=source.path.name,
                sha256=source.sha256,
                weights_sha256=meta.weights_sha256,
                created=meta.created,
                provenance=meta.provenance,
            ),
            metrics=meta.metrics,
            normalization=meta.normalization,
        )
        for index, (source, meta) in enumerate(zip(sources, metadata, strict=True))
    )


def build_manifest(
    directory: Path,
    *,
    sources: Sequence[CheckpointSource],
    metadata: Sequence[CheckpointMetadata],
    feature_spec: FeatureSpec,
    graph_set: GraphSet,
    files: Mapping[str, Mapping[str, str]],
    vggish: VggishWeights | None,
    face_detector: GraphEntry | None,
    parity: Mapping[str, Any],
    recipes: Mapping[str, Any],
    versions: Mapping[str, str],
    created: str,
) -> Manifest:
    """The bundle's manifest (validated by the schema as it is built).

    Args:
        directory: the staging directory holding the graph files named in ``files``.
        files: per graph role, the file of each variant key (``fp32``, ``fp16``, ``int8``, ``int8_trt``).
    """
    models = model_entries(sources, metadata)
    descriptions = graph_descriptions(feature_spec)
    graphs = {
        name: graph_entry(
            directory,
            description=descriptions[name],
            inputs=graph.inputs,
            outputs=graph.outputs,
            files=files[name],
            opset=graph.opset,
        )
        for name, graph in graph_set.graphs.items()
    }
    # ``int8_avx2`` and ``int8_trt`` are forms of ``int8``, not precisions of their own.
    present = {key for per_graph in files.values() for key in per_graph} - set(INT8_FORMS[1:])
    trunks = graph_set.trunks
    stream = graph_set.graphs["temporal_stream"]  # its state is the last input and the last output
    return Manifest(
        created=created,
        versions=dict(versions),
        models=models,
        feature_spec=feature_spec,
        visual=VisualEntry(
            shared_trunk=trunks.shared,
            trunk_groups=trunks.groups,
            trunk_sha256=trunks.digests,
            trunk_units=trunks.trunk_units,
            embedding_dim=metadata[0].model.backbone.embedding_dim,
        ),
        vggish=None if vggish is None else VggishEntry(source=vggish.source, sha256=vggish.sha256),
        streaming=StreamingEntry(
            state_input=stream.inputs[-1].name,
            state_output=stream.outputs[-1].name,
            state_size=graph_set.state_size,
            receptive_field=max(model.receptive_field for model in models),
            segments=graph_set.state_segments,
        ),
        graphs=GraphEntries(**graphs, face_detector=face_detector),
        precisions=tuple(p for p in Precision if p.value in present),
        precision_recipes=dict(recipes),
        parity=dict(parity),
    )
