"""One registry mechanism for every pluggable component (block encoders, patch encoders).

A :class:`Registry` maps a name to a factory. A *family* name is registered once and takes an
argument after a colon: the patch encoder family ``timm`` serves ``timm:<model name>``.
Registering works as a call or as a class decorator::

    BLOCK_ENCODERS.register("my_kind", MyEncoder)

    @BLOCK_ENCODERS.register("my_kind")
    class MyEncoder(nn.Module): ...
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Generic, TypeVar

T = TypeVar("T")


class Registry(Generic[T]):
    """Named factories of one kind of component (``what`` names it in errors)."""

    def __init__(self, what: str) -> None:
        self.what = what
        self._names: dict[str, T] = {}
        self._families: dict[str, T] = {}

    def register(
        self, name: str, factory: T | None = None, *, family: bool = False, overwrite: bool = False
    ) -> Any:
        """Register ``factory`` under ``name`` (a family when ``family``); without ``factory``,
        return a decorator that registers what it decorates."""
        if factory is None:

            def decorate(obj: T) -> T:
                self.register(name, obj, family=family, overwrite=overwrite)
                return obj

            return decorate
        if ":" in name:
            raise ValueError(f"{self.what} names cannot contain ':' (it marks a family): {name!r}")
        table = self._families if family else self._names
        if name in table and table[name] is not factory and not overwrite:
            raise ValueError(f"{self.what} {name!r} is already registered ({table[name]})")
        table[name] = factory
        return factory

    def lookup(self, spec: str) -> tuple[T, tuple[str, ...]]:
        """The factory of ``spec`` and its positional arguments (the family's argument)."""
        family, sep, arg = spec.partition(":")
        if sep and family in self._families:
            if not arg:
                raise ValueError(f"{self.what} {spec!r}: the part after '{family}:' is empty")
            return self._families[family], (arg,)
        if spec in self._names:
            return self._names[spec], ()
        raise ValueError(f"unknown {self.what} {spec!r}; available: {', '.join(self.names())}")

    def names(self) -> list[str]:
        """Registered names, sorted, then families as ``'<family>:...'``."""
        return sorted(self._names) + [f"{k}:..." for k in sorted(self._families)]

    def __contains__(self, name: object) -> bool:
        return name in self._names

    def __getitem__(self, name: str) -> T:
        return self.lookup(name)[0]


Factory = Callable[..., Any]
