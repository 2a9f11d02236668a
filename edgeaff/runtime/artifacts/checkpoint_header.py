"""Read the metadata of an edgeaff fold checkpoint without torch.

A fold checkpoint is one safetensors file: the weights, and in the header's ``__metadata__`` the key
``edgeaff`` holding a JSON document (model config, dimension, fold, feature spec, normalisation, metrics,
provenance, versions, weights hash). The safetensors header is an 8-byte little-endian length followed by JSON, so
any tool can read it; this module does so with the standard library only.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any

from edgeaff.runtime.errors import InvalidInputError

CHECKPOINT_FORMAT = "edgeaff-fold-checkpoint"
CHECKPOINT_SCHEMA_VERSION = 1
METADATA_KEY = "edgeaff"
_MAX_HEADER_BYTES = 100 * 1024 * 1024


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
    try:
        header = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{file}: corrupt safetensors header ({exc})") from None
    if not isinstance(header, dict):
        raise CheckpointError(f"{file}: corrupt safetensors header")
    data_size = size - 8 - header_len
    ends = [int(v["data_offsets"][1]) for k, v in header.items() if k != "__metadata__" and isinstance(v, dict)]
    if ends and max(ends) > data_size:
        raise CheckpointError(
            f"{file}: truncated checkpoint: tensors need {max(ends)} bytes of data but only {data_size} are present; "
            "re-copy or re-create it"
        )
    return header


def read_checkpoint_metadata(path: str | Path) -> dict[str, Any]:
    """Return the edgeaff metadata of a fold checkpoint (no torch needed).

    Raises:
        CheckpointError: not an edgeaff fold checkpoint, or an unsupported schema version.
    """
    header = read_safetensors_header(path)
    raw = (header.get("__metadata__") or {}).get(METADATA_KEY)
    if raw is None:
        raise CheckpointError(
            f"{path}: a safetensors file without edgeaff metadata; to import reference weights use "
            "'edgeaff convert-reference'"
        )
    try:
        metadata = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise CheckpointError(f"{path}: corrupt edgeaff metadata ({exc})") from None
    if not isinstance(metadata, dict) or metadata.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{path}: not an edgeaff fold checkpoint")
    version = metadata.get("schema_version")
    if version != CHECKPOINT_SCHEMA_VERSION:
        raise CheckpointError(
            f"{path}: checkpoint schema version {version} is not supported by this edgeaff "
            f"(supports {CHECKPOINT_SCHEMA_VERSION}); use a matching edgeaff version"
        )
    return metadata
