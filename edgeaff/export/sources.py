"""Which fold checkpoints an export reads, and whether they can share one bundle (no torch).

Each command-line argument is a fold checkpoint or a training run directory. A run directory's ``runs.json``
(``{"format": "edgeaff-run", "schema_version": 1, "runs": [...]}``) lists its runs; the finished ones are used. A
directory without ``runs.json`` contributes every edgeaff fold checkpoint (``*.safetensors`` with edgeaff
metadata) below it. Checkpoints are read through their headers only.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from edgeaff.runtime.artifacts.checkpoint_header import CheckpointError, read_checkpoint_metadata
from edgeaff.runtime.errors import InvalidInputError
from edgeaff.runtime.files import read_json, sha256_file

RUN_FORMAT = "edgeaff-run"
RUN_SCHEMA_VERSION = 1
RUNS_MAX_BYTES = 16 * 1024 * 1024


@dataclasses.dataclass(frozen=True)
class CheckpointSource:
    """One fold checkpoint to export: its path, file hash and header metadata."""

    path: Path
    sha256: str
    metadata: dict[str, Any]

    @property
    def label(self) -> str:
        """``fold0/valence/multimodal`` style name for messages and tables."""
        fold = self.metadata.get("fold")
        return f"fold{'-' if fold is None else fold}/{self.metadata['dimension']}/{self.metadata['model']['kind']}"

    @property
    def key(self) -> tuple[Any, str, str]:
        """(fold, dimension, model kind): no two models of a bundle may share it."""
        return (self.metadata.get("fold"), self.metadata["dimension"], self.metadata["model"]["kind"])


def _from_runs_json(directory: Path, runs_file: Path) -> list[Path]:
    document = read_json(runs_file, max_bytes=RUNS_MAX_BYTES)
    if not isinstance(document, dict) or document.get("format") != RUN_FORMAT:
        raise InvalidInputError(f"{runs_file}: not an edgeaff run index (format must be '{RUN_FORMAT}')")
    if document.get("schema_version") != RUN_SCHEMA_VERSION:
        raise InvalidInputError(
            f"{runs_file}: run index schema version {document.get('schema_version')} is not supported "
            f"(supports {RUN_SCHEMA_VERSION}); use a matching edgeaff version"
        )
    runs = document.get("runs")
    if not isinstance(runs, list):
        raise InvalidInputError(f"{runs_file}: 'runs' must be a list")
    paths = []
    for run in runs:
        if not isinstance(run, dict) or run.get("status") != "finished":
            continue
        checkpoint = run.get("checkpoint")
        if not isinstance(checkpoint, str) or not checkpoint:
            raise InvalidInputError(f"{runs_file}: a finished run has no 'checkpoint' path: {run}")
        path = Path(checkpoint)
        paths.append(path if path.is_absolute() else directory / path)
    return paths


def _from_directory(directory: Path) -> list[Path]:
    runs_file = directory / "runs.json"
    if runs_file.is_file():
        return _from_runs_json(directory, runs_file)
    found = []
    for path in sorted(directory.rglob("*.safetensors")):
        try:
            read_checkpoint_metadata(path)
        except CheckpointError:
            continue
        found.append(path)
    return found


def collect_sources(arguments: Sequence[str | Path]) -> list[CheckpointSource]:
    """Resolve checkpoint files and run directories into the list of checkpoints to export, in argument order.

    Raises:
        InvalidInputError: a missing path, an unreadable checkpoint or run index, nothing to export, the same
            checkpoint twice, or two models with the same (fold, dimension, kind).
    """
    paths: list[Path] = []
    for argument in arguments:
        path = Path(argument)
        if path.is_dir():
            found = _from_directory(path)
            if not found:
                raise InvalidInputError(
                    f"{path}: no finished runs in runs.json and no edgeaff fold checkpoints (*.safetensors) found"
                )
            paths += found
        elif path.is_file():
            paths.append(path)
        else:
            raise InvalidInputError(f"{path}: no such checkpoint file or run directory")
    if not paths:
        raise InvalidInputError("nothing to export: give fold checkpoints or training run directories")
    sources: list[CheckpointSource] = []
    seen_files: dict[str, Path] = {}
    seen_keys: dict[tuple[Any, str, str], Path] = {}
    for path in paths:
        metadata = read_checkpoint_metadata(path)
        digest = sha256_file(path)
        if digest in seen_files:
            raise InvalidInputError(f"{path} and {seen_files[digest]} are the same checkpoint; give it once")
        source = CheckpointSource(path, digest, metadata)
        if source.key in seen_keys:
            raise InvalidInputError(
                f"{path} and {seen_keys[source.key]} are both {source.label}; a bundle holds one model per fold, "
                "dimension and kind: export them into separate bundles"
            )
        seen_files[digest] = path
        seen_keys[source.key] = path
        sources.append(source)
    return sources


def check_compatible(sources: Sequence[CheckpointSource]) -> dict[str, Any]:
    """Check that the models can share the bundle's graphs; return the bundle's feature spec (a JSON mapping).

    All models need the same backbone configuration (one visual graph, one embedding width) and the same face,
    window and MFCC settings; multimodal models additionally the same VGGish settings and weights.

    Raises:
        InvalidInputError: naming the two checkpoints that differ and what differs.
    """
    first = sources[0]
    for other in sources[1:]:
        for what, getter in (
            ("backbone configuration", lambda m: m["model"]["backbone"]),
            ("face crop settings", lambda m: m["feature_spec"]["face"]),
            ("window settings", lambda m: m["feature_spec"]["window"]),
            ("MFCC settings", lambda m: m["feature_spec"]["mfcc"]),
            ("feature spec version", lambda m: m["feature_spec"]["version"]),
        ):
            if getter(first.metadata) != getter(other.metadata):
                raise InvalidInputError(
                    f"{first.path} and {other.path} differ in their {what} "
                    f"({_short(getter(first.metadata))} vs {_short(getter(other.metadata))}); models in one bundle "
                    "share the visual and feature graphs: export them into separate bundles"
                )
    multimodal = [s for s in sources if s.metadata["model"]["kind"] == "multimodal"]
    for other in multimodal[1:]:
        if other.metadata["feature_spec"]["vggish"] != multimodal[0].metadata["feature_spec"]["vggish"]:
            raise InvalidInputError(
                f"{multimodal[0].path} and {other.path} were trained on VGGish features of different settings or "
                "weights; one bundle has one VGGish graph: export them into separate bundles"
            )
    spec = (multimodal[0] if multimodal else first).metadata["feature_spec"]
    return dict(spec)


def _short(value: Any) -> str:
    if isinstance(value, dict) and "name" in value:
        return str(value["name"])
    text = json.dumps(value, sort_keys=True)
    return text if len(text) <= 60 else text[:57] + "..."
