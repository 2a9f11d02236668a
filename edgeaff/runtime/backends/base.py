"""The runner contract shared by every inference backend."""

from __future__ import annotations

import abc
import dataclasses
from collections.abc import Mapping
from types import TracebackType

import numpy as np

from edgeaff.runtime.choices import Choice
from edgeaff.runtime.errors import InvalidInputError


class Backend(Choice):
    """What runs a bundle's graphs (``--backend``).

    ``ort-cpu``: ONNX Runtime on the CPU. ``ort-cuda``: ONNX Runtime's CUDA execution provider. ``ort-trt``: ONNX
    Runtime's TensorRT execution provider. ``trt``: native TensorRT engines from edgeaff's engine cache.
    """

    ORT_CPU = "ort-cpu"
    ORT_CUDA = "ort-cuda"
    ORT_TRT = "ort-trt"
    TRT = "trt"

    @property
    def gpu(self) -> bool:
        """Whether the backend runs on a CUDA GPU."""
        return self is not Backend.ORT_CPU

    @property
    def tensorrt(self) -> bool:
        """Whether TensorRT builds the engines (its INT8 graph form, its engine profiles)."""
        return self in (Backend.ORT_TRT, Backend.TRT)


@dataclasses.dataclass(frozen=True)
class Device:
    """Where a command computes (``--device``, the same meaning in every command): ``cpu``, ``cuda`` (the first
    GPU) or ``cuda:N``."""

    kind: str
    index: int = 0

    def __str__(self) -> str:
        return "cpu" if self.kind == "cpu" else f"cuda:{self.index}"

    @classmethod
    def parse(cls, text: str | Device) -> Device:
        """The device named ``text``; raises :class:`InvalidInputError` on anything else."""
        if isinstance(text, Device):
            return text
        value = str(text).strip().lower()
        if value == "cpu":
            return cls("cpu")
        kind, _, number = value.partition(":")
        if kind == "cuda" and (not number or (number.isdigit() and int(number) <= MAX_CUDA_DEVICE)):
            return cls("cuda", int(number or 0))
        raise InvalidInputError(f"unknown device '{text}'; use cpu, cuda or cuda:N (N = 0..{MAX_CUDA_DEVICE})")


MAX_CUDA_DEVICE = 63


@dataclasses.dataclass(frozen=True)
class TensorSpec:
    """Name, shape and dtype of a graph input or output; ``None`` (or a string) in ``shape`` is a dynamic axis."""

    name: str
    shape: tuple[int | str | None, ...]
    dtype: np.dtype

    def check(self, array: np.ndarray, *, where: str) -> None:
        """Raise :class:`InvalidInputError` unless ``array`` has this spec's rank, fixed dims and dtype."""
        if array.dtype != self.dtype:
            raise InvalidInputError(f"{where}: input '{self.name}' must be {self.dtype}, got {array.dtype}")
        if array.ndim != len(self.shape):
            raise InvalidInputError(
                f"{where}: input '{self.name}' must have {len(self.shape)} dimensions {self.shape}, got {array.shape}"
            )
        for axis, (want, got) in enumerate(zip(self.shape, array.shape, strict=True)):
            if isinstance(want, int) and want != got:
                raise InvalidInputError(
                    f"{where}: input '{self.name}' needs size {want} on axis {axis} "
                    f"(shape {self.shape}), got {array.shape}"
                )


class Runner(abc.ABC):
    """Base class of all backends. Use as a context manager::

    with OrtRunner("visual.onnx") as runner:
        outputs = runner.infer({"frames": frames})
    """

    name: str = "runner"

    def __init__(self) -> None:
        self._active = False

    def __enter__(self) -> Runner:
        self.activate()
        self._active = True
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._active = False
        self.deactivate()

    @property
    def is_active(self) -> bool:
        """Whether the runner is between ``__enter__`` and ``__exit__``."""
        return self._active

    @abc.abstractmethod
    def activate(self) -> None:
        """Load the model and allocate resources."""

    @abc.abstractmethod
    def deactivate(self) -> None:
        """Free what :meth:`activate` allocated."""

    @property
    @abc.abstractmethod
    def inputs(self) -> list[TensorSpec]:
        """Input tensors (valid once active)."""

    @property
    @abc.abstractmethod
    def outputs(self) -> list[TensorSpec]:
        """Output tensors (valid once active)."""

    def check_feed(self, feed: Mapping[str, np.ndarray]) -> None:
        """Validate names, ranks, fixed dims and dtypes of a feed against :attr:`inputs`."""
        if not self._active:
            raise RuntimeError(f"{self.name}: use the runner inside a 'with' block before calling infer()")
        expected = {spec.name: spec for spec in self.inputs}
        missing = sorted(set(expected) - set(feed))
        unknown = sorted(set(feed) - set(expected))
        if missing or unknown:
            raise InvalidInputError(
                f"{self.name}: feed has inputs {sorted(feed)}, the graph takes {sorted(expected)}"
                + (f" (missing {missing})" if missing else "")
                + (f" (unknown {unknown})" if unknown else "")
            )
        for name, spec in expected.items():
            spec.check(np.asarray(feed[name]), where=self.name)

    @abc.abstractmethod
    def infer(self, feed: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run the graph on ``feed``; returns new arrays keyed by output name."""
