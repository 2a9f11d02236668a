"""The bundle manifest schema: one typed description that the exporter writes and the runtime reads.

``manifest.json`` is the JSON form of :class:`Manifest`. The exporter builds the dataclasses and writes
:meth:`Manifest.to_dict`; :func:`edgeaff.runtime.artifacts.bundle.load_bundle` reads it back with
:meth:`Manifest.from_dict`, so the two sides cannot drift: a key the writer adds is a field here, and the reader
refuses any key it does not know, any missing key and any value of the wrong type, naming the key's path
(``manifest.models[1].kind: 'bimodal' is not one of multimodal, unimodal``). Keys whose meaning is documentation
(descriptions, rules spelled out in words) have defaults; everything the runtime uses is required.

Schema versions:

* **3** (written by this edgeaff): the keys of version 2. INT8 comes in forms (:data:`INT8_FORMS`): ``int8`` now holds
  full-range weights (for CPUs with VNNI or ARM dot product); ``int8_avx2`` (7-bit weights, for AVX2 CPUs without
  VNNI) exists only beside it, and a graph with ``int8`` but no ``int8_avx2`` runs FP32 on such CPUs (VGGish, whose
  7-bit form lost too much accuracy); VGGish may have INT8 variants. The streaming state is packed by grouped
  convolution, each model's history of one convolution a (steps, channels) block (``streaming.layout`` says so).
* **2**: the same keys as version 1, written through this schema. Every graph variant records its size (``bytes``)
  and the face detector's entry carries its ``detector_spec``. ``int8`` is U8S8 with 7-bit weights; state segments
  are (channels, steps) blocks in model order.
* **1** (edgeaff 0.1 before the typed schema): read by the same parser; ``bytes`` and ``detector_spec`` may be
  absent (the runtime then reads ``face_detector.json`` beside the graph). A version-1 manifest that the schema
  refuses, and any other version, is refused with a message that says to re-export.

Shapes are lists of ints and strings (a string names a dynamic axis). ``models[m]`` is index m of every ``(…, M)``
tensor. Free-form provenance (checkpoint provenance, validation metrics, precision recipes, parity figures) is kept
as plain JSON objects: it documents a bundle and nothing reads it to compute.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import numpy as np

from edgeaff.runtime.choices import Choice
from edgeaff.runtime.spec import (
    OMIT_IF_NONE,
    AudioNormalization,
    FeatureSpec,
    dataclass_from_dict,
    dataclass_to_dict,
)

BUNDLE_FORMAT = "edgeaff-bundle"
MANIFEST_NAME = "manifest.json"
MANIFEST_SCHEMA_VERSION = 3
READABLE_SCHEMA_VERSIONS = (1, 2, 3)


class Precision(Choice):
    """Numeric precision of a bundle's graphs and of the engines built from them.

    ``fp32`` is true FP32; ``fp16`` an FP16 graph with float32 inputs and outputs (TensorRT may also use FP16
    kernels for an FP32 graph); ``int8`` an explicitly quantised (Q/DQ) graph calibrated on real frames.
    """

    FP32 = "fp32"
    FP16 = "fp16"
    INT8 = "int8"


# The forms of the ``int8`` precision (schema version 3; ``docs/export.md``). A form is a variant key, not a
# precision of its own; the runtime picks one per graph by backend and CPU (``runtime/backends/graphs.py``):
# ``int8``: ONNX Runtime's U8S8 with full-range weights, for CPUs with VNNI (AVX-512 VNNI, AVX-VNNI, AMX) or ARM dot
# product; ``int8_avx2``: U8S8 with 7-bit weights, for AVX2 CPUs without VNNI; ``int8_trt``: signed symmetric Q/DQ,
# TensorRT's form. In schema versions 1 and 2, ``int8`` held the 7-bit U8S8 form and there was no ``int8_avx2``.
INT8_CPU = Precision.INT8.value
INT8_CPU_AVX2 = "int8_avx2"
TENSORRT_INT8 = "int8_trt"
INT8_FORMS = (INT8_CPU, INT8_CPU_AVX2, TENSORRT_INT8)
VARIANT_KEYS = (*Precision.values(), INT8_CPU_AVX2, TENSORRT_INT8)


class ModelKind(Choice):
    """Which inputs a model reads: faces only, or faces with VGGish and MFCC audio features."""

    MULTIMODAL = "multimodal"
    UNIMODAL = "unimodal"


class Dimension(Choice):
    """The emotion dimension a model predicts."""

    VALENCE = "valence"
    AROUSAL = "arousal"


GRAPH_ROLES = ("visual", "vggish", "temporal", "temporal_stream", "face_detector")
STATE_BRANCHES = ("visual", "vggish", "mfcc")

PRECISION_RULE = "a precision uses graphs[g].variants[precision] where present, else graphs[g].variants.fp32"
AUDIO_NORMALIZATION_NOTE = (
    "temporal graphs take raw VGGish and MFCC features and apply each model's (x - mean) / std inside; the "
    "per-model constants under models[].normalization are for information"
)
STREAM_CHUNK = "any C >= 1 frames per call"
STREAM_LAYOUT = "each segment is (steps, channels) row-major at offset, oldest step first"
# What schema versions 1 and 2 wrote: their state blocks are (channels, steps).
LEGACY_STREAM_LAYOUT = "each segment is (channels, steps) row-major at offset, oldest step first"


@dataclasses.dataclass(frozen=True)
class TensorEntry:
    """A graph input or output: name, shape (ints; strings name dynamic axes) and numpy dtype name."""

    name: str
    shape: tuple[int | str, ...]
    dtype: str

    def __post_init__(self) -> None:
        try:
            np.dtype(self.dtype)
        except TypeError:
            raise ValueError(f"tensor '{self.name}' has an unknown dtype {self.dtype!r}") from None
        if any(isinstance(d, int) and d < 0 for d in self.shape):
            raise ValueError(f"tensor '{self.name}' has a negative dimension in {list(self.shape)}")


@dataclasses.dataclass(frozen=True)
class VariantEntry:
    """One file of a graph at one precision: path relative to the bundle, sha256, size in bytes."""

    file: str
    sha256: str
    bytes: int | None = dataclasses.field(default=None, metadata=OMIT_IF_NONE)

    def __post_init__(self) -> None:
        if len(self.sha256) != 64 or any(c not in "0123456789abcdef" for c in self.sha256):
            raise ValueError(f"'{self.file}' has no valid sha256 (64 lowercase hex digits)")


@dataclasses.dataclass(frozen=True)
class FileEntry:
    """A file of the bundle and its sha256."""

    file: str
    sha256: str


@dataclasses.dataclass(frozen=True)
class DetectorSource:
    """Where the face detector came from: a description and the source file's sha256."""

    origin: str
    sha256: str


@dataclasses.dataclass(frozen=True)
class GraphEntry:
    """One graph: what it computes, its tensors, opset and one hashed file per precision.

    ``variants`` is keyed by :data:`VARIANT_KEYS` and always has ``fp32``. The face detector's entry also carries
    its decoding constants (``detector_spec``, the JSON form of
    :class:`~edgeaff.runtime.faces.detector_spec.FaceDetectorSpec`), the same constants as a file
    (``spec_file``) and the source model (``source``).
    """

    description: str
    inputs: tuple[TensorEntry, ...]
    outputs: tuple[TensorEntry, ...]
    opset: int
    variants: Mapping[str, VariantEntry]
    detector_spec: Mapping[str, Any] | None = dataclasses.field(default=None, metadata=OMIT_IF_NONE)
    spec_file: FileEntry | None = dataclasses.field(default=None, metadata=OMIT_IF_NONE)
    source: DetectorSource | None = dataclasses.field(default=None, metadata=OMIT_IF_NONE)

    def __post_init__(self) -> None:
        unknown = sorted(set(self.variants) - set(VARIANT_KEYS))
        if unknown:
            raise ValueError(f"unknown precision variants {unknown}; known are {list(VARIANT_KEYS)}")
        if "fp32" not in self.variants:
            raise ValueError("no fp32 variant (every graph has one)")

    def tensor(self, name: str) -> TensorEntry:
        """The input or output called ``name``.

        Raises:
            KeyError: no such tensor.
        """
        for entry in (*self.inputs, *self.outputs):
            if entry.name == name:
                return entry
        raise KeyError(name)


@dataclasses.dataclass(frozen=True, kw_only=True)
class GraphEntries:
    """The bundle's graphs by role; ``vggish`` (multimodal bundles) and ``face_detector`` are optional."""

    visual: GraphEntry
    vggish: GraphEntry | None = dataclasses.field(default=None, metadata=OMIT_IF_NONE)
    temporal: GraphEntry
    temporal_stream: GraphEntry
    face_detector: GraphEntry | None = dataclasses.field(default=None, metadata=OMIT_IF_NONE)

    def __post_init__(self) -> None:
        for role, entry in self.items():
            if role != "face_detector" and (entry.detector_spec or entry.spec_file or entry.source):
                raise ValueError(f"{role}: detector_spec, spec_file and source belong to the face_detector graph")

    def items(self) -> list[tuple[str, GraphEntry]]:
        """``(role, entry)`` of the graphs present, in manifest order."""
        return [(role, entry) for role in GRAPH_ROLES if (entry := getattr(self, role)) is not None]

    def get(self, role: str) -> GraphEntry | None:
        """The entry of ``role``, or ``None`` when the bundle has no such graph."""
        return getattr(self, role) if role in GRAPH_ROLES else None


@dataclasses.dataclass(frozen=True)
class CheckpointEntry:
    """The fold checkpoint a model was exported from."""

    file: str
    sha256: str
    weights_sha256: str
    created: str
    provenance: Mapping[str, Any]


@dataclasses.dataclass(frozen=True)
class ModelEntry:
    """One model of the bundle: index m of every ``(…, M)`` tensor.

    Attributes:
        index: its position (equal to its place in ``Manifest.models``).
        fold: the cross-validation fold it was trained on (``None`` for a model trained on everything).
        dimension: what it predicts.
        kind: which inputs it reads.
        fusion: the leader-follower fusion variant (``paper`` or ``abaw2``) of a multimodal model, else ``None``.
        backbone: the visual backbone's name (``ir50``, ``ir-small``, ``ir-tiny``).
        receptive_field: frames of history one prediction depends on.
        checkpoint: the source checkpoint.
        metrics: its validation metrics (free-form, for information).
        normalization: the fold's audio statistics (applied inside the temporal graphs; for information).
    """

    index: int
    fold: int | None
    dimension: Dimension
    kind: ModelKind
    fusion: str | None
    backbone: str
    receptive_field: int
    checkpoint: CheckpointEntry
    metrics: Mapping[str, Any]
    normalization: AudioNormalization | None

    def __post_init__(self) -> None:
        if self.fold is not None and self.fold < 0:
            raise ValueError(f"fold must be >= 0, got {self.fold}")
        if self.receptive_field < 1:
            raise ValueError(f"receptive_field must be >= 1, got {self.receptive_field}")
        if self.kind == ModelKind.MULTIMODAL and (self.fusion is None or self.normalization is None):
            raise ValueError("a multimodal model needs its fusion variant and its audio normalization")
        if self.kind == ModelKind.UNIMODAL and self.fusion is not None:
            raise ValueError("a unimodal model has no fusion variant")

    @property
    def multimodal(self) -> bool:
        """Whether the model reads VGGish and MFCC features."""
        return self.kind == ModelKind.MULTIMODAL

    @property
    def name(self) -> str:
        """Its column name in per-model outputs: ``fold<k>_<dimension>_<kind>`` (``fold-`` without a fold)."""
        return f"fold{'-' if self.fold is None else self.fold}_{self.dimension}_{self.kind}"


@dataclasses.dataclass(frozen=True)
class VisualEntry:
    """How the visual graph lays out the backbones (``design.md`` §4, shared trunk) and the embedding width E."""

    shared_trunk: bool
    trunk_groups: tuple[tuple[int, ...], ...]
    trunk_sha256: tuple[str, ...]
    trunk_units: int
    embedding_dim: int

    def __post_init__(self) -> None:
        if self.embedding_dim < 1:
            raise ValueError(f"embedding_dim must be >= 1, got {self.embedding_dim}")
        if len(self.trunk_sha256) != len(self.trunk_groups):
            raise ValueError("trunk_sha256 needs one hash per trunk group")


@dataclasses.dataclass(frozen=True)
class VggishEntry:
    """The VGGish weights of a multimodal bundle: where they came from and their tensor digest."""

    source: str
    sha256: str


@dataclasses.dataclass(frozen=True)
class AudioNormalizationEntry:
    """Where the per-model audio normalisation happens: inside the temporal graphs (the runtime feeds raw features)."""

    location: str = "temporal_graph"
    note: str = AUDIO_NORMALIZATION_NOTE

    def __post_init__(self) -> None:
        if self.location != "temporal_graph":
            raise ValueError(f"location must be 'temporal_graph', got {self.location!r}")


@dataclasses.dataclass(frozen=True)
class StateSegment:
    """One causal convolution's history inside the packed stream state: a (channels, steps) block at ``offset``."""

    model: int
    branch: str
    block: int
    conv: int
    channels: int
    steps: int
    offset: int

    def __post_init__(self) -> None:
        if self.branch not in STATE_BRANCHES:
            raise ValueError(f"branch must be one of {', '.join(STATE_BRANCHES)}, got {self.branch!r}")
        if self.channels < 1 or self.steps < 0 or self.offset < 0:
            raise ValueError(f"invalid segment sizes: channels={self.channels}, steps={self.steps}")

    @property
    def size(self) -> int:
        """Number of floats per stream."""
        return self.channels * self.steps

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return dataclass_to_dict(self)


@dataclasses.dataclass(frozen=True, kw_only=True)
class StreamingEntry:
    """The streaming temporal graph's state: tensor names, size, layout, and the receptive field.

    A stream starts from zeros of shape (B, ``state_size``); each call returns the next state under
    ``state_output``. The segments tile the state exactly, in order.
    """

    graph: str = "temporal_stream"
    state_input: str
    state_output: str
    state_size: int
    dtype: str = "float32"
    initial: str = "zeros"
    receptive_field: int
    chunk: str = STREAM_CHUNK
    layout: str = STREAM_LAYOUT
    segments: tuple[StateSegment, ...]

    def __post_init__(self) -> None:
        if self.graph != "temporal_stream" or self.dtype != "float32" or self.initial != "zeros":
            raise ValueError("the stream state is the temporal_stream graph's float32 state, starting from zeros")
        if self.layout not in (STREAM_LAYOUT, LEGACY_STREAM_LAYOUT):
            raise ValueError(
                f"unknown state layout {self.layout!r}; known are {STREAM_LAYOUT!r} and the older "
                f"{LEGACY_STREAM_LAYOUT!r}"
            )
        if self.state_size < 1 or self.receptive_field < 1:
            raise ValueError(f"state_size and receptive_field must be >= 1 ({self.state_size}, {self.receptive_field})")
        offset = 0
        for index, segment in enumerate(self.segments):
            if segment.offset != offset:
                raise ValueError(f"segments[{index}] starts at {segment.offset}, expected {offset}")
            offset += segment.size
        if self.segments and offset != self.state_size:
            raise ValueError(f"the segments cover {offset} floats, the state has {self.state_size}")


@dataclasses.dataclass(frozen=True, kw_only=True)
class Manifest:
    """A bundle's ``manifest.json`` (see the module docstring)."""

    format: str = BUNDLE_FORMAT
    schema_version: int = MANIFEST_SCHEMA_VERSION
    created: str
    versions: Mapping[str, str]
    models: tuple[ModelEntry, ...]
    feature_spec: FeatureSpec
    audio_normalization: AudioNormalizationEntry = dataclasses.field(default_factory=AudioNormalizationEntry)
    visual: VisualEntry
    vggish: VggishEntry | None
    streaming: StreamingEntry
    graphs: GraphEntries
    optional_graphs: tuple[str, ...] = ("face_detector",)
    precisions: tuple[Precision, ...]
    precision_rule: str = PRECISION_RULE
    precision_recipes: Mapping[str, Mapping[str, Any]] = dataclasses.field(default_factory=dict)
    parity: Mapping[str, Any] = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.format != BUNDLE_FORMAT:
            raise ValueError(f"format is {self.format!r}, not {BUNDLE_FORMAT!r}")
        if self.schema_version not in READABLE_SCHEMA_VERSIONS:
            raise ValueError(f"schema version {self.schema_version} is not one of {list(READABLE_SCHEMA_VERSIONS)}")
        self._check_models()
        self._check_precisions()
        self._check_graphs()
        if self.schema_version >= 2:
            self._check_complete()
        self._check_version_rules()

    def _check_models(self) -> None:
        if not self.models:
            raise ValueError("models: the manifest lists no models")
        for position, model in enumerate(self.models):
            if model.index != position:
                raise ValueError(f"models[{position}].index is {model.index}; indices follow the list order")
        seen = set()
        for model in self.models:
            key = (model.fold, model.dimension, model.kind)
            if key in seen:
                raise ValueError(f"models: {model.name} appears twice")
            seen.add(key)
        if self.streaming.receptive_field != max(m.receptive_field for m in self.models):
            raise ValueError("streaming.receptive_field must be the largest model receptive field")
        multimodal = any(m.multimodal for m in self.models)
        if multimodal != (self.graphs.vggish is not None) or multimodal != (self.vggish is not None):
            raise ValueError("graphs.vggish and vggish are present exactly when a model is multimodal")
        covered = sorted(i for group in self.visual.trunk_groups for i in group)
        if covered != list(range(len(self.models))):
            raise ValueError(
                f"visual.trunk_groups must list every model index once, got {list(self.visual.trunk_groups)}"
            )

    def _check_precisions(self) -> None:
        if (
            not self.precisions
            or self.precisions[0] != Precision.FP32
            or len(set(self.precisions)) != len(self.precisions)
        ):
            raise ValueError(f"precisions must start with fp32 and not repeat, got {[str(p) for p in self.precisions]}")
        variants = {key for _, graph in self.graphs.items() for key in graph.variants} - set(INT8_FORMS[1:])
        if variants != set(self.precisions):
            raise ValueError(
                f"precisions {sorted(map(str, self.precisions))} differ from the graphs' variants {sorted(variants)}"
            )

    def _check_graphs(self) -> None:
        count, width = len(self.models), self.visual.embedding_dim
        checks = (
            ("visual", "embeddings", -2, count),
            ("visual", "embeddings", -1, width),
            ("temporal", "embeddings", -2, count),
            ("temporal", "embeddings", -1, width),
            ("temporal", "predictions", -1, count),
            ("temporal_stream", "predictions", -1, count),
            ("temporal_stream", self.streaming.state_input, -1, self.streaming.state_size),
            ("temporal_stream", self.streaming.state_output, -1, self.streaming.state_size),
        )
        for role, name, axis, expected in checks:
            graph = self.graphs.get(role)
            assert graph is not None  # the three are required fields
            try:
                shape = graph.tensor(name).shape
            except KeyError:
                raise ValueError(f"graphs.{role} has no tensor '{name}'") from None
            if len(shape) < -axis or shape[axis] != expected:
                raise ValueError(f"graphs.{role}.{name} has shape {list(shape)}; axis {axis} must be {expected}")

    def _check_complete(self) -> None:
        for role, graph in self.graphs.items():
            for key, variant in graph.variants.items():
                if variant.bytes is None:
                    raise ValueError(f"graphs.{role}.variants.{key}: missing key 'bytes'")
        detector = self.graphs.face_detector
        if detector is not None and detector.detector_spec is None:
            raise ValueError("graphs.face_detector: missing key 'detector_spec'")

    def _check_version_rules(self) -> None:
        """What changed in version 3: the state layout, and ``int8_avx2`` (7-bit) only beside ``int8`` (full range)."""
        current = self.schema_version >= 3
        expected = STREAM_LAYOUT if current else LEGACY_STREAM_LAYOUT
        if self.streaming.layout != expected:
            raise ValueError(f"streaming.layout must be {expected!r} in schema version {self.schema_version}")
        for role, graph in self.graphs.items():
            cpu_forms = {INT8_CPU, INT8_CPU_AVX2} & set(graph.variants)
            if current and cpu_forms == {INT8_CPU_AVX2}:
                raise ValueError(
                    f"graphs.{role}: int8_avx2 (7-bit weights, for CPUs without VNNI) comes with int8 (full range)"
                )
            if not current and INT8_CPU_AVX2 in cpu_forms:
                raise ValueError(f"graphs.{role}: int8_avx2 exists from schema version 3")

    @property
    def multimodal(self) -> bool:
        """Whether the temporal graphs take VGGish and MFCC inputs."""
        return self.graphs.vggish is not None

    def to_dict(self) -> dict[str, Any]:
        """The JSON document (``format`` and ``schema_version`` first)."""
        return dataclass_to_dict(self)

    @classmethod
    def from_dict(cls, document: object) -> Manifest:
        """Read and validate a parsed ``manifest.json``.

        Raises:
            InvalidInputError: the first problem, with the key's path (``manifest.streaming.state_size: ...``).
        """
        return dataclass_from_dict(cls, document, where="manifest")
