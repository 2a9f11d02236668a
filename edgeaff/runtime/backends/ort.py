"""ONNX Runtime backend: CPU, CUDA and TensorRT execution providers.

For ``ort-trt`` the TensorRT execution provider gets edgeaff's defaults (:func:`gpu_provider_options`): FP16 /
INT8 only when asked for, its engine cache enabled in ``<engine cache>/ort-trt/<graph sha256[:16]>.<precision>.
ort-<version>/`` (a changed graph, precision or ONNX Runtime, which pins the TensorRT it was built against, gets a
fresh directory: ONNX Runtime's own cache never invalidates, onnxruntime#22244) and a persistent timing cache.
Explicit ``provider_options`` override these defaults key by key.

CPU threads: ``threads`` sets the intra-op pool (inter-op stays 1: the graphs are chains, and the pipeline runs one
graph at a time); ``spinning`` sets ``session.intra_op.allow_spinning``, whether the pool's threads busy-wait for
the next parallel section instead of sleeping. Spinning saves a wake-up per section but burns the cores other
stages need between calls (decoding, face tracking, the prefetch thread), so ``spinning=True`` also sets
``session.force_spinning_stop``: the threads spin between the operators of a run and sleep when it ends.
:mod:`edgeaff.runtime.backends.cpu_threads` holds the measured defaults. :attr:`OrtRunner.settings` reads back
what the session really got.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from edgeaff.runtime.artifacts.manifest import Precision
from edgeaff.runtime.backends.base import Runner, TensorSpec
from edgeaff.runtime.engines.paths import engine_cache_dir
from edgeaff.runtime.engines.spec import ShapeRange
from edgeaff.runtime.errors import EdgeaffError, InvalidInputError, require
from edgeaff.runtime.files import sha256_file

PROVIDERS = {
    "ort-cpu": ["CPUExecutionProvider"],
    "ort-cuda": ["CUDAExecutionProvider", "CPUExecutionProvider"],
    "ort-trt": ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"],
}

SPINNING_KEY = "session.intra_op.allow_spinning"
SPINNING_STOP_KEY = "session.force_spinning_stop"

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


def _flag(value: bool) -> str:
    return "True" if value else "False"  # the TensorRT EP accepts only these spellings


def _profile_option(ranges: Mapping[str, ShapeRange], which: int) -> str:
    return ",".join(f"{name}:{'x'.join(str(d) for d in r.astuple()[which])}" for name, r in ranges.items())


def gpu_provider_options(
    backend: str,
    *,
    graph_sha256: str,
    ort_version: str,
    precision: Precision | None = None,
    cache_dir: Path | None = None,
    profiles: Mapping[str, ShapeRange] | None = None,
    device_id: int = 0,
    workspace_mib: int | None = None,
) -> dict[str, dict[str, str]]:
    """Provider options edgeaff sets for the GPU backends (``{}`` for ``ort-cpu``).

    Args:
        backend: ``ort-cpu``, ``ort-cuda`` or ``ort-trt``.
        graph_sha256: the ONNX file's sha256 (names the per-graph engine cache directory).
        ort_version: ``onnxruntime.__version__``.
        precision: TensorRT EP precision (``ort-trt`` only; ``None`` = FP32).
        cache_dir: engine cache root (``None``: :func:`edgeaff.runtime.engines.paths.engine_cache_dir`).
        profiles: ``{input: ShapeRange}`` for the TensorRT EP's explicit optimisation profile.
        device_id: CUDA device ordinal.
        workspace_mib: TensorRT workspace limit.
    """
    if backend == "ort-cpu":
        return {}
    options: dict[str, dict[str, str]] = {"CUDAExecutionProvider": {"device_id": str(device_id)}}
    if backend != "ort-trt":
        return options
    chosen = precision or Precision.FP32
    root = (cache_dir or engine_cache_dir()) / "ort-trt"
    trt = {
        "device_id": str(device_id),
        "trt_fp16_enable": _flag(chosen in (Precision.FP16, Precision.INT8)),
        "trt_int8_enable": _flag(chosen is Precision.INT8),
        "trt_engine_cache_enable": "True",
        "trt_engine_cache_path": str(root / f"{graph_sha256[:16]}.{chosen.value}.ort-{ort_version}"),
        "trt_timing_cache_enable": "True",
        "trt_timing_cache_path": str(root / f"timing.ort-{ort_version}"),
    }
    if workspace_mib is not None:
        trt["trt_max_workspace_size"] = str(workspace_mib << 20)
    if profiles:
        for which, key in enumerate(("trt_profile_min_shapes", "trt_profile_opt_shapes", "trt_profile_max_shapes")):
            trt[key] = _profile_option(profiles, which)
    options["TensorrtExecutionProvider"] = trt
    return options


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
        provider_options: per-provider options, e.g. ``{"TensorrtExecutionProvider": {"trt_fp16_enable": "True"}}``;
            they override edgeaff's defaults (:func:`gpu_provider_options`) key by key.
        precision: TensorRT EP precision for ``ort-trt`` (``fp32``/``fp16``/``int8``); other backends run the graph's
            own types and refuse a precision.
        cache_dir: engine cache root for the TensorRT EP (``None``: ``engine_cache_dir()``).
        profiles: ``{input: (min, opt, max)}`` for the TensorRT EP's optimisation profile.
        device_id: CUDA device ordinal for the CUDA and TensorRT EPs.
        spinning: let the intra-op threads spin between the parallel sections of a run, stopping when it ends
            (``None``: ONNX Runtime's default, which spins after the run too).

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
        precision: str | Precision | None = None,
        cache_dir: str | Path | None = None,
        profiles: Mapping[str, Any] | None = None,
        device_id: int = 0,
        spinning: bool | None = None,
    ) -> None:
        super().__init__()
        if backend not in PROVIDERS:
            raise InvalidInputError(f"unknown ONNX Runtime backend '{backend}'; choose one of {', '.join(PROVIDERS)}")
        if precision is not None and backend != "ort-trt":
            raise InvalidInputError(
                f"backend '{backend}' runs the graph in its own precision; a build precision ({precision}) applies "
                "to ort-trt and trt only (give an FP16/INT8 graph instead)"
            )
        self.precision = Precision.parse(precision) if precision is not None else None
        self.cache_dir = Path(cache_dir) if cache_dir is not None else None
        self.profiles = {str(k): ShapeRange.of(v) for k, v in (profiles or {}).items()}
        self.device_id = device_id
        self.path = Path(path)
        self.backend = backend
        self.threads = threads
        self.spinning = spinning
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
        if self.spinning is not None:
            options.add_session_config_entry(SPINNING_KEY, "1" if self.spinning else "0")
            if self.spinning:  # spin between a run's parallel sections only, never while the pipeline does other work
                options.add_session_config_entry(SPINNING_STOP_KEY, "1")
        options.log_severity_level = 3
        defaults = gpu_provider_options(
            self.backend,
            graph_sha256=sha256_file(self.path) if self.backend == "ort-trt" else "",
            ort_version=str(ort.__version__),
            precision=self.precision,
            cache_dir=self.cache_dir,
            profiles=self.profiles,
            device_id=self.device_id,
        )
        providers = [(p, {**defaults.get(p, {}), **self.provider_options.get(p, {})}) for p in wanted if p in available]
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
    def settings(self) -> dict[str, Any]:
        """What the open session was given: ``{"threads", "spinning"}`` (``None`` where ONNX Runtime's default
        applies), read back from the session's own options."""
        if self._session is None:
            raise RuntimeError(f"{self.name}: the runner is not open")
        options = self._session.get_session_options()
        threads = int(options.intra_op_num_threads) or None
        try:
            spin: str | None = str(options.get_session_config_entry(SPINNING_KEY))
        except RuntimeError:  # never set: ONNX Runtime's default
            spin = None
        return {"threads": threads, "spinning": None if spin is None else spin == "1"}

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
