"""TensorRT and CUDA (pycuda) plumbing shared by the engine builder and the native TensorRT runner.

Both libraries are imported lazily, where used, and a missing one raises :class:`MissingDependencyError` saying
where it comes from: TensorRT's Python bindings ship with JetPack on a Jetson (``python3-libnvinfer``; a venv needs
``--system-site-packages``) and as NVIDIA wheels on x86; pycuda is the ``trt`` extra, compiled against the local
CUDA. Everything runs in the device's *primary* CUDA context, the one TensorRT and the CUDA runtime use, pushed
only around the calls that need it so a runner can be used from any thread.
"""

from __future__ import annotations

import collections
import contextlib
import logging
from collections.abc import Iterator
from typing import Any

import numpy as np

from edgeaff.runtime.engines.spec import DeviceIdentity
from edgeaff.runtime.errors import EdgeaffError, InvalidInputError, MissingDependencyError, require

log = logging.getLogger("edgeaff.tensorrt")

# TensorRT DataType member name -> numpy dtype (types numpy cannot hold, e.g. BF16 / FP8 / INT4, are refused).
_NUMPY_DTYPES: dict[str, np.dtype] = {
    "FLOAT": np.dtype(np.float32),
    "HALF": np.dtype(np.float16),
    "INT8": np.dtype(np.int8),
    "UINT8": np.dtype(np.uint8),
    "INT32": np.dtype(np.int32),
    "INT64": np.dtype(np.int64),
    "BOOL": np.dtype(np.bool_),
}

# TensorRT logger severity name -> Python logging level. TensorRT's INFO is chatty during builds: debug here.
_LOG_LEVELS: dict[str, int] = {
    "INTERNAL_ERROR": logging.CRITICAL,
    "ERROR": logging.ERROR,
    "WARNING": logging.WARNING,
    "INFO": logging.DEBUG,
    "VERBOSE": logging.DEBUG - 5,
}

_LOGGERS: dict[int, Any] = {}  # id(tensorrt module) -> its logger


def import_tensorrt() -> Any:
    """The ``tensorrt`` module, or :class:`MissingDependencyError` saying where to get it."""
    try:
        import tensorrt
    except ImportError as exc:
        raise MissingDependencyError(
            f"the TensorRT backend needs TensorRT's Python bindings ({exc}); on a Jetson they come with JetPack "
            "(sudo apt install python3-libnvinfer; create the venv with --system-site-packages), on x86 install "
            "NVIDIA's tensorrt wheel; or choose --backend ort-cpu"
        ) from exc
    return tensorrt


def import_cuda_driver() -> Any:
    """``pycuda.driver``, or :class:`MissingDependencyError` naming the ``trt`` extra."""
    return require("pycuda.driver", extra="trt", purpose="the TensorRT backend (CUDA buffers, streams and events)")


def numpy_dtype(trt_dtype: Any) -> np.dtype:
    """The numpy dtype of a TensorRT ``DataType`` (by member name, so it works across TensorRT versions)."""
    name = getattr(trt_dtype, "name", str(trt_dtype)).rsplit(".", 1)[-1]
    dtype = _NUMPY_DTYPES.get(name)
    if dtype is None:
        raise EdgeaffError(
            f"TensorRT tensor type {name} has no numpy equivalent; the runner supports {sorted(_NUMPY_DTYPES)}"
        )
    return dtype


def python_log_level(severity: Any) -> int:
    """Python logging level of a TensorRT log severity."""
    name = getattr(severity, "name", str(severity)).rsplit(".", 1)[-1]
    return _LOG_LEVELS.get(name, logging.WARNING)


def tensorrt_logger(trt: Any) -> Any:
    """The process-wide TensorRT logger: forwards to Python logging and remembers recent errors.

    TensorRT wants one logger per process and keeps a pointer to it, so it is created once and never freed.
    ``tensorrt_logger(trt).take_errors()`` returns (and forgets) the errors logged since the last call, which
    build and deserialisation failures quote in their message.
    """
    existing = _LOGGERS.get(id(trt))
    if existing is not None:
        return existing

    class _Bridge(trt.ILogger):
        def __init__(self) -> None:
            super().__init__()  # the pybind11 base must be initialised explicitly
            self.errors: collections.deque[str] = collections.deque(maxlen=16)

        def log(self, severity: Any, msg: str) -> None:
            level = python_log_level(severity)
            if level >= logging.ERROR:
                self.errors.append(msg)
            if log.isEnabledFor(level):
                log.log(level, "TensorRT: %s", msg)

        def take_errors(self) -> list[str]:
            taken = list(self.errors)
            self.errors.clear()
            return taken

    logger = _Bridge()
    _LOGGERS[id(trt)] = logger
    return logger


class CudaDevice:
    """One CUDA device through pycuda: identity, and its primary context made current around CUDA work.

    Args:
        index: CUDA device ordinal.
        cuda: the ``pycuda.driver`` module (imported when not given).

    Raises:
        MissingDependencyError: pycuda is missing.
        InvalidInputError: there is no device ``index``.
    """

    def __init__(self, index: int = 0, *, cuda: Any = None) -> None:
        self.cuda = cuda if cuda is not None else import_cuda_driver()
        try:
            self.cuda.init()
            count = self.cuda.Device.count()
        except self.cuda.Error as exc:
            raise EdgeaffError(f"CUDA cannot be initialised ({exc}); is the NVIDIA driver loaded?") from None
        if not 0 <= index < count:
            raise InvalidInputError(f"CUDA device {index} does not exist ({count} device(s) found)")
        self.index = index
        self.device = self.cuda.Device(index)
        self._context: Any = None

    def identity(self) -> DeviceIdentity:
        """Name, compute capability and SM count."""
        major, minor = self.device.compute_capability()
        sms = self.device.get_attribute(self.cuda.device_attribute.MULTIPROCESSOR_COUNT)
        return DeviceIdentity(
            name=str(self.device.name()), compute_capability=(int(major), int(minor)), multiprocessors=int(sms)
        )

    @contextlib.contextmanager
    def current(self) -> Iterator[None]:
        """Make the device's primary context current for the block (retained on first use)."""
        if self._context is None:
            self._context = self.device.retain_primary_context()
        self._context.push()
        try:
            yield
        finally:
            self.cuda.Context.pop()

    def release(self) -> None:
        """Drop this object's hold on the primary context."""
        if self._context is not None:
            self._context.detach()
            self._context = None
