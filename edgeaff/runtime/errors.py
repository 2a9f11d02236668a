"""Error types shared by every part of edgeaff.

Errors derived from :class:`EdgeaffError` describe a problem with the user's input or environment. The CLI prints
their message on one line and exits non-zero without a traceback; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations


class EdgeaffError(Exception):
    """A problem the user can fix: the message says what is wrong and what to do."""

    exit_code = 2


class InvalidInputError(EdgeaffError):
    """An input file, tensor or option has the wrong content, shape or value."""


class MissingDependencyError(EdgeaffError, ImportError):
    """An optional library is not installed; the message names the extra that provides it."""

    exit_code = 3


def require(module: str, *, extra: str, purpose: str) -> object:
    """Import an optional module or raise :class:`MissingDependencyError` naming the extra to install.

    Args:
        module: dotted module name, e.g. ``"onnxruntime"``.
        extra: the edgeaff extra that provides it, e.g. ``"ort"``.
        purpose: what needs it, used in the message.

    Returns:
        The imported module.

    Raises:
        MissingDependencyError: when the import fails.
    """
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        package = module.split(".", maxsplit=1)[0]
        raise MissingDependencyError(
            f"{purpose} needs the '{package}' package ({exc}); install it with: pip install 'edgeaff[{extra}]'"
        ) from exc
