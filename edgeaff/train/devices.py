"""The ``--device`` of the PyTorch commands (``train``, ``prepare``): a closed set, checked against this machine."""

from __future__ import annotations

import torch

from edgeaff.runtime.backends.base import Device
from edgeaff.runtime.errors import InvalidInputError

DEVICE_CHOICES = ("cpu", "cuda", "cuda:N")


def check_torch_device(device: str, *, option: str = "--device") -> str:
    """``device`` if it is ``cpu``, ``cuda`` or ``cuda:N`` and PyTorch can use it here.

    Raises:
        InvalidInputError: an unknown device, CUDA asked for where PyTorch has none, or an ordinal past the GPUs
            present; each with what to use instead.
    """
    where = Device.parse(device)  # the one meaning of --device in every command
    if where.kind == "cuda":
        if not torch.cuda.is_available():
            build = "built without CUDA" if torch.version.cuda is None else f"built for CUDA {torch.version.cuda}"
            raise InvalidInputError(
                f"{option} {device}: PyTorch cannot use CUDA here (torch {torch.__version__}, {build}, "
                f"{torch.cuda.device_count()} GPU(s) visible); use --device cpu or a machine with an NVIDIA GPU and "
                "a CUDA build of PyTorch"
            )
        if where.index >= torch.cuda.device_count():
            raise InvalidInputError(
                f"{option} {device}: there are only {torch.cuda.device_count()} GPU(s) here (cuda:0 .. "
                f"cuda:{torch.cuda.device_count() - 1})"
            )
    return str(where)
