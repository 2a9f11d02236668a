"""Read and validate an exported bundle (``design.md`` §3): ``manifest.json`` plus the ONNX graphs it lists.

The manifest is read through its typed schema (:mod:`edgeaff.runtime.artifacts.manifest`); :func:`load_bundle`
refuses, each with a one-line message: a missing or unreadable manifest, a different format or an unknown schema
version, a manifest the schema refuses (the message names the key), a graph path that leaves the bundle
(absolute, ``..``, or a symlink pointing outside), a missing graph file, and a file whose sha256 differs from the
manifest's.

Graph roles: ``visual`` (uint8 face crops → per-model embeddings), ``vggish`` (log-mel examples → raw 128-D
features; multimodal bundles), ``temporal`` (a window of embeddings [+ raw audio] → per-model predictions),
``temporal_stream`` (the same per chunk with explicit state), optionally ``face_detector``. Each graph has
``variants`` keyed by precision (``fp32`` always; ``fp16``, ``int8`` when exported); a precision without its own
file for a graph uses that graph's ``fp32`` file.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path, PurePosixPath

import numpy as np

from edgeaff.runtime.artifacts.manifest import (
    BUNDLE_FORMAT,
    MANIFEST_NAME,
    MANIFEST_SCHEMA_VERSION,
    READABLE_SCHEMA_VERSIONS,
    TENSORRT_INT8,
    Dimension,
    GraphEntry,
    Manifest,
    ModelEntry,
    Precision,
    StreamingEntry,
)
from edgeaff.runtime.errors import InvalidInputError
from edgeaff.runtime.files import read_json, sha256_file
from edgeaff.runtime.spec import FeatureSpec

MANIFEST_MAX_BYTES = 16 * 1024 * 1024


class BundleError(InvalidInputError):
    """A bundle is incomplete, tampered with, or from an incompatible edgeaff."""


@dataclasses.dataclass(frozen=True)
class GraphTensor:
    """A graph input or output: name, shape (ints; strings name dynamic axes) and numpy dtype."""

    name: str
    shape: tuple[int | str, ...]
    dtype: np.dtype


@dataclasses.dataclass(frozen=True)
class GraphVariant:
    """One file of a graph at one precision."""

    precision: str
    path: Path
    sha256: str


@dataclasses.dataclass(frozen=True)
class Graph:
    """A graph of the bundle with its tensors and precision variants."""

    role: str
    inputs: tuple[GraphTensor, ...]
    outputs: tuple[GraphTensor, ...]
    variants: Mapping[str, GraphVariant]

    def file(self, precision: Precision | str = Precision.FP32, *, tensorrt: bool = False) -> Path:
        """Path of the graph at ``precision``; the FP32 file when this graph has no such variant.

        Raises:
            InvalidInputError: an unknown precision.
        """
        return self.variant(precision, tensorrt=tensorrt).path

    def variant(self, precision: Precision | str = Precision.FP32, *, tensorrt: bool = False) -> GraphVariant:
        """The variant used at ``precision``: TensorRT's INT8 form when ``tensorrt`` and present, else the
        ``precision`` file, else FP32.

        Raises:
            InvalidInputError: an unknown precision.
        """
        wanted = Precision.parse(precision)
        if tensorrt and wanted is Precision.INT8 and TENSORRT_INT8 in self.variants:
            return self.variants[TENSORRT_INT8]
        return self.variants.get(wanted.value) or self.variants[Precision.FP32.value]


@dataclasses.dataclass(frozen=True)
class Bundle:
    """A validated bundle: its directory, typed manifest and graph files."""

    root: Path
    manifest: Manifest
    graphs: Mapping[str, Graph]

    @property
    def feature_spec(self) -> FeatureSpec:
        """How the inputs are computed (the checkpoints' feature spec)."""
        return self.manifest.feature_spec

    @property
    def models(self) -> tuple[ModelEntry, ...]:
        """The models in output order (index m of every ``(…, M)`` output)."""
        return self.manifest.models

    @property
    def dimensions(self) -> tuple[Dimension, ...]:
        """The dimensions the bundle predicts, in ``valence, arousal`` order."""
        present = {m.dimension for m in self.models}
        return tuple(d for d in Dimension if d in present)

    @property
    def precisions(self) -> tuple[Precision, ...]:
        """Precisions exported (``fp32`` first)."""
        return self.manifest.precisions

    @property
    def multimodal(self) -> bool:
        """Whether the temporal graphs take VGGish and MFCC inputs."""
        return "vggish" in self.graphs

    @property
    def embedding_dim(self) -> int:
        """E, the width of each model's per-frame visual embedding."""
        return self.manifest.visual.embedding_dim

    @property
    def shared_trunk(self) -> bool:
        """Whether one visual trunk serves every model."""
        return self.manifest.visual.shared_trunk

    @property
    def streaming(self) -> StreamingEntry:
        """The streaming graph's state: names, size, layout."""
        return self.manifest.streaming

    @property
    def face_detector(self) -> GraphEntry | None:
        """The face detector's manifest entry (``detector_spec`` holds its decoding constants), or ``None``."""
        return self.manifest.graphs.face_detector


def _fail(root: Path, message: str) -> BundleError:
    return BundleError(f"bundle {root}: {message}")


def _resolve_inside(root: Path, relative: object) -> Path:
    """The file a manifest path names, refusing anything that would leave the bundle."""
    if not isinstance(relative, str) or not relative:
        raise _fail(root, f"graph file entry {relative!r} is not a relative path")
    pure = PurePosixPath(relative)
    if pure.is_absolute() or relative.startswith(("/", "\\")) or ":" in pure.parts[0]:
        raise _fail(root, f"graph file '{relative}' is an absolute path; bundle files must be inside the bundle")
    if ".." in pure.parts or "\\" in relative:
        raise _fail(root, f"graph file '{relative}' points outside the bundle ('..' or '\\' in the path)")
    candidate = root.joinpath(*pure.parts)
    real_root = root.resolve()
    if not candidate.resolve().is_relative_to(real_root):
        raise _fail(root, f"graph file '{relative}' is a link that points outside the bundle")
    if not candidate.is_file():
        raise _fail(root, f"graph file '{relative}' is missing; re-export the bundle or copy it completely")
    return candidate


def _graph(root: Path, role: str, entry: GraphEntry, *, verify: bool) -> Graph:
    variants = {}
    for key, info in entry.variants.items():
        path = _resolve_inside(root, info.file)
        if verify and sha256_file(path) != info.sha256:
            raise _fail(root, f"{info.file} does not match its sha256 in the manifest (modified or corrupted)")
        variants[key] = GraphVariant(key, path, info.sha256)
    tensors = [
        tuple(GraphTensor(t.name, t.shape, np.dtype(t.dtype)) for t in group) for group in (entry.inputs, entry.outputs)
    ]
    return Graph(role, tensors[0], tensors[1], variants)


def read_manifest(root: Path) -> Manifest:
    """Parse and validate ``root/manifest.json`` (no graph file is opened).

    Raises:
        BundleError: with a one-line reason.
    """
    manifest_path = root / MANIFEST_NAME
    if not manifest_path.is_file():
        raise BundleError(f"{root} is not a complete bundle (no {MANIFEST_NAME}); re-run 'edgeaff export'")
    try:
        document = read_json(manifest_path, max_bytes=MANIFEST_MAX_BYTES)
    except InvalidInputError as exc:
        raise _fail(root, f"cannot read {MANIFEST_NAME} ({exc})") from None
    if not isinstance(document, dict) or document.get("format") != BUNDLE_FORMAT:
        raise _fail(root, f"{MANIFEST_NAME} is not an edgeaff bundle manifest")
    version = document.get("schema_version")
    if version not in READABLE_SCHEMA_VERSIONS:
        newer = isinstance(version, int) and not isinstance(version, bool) and version > MANIFEST_SCHEMA_VERSION
        raise _fail(
            root,
            f"manifest schema version {version!r} is not supported by this edgeaff (it reads "
            f"{', '.join(map(str, READABLE_SCHEMA_VERSIONS))}); "
            + ("upgrade edgeaff or re-export the bundle with this one" if newer else "re-export the bundle"),
        )
    try:
        return Manifest.from_dict(document)
    except InvalidInputError as exc:
        raise _fail(
            root, f"{MANIFEST_NAME} does not match the schema of version {version}: {exc}; re-export the bundle"
        ) from None


def load_bundle(path: str | Path, *, verify_hashes: bool = True) -> Bundle:
    """Open and validate a bundle directory.

    Args:
        path: the bundle directory (the one holding ``manifest.json``).
        verify_hashes: recompute every graph file's sha256 (on by default; a few hundred MB take a second or two).

    Raises:
        BundleError: with a one-line reason (see the module docstring).

    Example:
        >>> bundle = load_bundle("bundle")  # doctest: +SKIP
        >>> bundle.graphs["visual"].file("int8")  # doctest: +SKIP
        >>> [(m.fold, m.dimension, m.kind) for m in bundle.models]  # doctest: +SKIP
    """
    root = Path(path)
    manifest = read_manifest(root)
    graphs = {role: _graph(root, role, entry, verify=verify_hashes) for role, entry in manifest.graphs.items()}
    return Bundle(root=root, manifest=manifest, graphs=graphs)


def zero_stream_state(bundle: Bundle, *, batch: int = 1) -> np.ndarray:
    """The initial state of the streaming graph: zeros of shape (batch, S), float32.

    A zero state is the windowed graph's zero padding: a stream started from it gives exactly the windowed
    predictions of a window starting at the stream's first frame.
    """
    if batch < 1:
        raise InvalidInputError(f"batch must be at least 1, got {batch}")
    return np.zeros((batch, bundle.streaming.state_size), dtype=np.float32)
