"""Read and validate an exported bundle (``design.md`` §3): ``manifest.json`` plus the ONNX graphs it lists.

:func:`load_bundle` refuses, each with a one-line message: a missing or unreadable manifest, a different format or
an unknown schema version, a graph path that leaves the bundle (absolute, ``..``, or a symlink pointing outside),
a missing graph file, and a file whose sha256 differs from the manifest's.

Graph roles (``manifest["graphs"]``): ``visual`` (uint8 face crops → per-model embeddings), ``vggish`` (log-mel
examples → raw 128-D features; multimodal bundles), ``temporal`` (a window of embeddings [+ raw audio] → per-model
predictions), ``temporal_stream`` (the same per chunk with explicit state), optionally ``face_detector``. Each
graph has ``variants`` keyed by precision (``fp32`` always; ``fp16``, ``int8`` when exported); a precision
without its own file for a graph uses that graph's ``fp32`` file.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np

from edgeaff.runtime.errors import InvalidInputError
from edgeaff.runtime.files import read_json, sha256_file
from edgeaff.runtime.spec import FeatureSpec

BUNDLE_FORMAT = "edgeaff-bundle"
BUNDLE_SCHEMA_VERSION = 1
MANIFEST_NAME = "manifest.json"
MANIFEST_MAX_BYTES = 16 * 1024 * 1024
PRECISIONS = ("fp32", "fp16", "int8")
# The INT8 graph in TensorRT's form (signed symmetric Q/DQ); ``int8`` holds ONNX Runtime's U8S8 form.
TENSORRT_INT8 = "int8_trt"
VARIANT_KEYS = (*PRECISIONS, TENSORRT_INT8)
GRAPH_ROLES = ("visual", "vggish", "temporal", "temporal_stream", "face_detector")


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

    def file(self, precision: str = "fp32", *, tensorrt: bool = False) -> Path:
        """Path of the graph at ``precision``; the FP32 file when this graph has no such variant.

        Raises:
            BundleError: an unknown precision.
        """
        if precision not in PRECISIONS:
            raise BundleError(f"unknown precision '{precision}'; choose one of {', '.join(PRECISIONS)}")
        return self.variant(precision, tensorrt=tensorrt).path

    def variant(self, precision: str = "fp32", *, tensorrt: bool = False) -> GraphVariant:
        """The variant used at ``precision``: TensorRT's INT8 form when ``tensorrt`` and present, else the
        ``precision`` file, else FP32."""
        if precision not in PRECISIONS:
            raise BundleError(f"unknown precision '{precision}'; choose one of {', '.join(PRECISIONS)}")
        if tensorrt and precision == "int8" and TENSORRT_INT8 in self.variants:
            return self.variants[TENSORRT_INT8]
        return self.variants.get(precision) or self.variants["fp32"]


@dataclasses.dataclass(frozen=True)
class Bundle:
    """A validated bundle."""

    root: Path
    manifest: Mapping[str, Any]
    feature_spec: FeatureSpec
    graphs: Mapping[str, Graph]

    @property
    def models(self) -> list[dict[str, Any]]:
        """The models in output order (index m of every ``(…, M)`` output)."""
        return list(self.manifest["models"])

    @property
    def precisions(self) -> list[str]:
        """Precisions exported (``fp32`` first)."""
        return list(self.manifest["precisions"])

    @property
    def multimodal(self) -> bool:
        """Whether the temporal graphs take VGGish and MFCC inputs."""
        return "vggish" in self.graphs


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


def _tensors(root: Path, graph: str, entries: object) -> tuple[GraphTensor, ...]:
    if not isinstance(entries, list):
        raise _fail(root, f"graph '{graph}' has no tensor list")
    try:
        return tuple(GraphTensor(str(e["name"]), tuple(e["shape"]), np.dtype(e["dtype"])) for e in entries)
    except (KeyError, TypeError) as exc:
        raise _fail(root, f"graph '{graph}' has a malformed tensor entry ({exc})") from None


def _graph(root: Path, role: str, entry: object, *, verify: bool) -> Graph:
    if not isinstance(entry, dict) or not isinstance(entry.get("variants"), dict):
        raise _fail(root, f"graph '{role}' has no variants")
    variants = {}
    for precision, info in entry["variants"].items():
        if precision not in VARIANT_KEYS:
            raise _fail(root, f"graph '{role}' has an unknown precision '{precision}'")
        if not isinstance(info, dict) or not isinstance(info.get("sha256"), str):
            raise _fail(root, f"graph '{role}' ({precision}) has no sha256")
        path = _resolve_inside(root, info.get("file"))
        if verify and sha256_file(path) != info["sha256"]:
            raise _fail(root, f"{info['file']} does not match its sha256 in the manifest (modified or corrupted)")
        variants[precision] = GraphVariant(precision, path, info["sha256"])
    if "fp32" not in variants:
        raise _fail(root, f"graph '{role}' has no fp32 variant")
    return Graph(role, _tensors(root, role, entry.get("inputs")), _tensors(root, role, entry.get("outputs")), variants)


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
    """
    root = Path(path)
    manifest_path = root / MANIFEST_NAME
    if not manifest_path.is_file():
        raise BundleError(f"{root} is not a complete bundle (no {MANIFEST_NAME}); re-run 'edgeaff export'")
    try:
        manifest = read_json(manifest_path, max_bytes=MANIFEST_MAX_BYTES)
    except InvalidInputError as exc:
        raise _fail(root, f"cannot read {MANIFEST_NAME} ({exc})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != BUNDLE_FORMAT:
        raise _fail(root, f"{MANIFEST_NAME} is not an edgeaff bundle manifest")
    version = manifest.get("schema_version")
    if version != BUNDLE_SCHEMA_VERSION:
        raise _fail(
            root,
            f"manifest schema version {version!r} is not supported by this edgeaff (supports "
            f"{BUNDLE_SCHEMA_VERSION}); use a matching edgeaff or re-export",
        )
    graphs_entry = manifest.get("graphs")
    if not isinstance(graphs_entry, dict) or not graphs_entry:
        raise _fail(root, "the manifest lists no graphs")
    unknown = sorted(set(graphs_entry) - set(GRAPH_ROLES))
    if unknown:
        raise _fail(root, f"unknown graph roles {unknown}; known roles are {list(GRAPH_ROLES)}")
    for required in ("visual", "temporal", "temporal_stream"):
        if required not in graphs_entry:
            raise _fail(root, f"the manifest has no '{required}' graph")
    graphs = {role: _graph(root, role, entry, verify=verify_hashes) for role, entry in graphs_entry.items()}
    try:
        feature_spec = FeatureSpec.from_dict(manifest["feature_spec"])
    except KeyError:
        raise _fail(root, "the manifest has no feature_spec") from None
    if not isinstance(manifest.get("models"), list) or not manifest["models"]:
        raise _fail(root, "the manifest lists no models")
    return Bundle(root=root, manifest=manifest, feature_spec=feature_spec, graphs=graphs)


def zero_stream_state(bundle: Bundle, *, batch: int = 1) -> np.ndarray:
    """The initial state of the streaming graph: zeros of shape (batch, S), float32.

    A zero state is the windowed graph's zero padding: a stream started from it gives exactly the windowed
    predictions of a window starting at the stream's first frame.
    """
    if batch < 1:
        raise InvalidInputError(f"batch must be at least 1, got {batch}")
    size = int(bundle.manifest["streaming"]["state_size"])
    return np.zeros((batch, size), dtype=np.float32)
