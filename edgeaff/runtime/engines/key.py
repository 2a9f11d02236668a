"""What identifies a TensorRT engine (:class:`EngineKey`) and what the cache records beside it (:class:`EngineRecord`).

The key is the sha256 of the canonical JSON (sorted keys, no spaces) of these fields, all of which are also written,
in clear, to the engine's sidecar:

    ``schema``               version of this key layout (bumped when the fields change)
    ``onnx_sha256``          content hash of the ONNX graph (for INT8 this covers the Q/DQ scales, i.e. the
                             calibration)
    ``external_data``        ``[[file name, sha256], ...]`` of external weight files, if any
    ``precision``            ``fp32`` / ``fp16`` / ``int8``
    ``tensorrt_version``     full TensorRT version string, e.g. ``10.3.0.30``: an upgrade invalidates every engine
    ``gpu_name``             CUDA device name, e.g. ``Orin``
    ``compute_capability``   e.g. ``8.7``
    ``multiprocessors``      SM count (tells Jetson Orin modules apart; they share name and capability)
    ``profiles``             ``{input: {min, opt, max}}`` of the optimisation profile
    ``builder``              options that change the engine: workspace limit, optimisation level, TF32, typing
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Mapping
from typing import Any

from edgeaff.runtime.engines.spec import BuildEnvironment, EngineRequest
from edgeaff.runtime.errors import InvalidInputError
from edgeaff.runtime.files import parse_json, sha256_file

KEY_SCHEMA = 1
SIDECAR_SCHEMA = 1
SIDECAR_MAX_BYTES = 1 << 20


def _canonical(data: Any) -> bytes:
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


@dataclasses.dataclass(frozen=True)
class EngineKey:
    """The fields that identify an engine, and their digest."""

    fields: Mapping[str, Any]

    @classmethod
    def for_request(cls, request: EngineRequest, environment: BuildEnvironment) -> EngineKey:
        """Key of ``request`` built with ``environment`` (hashes the ONNX file unless its sha256 is given)."""
        if not request.onnx_path.is_file():
            raise InvalidInputError(f"ONNX graph not found: {request.onnx_path}")
        onnx_sha = request.onnx_sha256 or sha256_file(request.onnx_path)
        external = []
        for data_file in request.external_data:
            if not data_file.is_file():
                raise InvalidInputError(f"external data file of {request.onnx_path.name} not found: {data_file}")
            external.append([data_file.name, sha256_file(data_file)])
        device = environment.device
        fields = {
            "schema": KEY_SCHEMA,
            "onnx_sha256": onnx_sha,
            "external_data": external,
            "precision": request.precision.value,
            "tensorrt_version": environment.tensorrt_version,
            "gpu_name": device.name,
            "compute_capability": f"{device.compute_capability[0]}.{device.compute_capability[1]}",
            "multiprocessors": device.multiprocessors,
            "profiles": {
                name: {"min": list(r.min), "opt": list(r.opt), "max": list(r.max)}
                for name, r in request.shape_ranges.items()
            },
            "builder": request.options.key_fields(environment.tensorrt_major),
        }
        return cls(json.loads(_canonical(fields)))

    @property
    def digest(self) -> str:
        """Hex sha256 of the canonical JSON of :attr:`fields`."""
        return hashlib.sha256(_canonical(dict(self.fields))).hexdigest()

    def differences(self, other: Mapping[str, Any]) -> list[str]:
        """Human-readable ``field: theirs -> ours`` lines where ``other`` differs from these fields."""
        names = sorted(set(self.fields) | set(other))
        return [
            f"{name}: {json.dumps(other.get(name))} -> {json.dumps(self.fields.get(name))}"
            for name in names
            if other.get(name) != self.fields.get(name)
        ]


@dataclasses.dataclass(frozen=True)
class EngineRecord:
    """The JSON sidecar written next to each engine."""

    key: str
    fields: Mapping[str, Any]
    engine_file: str
    engine_sha256: str
    engine_bytes: int
    build_seconds: float
    built_at: str
    edgeaff_version: str
    onnx_path: str

    def to_json(self) -> str:
        """Pretty JSON with a schema number."""
        return json.dumps({"schema": SIDECAR_SCHEMA, **dataclasses.asdict(self)}, indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_json(cls, text: str) -> EngineRecord:
        """Parse a sidecar; raises ``ValueError`` with the reason when it is not one this version wrote."""
        try:
            data = parse_json(text, source="sidecar", max_bytes=SIDECAR_MAX_BYTES)
        except InvalidInputError as exc:
            raise ValueError(str(exc)) from None
        if not isinstance(data, dict) or data.get("schema") != SIDECAR_SCHEMA:
            raise ValueError(f"unknown sidecar schema {data.get('schema') if isinstance(data, dict) else data!r}")
        names = {f.name for f in dataclasses.fields(cls)}
        if set(data) - {"schema"} != names:
            raise ValueError(f"sidecar keys {sorted(set(data) - {'schema'})} are not {sorted(names)}")
        del data["schema"]
        return cls(**data)
