"""Safe loading of PyTorch ``.pth`` state dicts: tensors only, never arbitrary pickled objects."""

from __future__ import annotations

import pickle
import zipfile
from collections.abc import Mapping
from pathlib import Path

import torch

from edgeaff.runtime.errors import InvalidInputError

_WRAPPER_KEYS = ("state_dict", "model_state_dict", "model")


def load_state_dict_file(path: str | Path, *, what: str = "state dict") -> dict[str, torch.Tensor]:
    """Load a state dict saved with ``torch.save`` using ``weights_only=True``.

    Accepts a plain ``{name: tensor}`` mapping, or one wrapped under ``state_dict`` / ``model_state_dict`` /
    ``model``; a ``module.`` prefix (DataParallel) on every key is removed.

    Raises:
        InvalidInputError: missing file, a file with pickled objects other than tensors, a corrupt/truncated file,
            or content that is not a mapping of tensors.
    """
    file = Path(path)
    if not file.is_file():
        raise InvalidInputError(f"{what} file not found: {file}")
    try:
        obj = torch.load(file, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise InvalidInputError(
            f"{file}: refusing to load: it contains pickled Python objects, not just tensors ({reason}); "
            "save a plain state dict with torch.save(model.state_dict(), path)"
        ) from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError, ValueError) as exc:
        raise InvalidInputError(f"{file}: not a readable PyTorch file (truncated or corrupt?): {exc}") from None
    if isinstance(obj, Mapping):
        for key in _WRAPPER_KEYS:
            inner = obj.get(key)
            if isinstance(inner, Mapping) and inner and all(isinstance(v, torch.Tensor) for v in inner.values()):
                obj = inner
                break
    if not isinstance(obj, Mapping) or not obj:
        raise InvalidInputError(f"{file}: expected a {what} (a mapping of names to tensors), got {type(obj).__name__}")
    not_tensors = [k for k, v in obj.items() if not isinstance(v, torch.Tensor)]
    if not_tensors:
        raise InvalidInputError(f"{file}: expected only tensors in the {what}; these are not: {not_tensors[:5]}")
    state = {str(k): v for k, v in obj.items()}
    if all(k.startswith("module.") for k in state):
        state = {k[len("module.") :]: v for k, v in state.items()}
    return state
