"""ONNX Runtime backend: CPU, CUDA and TensorRT execution providers."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from edgeaff.runtime.backends.base import Runner, TensorSpec
from edgeaff.runtime.errors import EdgeaffError, InvalidInputError, require

PROVIDERS = {
    "ort-cpu": ["CPUExecutionProvider"],
    "ort-cuda": ["CUDAExecutionProvider", "CPUExecutionProvider"],
    "ort-trt": ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"],
}

_ORT_TYPES: dict[str, np.dtype] = {
    "tensor(float)": np.dtype(np.float32),
    "tensor(float16)": np.dtype(np.float16),
    "tensor(double)": np.dtype(np.float64),
    "tensor(uint8)": np.dtype(np.uint8),
    "tensor(int8)": np.dtype(np.int8),
    "tensor(int32)": np.dtype(np.int32),
    "tensor(int64)": np.dtype(np.int64),
    "tensor(bool)": np.dtype(np.bool_),
}


def _spec(node: Any) -> TensorSpec:
    dtype = _ORT_TYPES.get(node.type)
    if dtype is None:
        raise EdgeaffError(f"tensor '{node.name}' has an unsupported type {node.type}")
    shape = tuple(dim if isinstance(dim, int) else None for dim in node.shape)
    return TensorSpec(node.name, shape, dtype)


class OrtRunner(Runner):
    """Run an ONNX file with ONNX Runtime.

    Args:
        path: the ``.onnx`` file.
        backend: ``"ort-cpu"``, ``"ort-cuda"`` or ``"ort-trt"``.
        threads: intra-op threads (``None``: ONNX Runtime's default).
        provider_options: per-provider options, e.g. ``{"TensorrtExecutionProvider": {"trt_fp16_enable": True}}``.

    Raises (on ``__enter__``):
        MissingDependencyError: onnxruntime is not installed.
        EdgeaffError: the requested execution provider is not available in this onnxruntime build; never falls
            back silently to another device.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        backend: str = "ort-cpu",
        threads: int | None = None,
        provider_options: Mapping[str, Mapping[str, Any]] | None = None,
    ) -> None:
        super().__init__()
        if backend not in PROVIDERS:
            raise InvalidInputError(f"unknown ONNX Runtime backend '{backend}'; choose one of {', '.join(PROVIDERS)}")
        self.path = Path(path)
        self.backend = backend
        self.threads = threads
        self.provider_options = {k: dict(v) for k, v in (provider_options or {}).items()}
        self.name = f"{backend}:{self.path.name}"
        self._session: Any = None
        self._inputs: list[TensorSpec] = []
        self._outputs: list[TensorSpec] = []

    def activate(self) -> None:
        """Create the inference session."""
        ort: Any = require("onnxruntime", extra="ort", purpose="the ONNX Runtime backend")
        if not self.path.is_file():
            raise InvalidInputError(f"ONNX model not found: {self.path}")
        wanted: Sequence[str] = PROVIDERS[self.backend]
        available = set(ort.get_available_providers())
        if wanted[0] not in available:
            raise EdgeaffError(
                f"backend '{self.backend}' needs {wanted[0]}, which this onnxruntime build does not have "
                f"(available: {', '.join(sorted(available))}); install the GPU build (pip install 'edgeaff[gpu]') "
                "or choose --backend ort-cpu"
            )
        options = ort.SessionOptions()
        if self.threads is not None:
            options.intra_op_num_threads = self.threads
            options.inter_op_num_threads = 1
        options.log_severity_level = 3
        providers = [(p, self.provider_options.get(p, {})) for p in wanted if p in available]
        try:
            self._session = ort.InferenceSession(str(self.path), sess_options=options, providers=providers)
        except Exception as exc:  # onnxruntime raises its own exception types for invalid graphs
            raise EdgeaffError(f"{self.path}: ONNX Runtime cannot load this graph ({exc})") from None
        active = self._session.get_providers()
        if active[0] != wanted[0]:
            raise EdgeaffError(f"{self.path}: {wanted[0]} failed to initialise (active providers: {active})")
        self._inputs = [_spec(node) for node in self._session.get_inputs()]
        self._outputs = [_spec(node) for node in self._session.get_outputs()]

    def deactivate(self) -> None:
        """Release the session."""
        self._session = None

    @property
    def inputs(self) -> list[TensorSpec]:
        """Graph inputs."""
        return list(self._inputs)

    @property
    def outputs(self) -> list[TensorSpec]:
        """Graph outputs."""
        return list(self._outputs)

    def infer(self, feed: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run the session; outputs are returned in a new dict of arrays owned by the caller."""
        self.check_feed(feed)
        names = [spec.name for spec in self._outputs]
        values = self._session.run(names, {k: np.ascontiguousarray(v) for k, v in feed.items()})
        return {name: np.asarray(value) for name, value in zip(names, values, strict=True)}
