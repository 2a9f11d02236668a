"""The one version report: edgeaff, Python, numpy and the libraries installed here.

Every artefact and result records where it came from with this function: fold checkpoints, prepared datasets,
bundle manifests, ``edgeaff infer`` summaries, benchmark stamps and ``edgeaff doctor``. Versions are read from
the installed distributions' metadata, so nothing is imported (torch in particular never is).
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import platform
from collections.abc import Iterable

import numpy as np

import edgeaff

# Report key -> the distributions that provide it (the first one installed wins): a library may come under
# several names (``onnxruntime`` or ``onnxruntime-gpu``, TensorRT's per-CUDA wheels, OpenCV's variants).
LIBRARIES: dict[str, tuple[str, ...]] = {
    "onnxruntime": ("onnxruntime", "onnxruntime-gpu"),
    "tensorrt": ("tensorrt", "tensorrt-cu13", "tensorrt-cu12", "tensorrt-cu13-bindings", "tensorrt-cu12-bindings"),
    "pycuda": ("pycuda",),
    "cuda-python": ("cuda-python", "cuda-bindings"),
    "av": ("av",),
    "opencv": ("opencv-python-headless", "opencv-python", "opencv-contrib-python"),
    "opensmile": ("opensmile",),
    "pillow": ("pillow",),
    "torch": ("torch",),
    "safetensors": ("safetensors",),
    "onnx": ("onnx",),
    "onnxscript": ("onnxscript",),
}
# What the torch-free runtime uses (inference, benchmarks, doctor).
RUNTIME_LIBRARIES = ("onnxruntime", "tensorrt", "pycuda", "cuda-python", "av", "opencv", "opensmile", "pillow")
# What writes fold checkpoints and prepared datasets (training, ``edgeaff prepare``).
TRAINING_LIBRARIES = ("torch", "safetensors", "av", "opensmile", "pillow")
# What writes bundles.
EXPORT_LIBRARIES = ("torch", "onnx", "onnxscript", "onnxruntime")


def versions(libraries: Iterable[str] = RUNTIME_LIBRARIES) -> dict[str, str]:
    """``{"edgeaff", "python", "numpy"}`` plus each of ``libraries`` that is installed (absent ones are left out).

    Args:
        libraries: keys of :data:`LIBRARIES`; :data:`RUNTIME_LIBRARIES` by default.

    Raises:
        KeyError: a library edgeaff does not know (a programming error).

    Example:
        >>> sorted(versions(["torch"]))[:3]  # doctest: +SKIP
        ['edgeaff', 'numpy', 'python']
    """
    found = {"edgeaff": edgeaff.__version__, "python": platform.python_version(), "numpy": np.__version__}
    for key in libraries:
        for distribution in LIBRARIES[key]:
            with contextlib.suppress(importlib.metadata.PackageNotFoundError):
                found[key] = importlib.metadata.version(distribution)
                break
                break
    return found
