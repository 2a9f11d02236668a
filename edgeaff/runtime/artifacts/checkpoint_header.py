"""Read the metadata of an edgeaff fold checkpoint without torch.

A fold checkpoint is one safetensors file: the weights, and in the header's ``__metadata__`` the key
``edgeaff`` holding a JSON document (model config, dimension, fold, feature spec, normalisation, metrics,
provenance, versions, weights hash). The safetensors header is an 8-byte little-endian length followed by JSON, so
any tool can read it; this module does so with the standard library only.
"""

from __future__ import annotations

import struct
from pathlib import Path
from typing import Any

from edgeaff.runtime.errors import InvalidInputError
from edgeaff.runtime.files import parse_json

CHECKPOINT_FORMAT = "edgeaff-fold-checkpoint"
CHECKPOINT_SCHEMA_VERSION = 1
METADATA_KEY = "edgeaff"
_MAX_HEADER_BYTES = 100 * 1024 * 1024  # safetensors' own limit
_MAX_METADATA_BYTES = 16 * 1024 * 1024


class CheckpointError(InvalidInputError):
    """A checkpoint file is missing, truncated, corrupt or not an edgeaff fold checkpoint."""


def read_safetensors_header(path: str | Path) -> dict[str, Any]:
    """Return the parsed JSON header of a safetensors file, after checking it fits the file's size.

    Raises:
        CheckpointError: missing file, short/garbled header, or tensor data extending past the end of the file.
    """
    file = Path(path)
    if not file.is_file():
        raise CheckpointError(f"checkpoint not found: {file}")
    size = file.stat().st_size
    with open(file, "rb") as handle:
        prefix = handle.read(8)
        if len(prefix) < 8:
            raise CheckpointError(f"{file}: not a safetensors checkpoint (file too short: {size} bytes)")
        (header_len,) = struct.unpack("<Q", prefix)
        if header_len > min(_MAX_HEADER_BYTES, size - 8):
            raise CheckpointError(
                f"{file}: not a safetensors checkpoint, or truncated (header claims {header_len} bytes)"
            )
        raw = handle.read(header_len)
    header = parse_json(raw, source=f"{file}: safetensors header", max_bytes=_MAX_HEADER_BYTES, error=CheckpointError)
    if not isinstance(header, dict):
        raise CheckpointError(f"{file}: corrupt safetensors header (not a JSON object)")
    data_size = size - 8 - header_len
    ends = []
    for name, entry in header.items():
        if name == "__metadata__":
            if not isinstance(entry, dict) or not all(isinstance(v, str) for v in entry.values()):
                raise CheckpointError(f"{file}: corrupt safetensors header (__metadata__ must map names to strings)")
            continue
        offsets = entry.get("data_offsets") if isinstance(entry, dict) else None
        if (
            not isinstance(offsets, list)
            or len(offsets) != 2
            or not all(isinstance(o, int) and not isinstance(o, bool) and o >= 0 for o in offsets)
        ):
            raise CheckpointError(f"{file}: corrupt safetensors header (tensor {name!r} has no valid data_offsets)")
        ends.append(offsets[1])
    if ends and max(ends) > data_size:
        raise CheckpointError(
            f"{file}: truncated checkpoint: tensors need {max(ends)} bytes of data but only {data_size} are present; "
            "re-copy or re-create it"
        )
    return header


# The structure of the metadata document: key -> accepted JSON types (``None`` is JSON null). The values are
# validated in depth by edgeaff.train.checkpoint.CheckpointMetadata; this is what any reader may rely on.
_METADATA_TYPES: dict[str, tuple[type | None, ...]] = {
    "model": (dict,),
    "dimension": (str,),
    "fold": (int, None),
    "feature_spec": (dict,),
    "normalization": (dict, None),
    "metrics": (dict,),
    "provenance": (dict,),
    "versions": (dict,),
    "created": (str,),
    "weights_sha256": (str,),
}
_MODEL_TYPES: dict[str, tuple[type | None, ...]] = {"kind": (str,), "fusion": (str, None), "backbone": (dict,)}


def _type_problem(document: dict[str, Any], types: dict[str, tuple[type | None, ...]], where: str) -> str | None:
    for key, accepted in types.items():
        if key not in document:
            return f"'{where}{key}' is missing"
        value = document[key]
        ok = any(
            value is None if kind is None else isinstance(value, kind) and not isinstance(value, bool)
            for kind in accepted
        )
        if not ok:
            names = " or ".join("null" if kind is None else _JSON_NAMES[kind] for kind in accepted)
            return f"'{where}{key}' must be {names}, not {_json_name(value)}"
    return None


_JSON_NAMES: dict[type, str] = {dict: "an object", str: "a string", int: "an integer", list: "a list"}


def _json_name(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    return _JSON_NAMES.get(type(value), f"a {type(value).__name__}")


def read_checkpoint_metadata(path: str | Path) -> dict[str, Any]:
    """Return the edgeaff metadata of a fold checkpoint (no torch needed).

    The document's structure is checked (every key present with its JSON type, ``model.kind``, ``model.fusion``
    and ``model.backbone.name`` included), so callers may index it; the values are validated in depth where the
    model is built (:class:`edgeaff.train.checkpoint.CheckpointMetadata`).

    Raises:
        CheckpointError: not an edgeaff fold checkpoint, an unsupported schema version, or metadata of the wrong
            structure.
    """
    header = read_safetensors_header(path)
    raw = header.get("__metadata__", {}).get(METADATA_KEY)
    if raw is None:
        raise CheckpointError(
            f"{path}: a safetensors file without edgeaff metadata; to import reference weights use "
            "'edgeaff convert-reference'"
        )
    metadata = parse_json(raw, source=f"{path}: edgeaff metadata", max_bytes=_MAX_METADATA_BYTES, error=CheckpointError)
    if not isinstance(metadata, dict) or metadata.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{path}: not an edgeaff fold checkpoint")
    version = metadata.get("schema_version")
    if version != CHECKPOINT_SCHEMA_VERSION:
        raise CheckpointError(
            f"{path}: checkpoint schema version {version} is not supported by this edgeaff "
            f"(supports {CHECKPOINT_SCHEMA_VERSION}); use a matching edgeaff version"
        )
    problem = _type_problem(metadata, _METADATA_TYPES, "")
    if problem is None:
        problem = _type_problem(metadata["model"], _MODEL_TYPES, "model.")
    if problem is None and not isinstance(metadata["model"]["backbone"].get("name"), str):
        problem = "'model.backbone.name' must be a string"
    if problem is not None:
        raise CheckpointError(f"{path}: malformed edgeaff metadata: {problem}; re-create the checkpoint")
    return metadata
