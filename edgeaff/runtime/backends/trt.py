"""Native TensorRT backend: a cached engine, pycuda buffers and stream, the name-based tensor API.

On ``__enter__`` the runner takes its engine from the per-device cache (building it on first use, see
:mod:`edgeaff.runtime.engines.cache`), creates an execution context and a CUDA stream, and allocates one pinned host
buffer (``pagelocked_empty``) and one device buffer per I/O tensor, sized for the profile's maximum shapes; tensor
addresses are bound once. ``infer`` copies the feed into the pinned buffers, then on the stream: H2D copies,
``execute_async_v3``, D2H copies, with CUDA events between the stages, and synchronises. The split of each call
(H2D / compute / D2H milliseconds, as trtexec reports them) is kept in :attr:`TrtRunner.last_times`.

A feed shape outside the engine's profile is an :class:`InvalidInputError`; the runner never rebuilds mid-stream.
Only TensorRT's name-based API is used (``num_io_tensors``, ``get_tensor_name/mode/shape/dtype``,
``get_tensor_profile_shape``, ``set_input_shape``, ``set_tensor_address``, ``execute_async_v3``), which TensorRT 10
and 11 share; the bindings API (removed in 10) is not.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from edgeaff.runtime.artifacts.manifest import Precision
from edgeaff.runtime.backends.base import Runner, TensorSpec
from edgeaff.runtime.engines.cache import CachedEngine, EngineCache
from edgeaff.runtime.engines.cuda import CudaDevice, import_cuda_driver, import_tensorrt, numpy_dtype
from edgeaff.runtime.engines.spec import BuildOptions, EngineRequest, ShapeRange, check_in_profile
from edgeaff.runtime.errors import EdgeaffError


@dataclasses.dataclass(frozen=True)
class EngineTensor:
    """An engine I/O tensor: ``-1`` marks a dynamic axis; inputs carry their profile-0 shape range."""

    name: str
    is_input: bool
    dtype: np.dtype
    shape: tuple[int, ...]
    profile: ShapeRange | None = None

    def spec(self) -> TensorSpec:
        """The runner-contract description (dynamic axes as ``None``)."""
        return TensorSpec(self.name, tuple(d if d >= 0 else None for d in self.shape), self.dtype)


@dataclasses.dataclass(frozen=True)
class TransferTimes:
    """Milliseconds of one ``infer`` call on the GPU, measured with CUDA events on the runner's stream."""

    h2d_ms: float
    compute_ms: float
    d2h_ms: float

    @property
    def total_ms(self) -> float:
        """H2D + compute + D2H (trtexec's "latency" without host-side overhead)."""
        return self.h2d_ms + self.compute_ms + self.d2h_ms


def describe_engine(trt: Any, engine: Any) -> list[EngineTensor]:
    """The I/O tensors of a deserialised engine, in engine order, with profile 0 of each input."""
    tensors = []
    for index in range(engine.num_io_tensors):
        name = engine.get_tensor_name(index)
        if engine.get_tensor_location(name) != trt.TensorLocation.DEVICE:
            raise EdgeaffError(f"engine tensor '{name}' lives on the host (a shape tensor); the runner cannot feed it")
        is_input = engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT
        shape = tuple(int(d) for d in engine.get_tensor_shape(name))
        profile = None
        if is_input:
            dynamic = any(d < 0 for d in shape)
            profile = (
                ShapeRange.of(tuple(engine.get_tensor_profile_shape(name, 0))) if dynamic else ShapeRange.fixed(shape)
            )
        tensors.append(EngineTensor(name, is_input, numpy_dtype(engine.get_tensor_dtype(name)), shape, profile))
    return tensors


def check_feed_in_profiles(tensors: Sequence[EngineTensor], feed: Mapping[str, np.ndarray], *, where: str) -> None:
    """Raise :class:`InvalidInputError` for any fed input whose shape lies outside its profile."""
    for tensor in tensors:
        if tensor.is_input and tensor.profile is not None and tensor.name in feed:
            check_in_profile(tensor.name, np.shape(feed[tensor.name]), tensor.profile, where=where)


@dataclasses.dataclass
class _Buffer:
    host: np.ndarray  # pinned, flat, capacity elements
    device: Any  # pycuda DeviceAllocation


class TrtRunner(Runner):
    """Run an ONNX graph as a TensorRT engine built (once per device) and cached.

    Args:
        onnx_path: the ``.onnx`` file.
        precision: ``fp32``, ``fp16`` or ``int8`` (see :func:`edgeaff.runtime.engines.build.plan_build`).
        profiles: ``{input: (min, opt, max)}`` for dynamic inputs; feeds must stay inside these shapes.
        options: builder options (workspace, optimisation level, TF32, typing).
        cache_dir: engine cache directory (``None``: ``edgeaff.runtime.engines.paths.engine_cache_dir()``).
        device: CUDA device ordinal.
        onnx_sha256: the graph's sha256 when already verified (e.g. from a bundle manifest).

    Raises (on ``__enter__``):
        MissingDependencyError: TensorRT or pycuda is missing.
        EngineBuildError / InvalidInputError: the engine cannot be built as requested.

    A runner owns one execution context, stream and buffer set: use it from one thread at a time (any thread; the
    CUDA context is made current around each call).

    Example:
        >>> with TrtRunner("visual.onnx", precision="fp16",
        ...                profiles={"frames": ((1, 3, 40, 40), (8, 3, 40, 40), (32, 3, 40, 40))}) as runner:
        ...     embeddings = runner.infer({"frames": frames})["embedding"]  # doctest: +SKIP
    """

    def __init__(
        self,
        onnx_path: str | Path,
        *,
        precision: str | Precision = Precision.FP32,
        profiles: Mapping[str, Any] | None = None,
        options: BuildOptions | None = None,
        cache_dir: str | Path | None = None,
        device: int = 0,
        onnx_sha256: str | None = None,
    ) -> None:
        super().__init__()
        self.request = EngineRequest(
            Path(onnx_path),
            Precision.parse(precision),
            profiles or {},
            options or BuildOptions(),
            onnx_sha256=onnx_sha256,
        )
        self.cache = EngineCache(cache_dir)
        self.device_index = device
        self.name = f"trt:{self.request.onnx_path.name}"
        self.cached: CachedEngine[Any] | None = None
        self.last_times: TransferTimes | None = None
        self._tensors: list[EngineTensor] = []
        self._device: CudaDevice | None = None
        self._builder: Any = None  # holds the TensorRT runtime, which must outlive the engine
        self._cuda: Any = None
        self._engine: Any = None
        self._context: Any = None
        self._stream: Any = None
        self._events: list[Any] = []
        self._buffers: dict[str, _Buffer] = {}

    @classmethod
    def from_request(cls, request: EngineRequest, *, cache_dir: str | Path | None = None, device: int = 0) -> TrtRunner:
        """A runner for an existing request, e.g. one of :func:`edgeaff.runtime.engines.bundle.bundle_engine_requests`
        (the same request ``edgeaff build-engines`` built, so the runtime finds its engine in the cache)."""
        runner = cls(request.onnx_path, cache_dir=cache_dir, device=device)
        runner.request = request
        runner.name = f"trt:{request.onnx_path.name}"
        return runner

    def activate(self) -> None:
        """Get (or build) the engine, create the execution context and stream, allocate buffers."""
        from edgeaff.runtime.engines.build import TensorRTBuilder

        trt = import_tensorrt()
        self._cuda = import_cuda_driver()
        self._device = CudaDevice(self.device_index, cuda=self._cuda)
        try:
            self._builder = builder = TensorRTBuilder(self._device, trt=trt)
            self.cached = self.cache.get_or_build(self.request, builder=builder, load=builder.deserialize)
            with self._device.current():
                self._allocate(trt, self.cached.value)
        except BaseException:
            self.deactivate()
            raise

    def _allocate(self, trt: Any, engine: Any) -> None:
        cuda = self._cuda
        self._engine = engine
        self._tensors = describe_engine(trt, engine)
        self._context = engine.create_execution_context()
        if self._context is None:
            raise EdgeaffError(f"{self.name}: TensorRT could not create an execution context (out of GPU memory?)")
        self._stream = cuda.Stream()
        self._events = [cuda.Event() for _ in range(4)]
        for tensor in self._tensors:
            accepted = tensor.profile is None or self._context.set_input_shape(tensor.name, tensor.profile.max)
            if not accepted:
                raise EdgeaffError(f"{self.name}: TensorRT refused the profile's max shape for '{tensor.name}'")
        for tensor in self._tensors:
            largest = (
                tensor.profile.max if tensor.profile is not None else tuple(self._context.get_tensor_shape(tensor.name))
            )
            if any(d < 0 for d in largest):
                raise EdgeaffError(
                    f"{self.name}: output '{tensor.name}' has a data-dependent shape {largest}; unsupported"
                )
            capacity = max(1, math.prod(largest))
            buffer = _Buffer(
                cuda.pagelocked_empty(capacity, tensor.dtype), cuda.mem_alloc(capacity * tensor.dtype.itemsize)
            )
            self._buffers[tensor.name] = buffer
            if not self._context.set_tensor_address(tensor.name, int(buffer.device)):
                raise EdgeaffError(f"{self.name}: TensorRT refused the address of tensor '{tensor.name}'")

    def deactivate(self) -> None:
        """Free buffers, stream, context and engine; release the CUDA context."""
        if self._device is None:
            return
        with self._device.current():
            for buffer in self._buffers.values():
                buffer.device.free()
            self._buffers.clear()
            self._tensors = []
            self._events = []
            self._stream = None
            self._context = None
            self._engine = None
            self.cached = None
            self._builder = None
        self._device.release()
        self._device = None

    @property
    def inputs(self) -> list[TensorSpec]:
        """Engine inputs (dynamic axes ``None``)."""
        return [t.spec() for t in self._tensors if t.is_input]

    @property
    def outputs(self) -> list[TensorSpec]:
        """Engine outputs."""
        return [t.spec() for t in self._tensors if not t.is_input]

    @property
    def profiles(self) -> dict[str, ShapeRange]:
        """Shape range of each input (valid once active)."""
        return {t.name: t.profile for t in self._tensors if t.is_input and t.profile is not None}

    def check_feed(self, feed: Mapping[str, np.ndarray]) -> None:
        """The contract's checks, plus every input shape inside the engine's profile."""
        super().check_feed(feed)
        check_feed_in_profiles(self._tensors, feed, where=self.name)

    def infer(self, feed: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run the engine on ``feed``; returns new arrays owned by the caller and records :attr:`last_times`."""
        self.check_feed(feed)
        device = self._device
        if device is None:
            raise RuntimeError(f"{self.name}: the runner was closed")
        cuda, context, stream = self._cuda, self._context, self._stream
        start, copied_in, computed, copied_out = self._events
        with device.current():
            staged = []
            for tensor in (t for t in self._tensors if t.is_input):
                array = np.ascontiguousarray(feed[tensor.name])
                host = self._buffers[tensor.name].host[: array.size].reshape(array.shape)
                np.copyto(host, array)
                staged.append((tensor.name, host))
                if not context.set_input_shape(tensor.name, array.shape):
                    raise EdgeaffError(f"{self.name}: TensorRT refused shape {array.shape} for input '{tensor.name}'")
            outputs = []
            for tensor in (t for t in self._tensors if not t.is_input):
                shape = tuple(int(d) for d in context.get_tensor_shape(tensor.name))
                buffer = self._buffers[tensor.name]
                if any(d < 0 for d in shape) or math.prod(shape) > buffer.host.size:
                    raise EdgeaffError(f"{self.name}: output '{tensor.name}' shape {shape} exceeds its buffer")
                outputs.append((tensor.name, buffer.host[: math.prod(shape)].reshape(shape)))
            start.record(stream)
            for name, host in staged:
                if host.size:
                    cuda.memcpy_htod_async(self._buffers[name].device, host, stream)
            copied_in.record(stream)
            if not context.execute_async_v3(stream.handle):
                raise EdgeaffError(f"{self.name}: TensorRT failed to enqueue the inference")
            computed.record(stream)
            for name, host in outputs:
                if host.size:
                    cuda.memcpy_dtoh_async(host, self._buffers[name].device, stream)
            copied_out.record(stream)
            stream.synchronize()
            self.last_times = TransferTimes(
                h2d_ms=copied_in.time_since(start),
                compute_ms=computed.time_since(copied_in),
                d2h_ms=copied_out.time_since(computed),
            )
            return {name: host.copy() for name, host in outputs}
