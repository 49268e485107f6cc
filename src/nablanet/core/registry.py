"""Registries: one per kind of building block (layers, activations, initialisers, optimizers, schedules,
data sets), mapping a name to the object it stands for.

Everything that needs the list of names — the command line's choices, the model-file reader, the
docs — reads it from the registry, so that a new layer, optimizer or data set is added in one place:
where it is defined, with the ``register`` decorator.

>>> COLOURS = Registry("colour")
>>> @COLOURS.register("red")
... def red():
...     return "#f00"
>>> COLOURS.lookup("red")()
'#f00'
>>> COLOURS.lookup("blue", argument="colour")
Traceback (most recent call last):
...
ValueError: colour must be one of ['red'], received: 'blue'
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Generic, TypeVar

T = TypeVar("T")


class Registry(Mapping[str, T], Generic[T]):
    """A read-only mapping name → object, filled by :meth:`register` where each object is defined."""

    def __init__(self, kind: str):
        self.kind = kind
        self._entries: dict[str, T] = {}

    def register(self, name: str | None = None) -> Callable[[T], T]:
        """Decorator: add the decorated class or function under ``name`` (default: its ``__name__``)."""

        def add(entry: T) -> T:
            key = name if name is not None else entry.__name__  # type: ignore[attr-defined]
            if not isinstance(key, str) or not key:
                raise TypeError(f"a {self.kind} is registered under a name, received {key!r}")
            if key in self._entries:
                raise ValueError(f"a {self.kind} named {key!r} is registered already")
            self._entries[key] = entry
            return entry

        return add

    def lookup(self, name: object, *, argument: str | None = None) -> T:
        """The entry called ``name``; a ``ValueError`` naming ``argument`` and the choices if there is none."""
        if not isinstance(name, str) or name not in self._entries:
            raise ValueError(f"{argument or self.kind} must be one of {sorted(self._entries)}, received: {name!r}")
        return self._entries[name]

    def name_of(self, entry: object) -> str:
        """The name ``entry`` is registered under (a ``TypeError`` if it is not registered)."""
        for key, value in self._entries.items():
            if value is entry:
                return key
        raise TypeError(f"{entry!r} is not a registered {self.kind} (known: {', '.join(self._entries)})")

    def names(self) -> tuple[str, ...]:
        """The registered names, in the order they were registered."""
        return tuple(self._entries)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name in self._entries

    def __getitem__(self, name: str) -> T:
        return self._entries[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}: {', '.join(self._entries)})"
