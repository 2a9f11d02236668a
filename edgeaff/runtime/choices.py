"""Closed sets of named choices (precisions, model kinds, dimensions, ...) as string enums.

A :class:`Choice` member *is* its string value (``Precision.FP16 == "fp16"``), prints as that value and is written
to JSON as that value, so code and files that used the bare strings keep working. :meth:`Choice.parse` turns user
input into a member or raises one :class:`~edgeaff.runtime.errors.InvalidInputError` listing the valid choices.
"""

from __future__ import annotations

import enum
from typing import TypeVar

from edgeaff.runtime.errors import InvalidInputError

C = TypeVar("C", bound="Choice")


class Choice(str, enum.Enum):
    """Base of edgeaff's string enums: members compare, hash, print and serialise as their value.

    A subclass may name itself for error messages with a class attribute ``__label__`` (default: its class name in
    words).

    Example:
        >>> class Colour(Choice):
        ...     RED = "red"
        >>> Colour.parse("RED"), f"{Colour.RED}", Colour.RED == "red"
        (<Colour.RED: 'red'>, 'red', True)
    """

    def __str__(self) -> str:
        return str(self.value)

    def __format__(self, spec: str) -> str:
        return format(str(self.value), spec)

    @classmethod
    def parse(cls: type[C], value: object, *, what: str | None = None) -> C:
        """The member named ``value`` (case-insensitive), or the member itself.

        Raises:
            InvalidInputError: ``unknown <what> 'x'; choose one of a, b, c``.
        """
        if isinstance(value, cls):
            return value
        if isinstance(value, str):
            try:
                return cls(value.lower())
            except ValueError:
                pass
        label = what or getattr(cls, "__label__", None) or _words(cls.__name__)
        raise InvalidInputError(f"unknown {label} '{value}'; choose one of {', '.join(cls.values())}")

    @classmethod
    def values(cls) -> tuple[str, ...]:
        """The members' values in declaration order."""
        return tuple(str(member.value) for member in cls)


def _words(name: str) -> str:
    """``ModelKind`` -> ``model kind``."""
    return "".join(f" {c.lower()}" if c.isupper() and i else c.lower() for i, c in enumerate(name))
