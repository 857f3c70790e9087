"""The repr, equality and (for frozen ones) immutability and hash of the small value classes that
``import pytest_faultline.controller`` loads.

They are written out, not ``@dataclass``: that import happens at every pytest start, and on
Python 3.12 ``@dataclass`` costs 0.15-1 ms per class (it compiles source for each method; see
benchmarks/bench_import.py). Each class writes its ``__init__`` and names its fields, in order,
in ``__match_args__``; this base gives what ``@dataclass`` would: ``Name(field=value, ...)``,
equality of the field values between instances of the same class, and, for
:class:`FrozenRecord`, ``dataclasses.FrozenInstanceError`` on assignment and a hash of the
field values.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar, Self

__all__ = ["FrozenRecord", "Record"]


class Record:
    """A class with named fields: ``__match_args__`` lists them in constructor order."""

    __slots__ = ()
    __match_args__: ClassVar[tuple[str, ...]] = ()

    def _values(self) -> tuple[Any, ...]:
        """What equality compares (and a frozen record hashes): the fields' values."""
        return tuple([getattr(self, name) for name in self.__match_args__])

    def __repr__(self) -> str:
        shown = ", ".join([f"{name}={getattr(self, name)!r}" for name in self.__match_args__])
        return f"{type(self).__qualname__}({shown})"

    def __eq__(self, other: object) -> bool:
        # Defining __eq__ leaves __hash__ None: a mutable record is unhashable, as a dataclass
        # with eq and without frozen is.
        if isinstance(other, Record) and other.__class__ is self.__class__:
            return self._values() == other._values()
        return NotImplemented


class FrozenRecord(Record):
    """A :class:`Record` that cannot change: its ``__init__`` sets the fields with
    :meth:`_set`; copy and pickle go through ``__init__``, :meth:`replace` too."""

    __slots__ = ()

    def _set(self, *values: Any) -> None:
        """Set the fields, in ``__match_args__`` order (the part of ``__init__`` they share)."""
        for name, value in zip(self.__match_args__, values, strict=True):
            object.__setattr__(self, name, value)

    # Hidden from mypy, which would otherwise accept any attribute name on assignment. The
    # import is done on misuse only: outside pytest nothing else loads dataclasses (~1 ms).
    if not TYPE_CHECKING:

        def __setattr__(self, name, value):
            from dataclasses import FrozenInstanceError

            raise FrozenInstanceError(f"cannot assign to field {name!r}")

        def __delattr__(self, name):
            from dataclasses import FrozenInstanceError

            raise FrozenInstanceError(f"cannot delete field {name!r}")

    def __hash__(self) -> int:
        return hash(self._values())

    def __reduce__(self) -> tuple[type[FrozenRecord], tuple[Any, ...]]:
        return (type(self), self._values())

    def replace(self, **changes: Any) -> Self:
        """A copy with ``changes``, as ``dataclasses.replace`` makes one."""
        values = dict(zip(self.__match_args__, self._values(), strict=True))
        values.update(changes)
        return type(self)(**values)
