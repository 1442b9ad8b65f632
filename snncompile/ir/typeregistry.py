"""The shared mechanism of every registry keyed by a class: one function per class for one
concern, registered once, looked up by an instance or its class, with the classes still
missing listed for coverage tests (:mod:`snncompile.ir.registry` for IR node types,
:mod:`snncompile.ir.dynamics.registry` for neuron dynamics)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


class TypeRegistry:
    """Maps classes to one function each for one concern. Subclasses say what the keys are
    (``key_kind``, for messages), which error a missing entry raises (``missing_error``) and
    which classes must be covered (:meth:`universe`)."""

    key_kind = "type"
    missing_error: type[Exception] = NotImplementedError

    def __init__(self, concern: str, table: dict[str, TypeRegistry]) -> None:
        if concern in table:
            raise ValueError(f"{self.key_kind} registry {concern!r} exists already")
        self.concern = concern
        self._impl: dict[type, Callable[..., Any]] = {}
        table[concern] = self

    def register(self, *types: type) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        def deco(fn: Callable[..., Any]) -> Callable[..., Any]:
            for t in types:
                if t in self._impl:
                    raise ValueError(f"{self.concern}: {t.__name__} registered twice")
                self._impl[t] = fn
            return fn
        return deco

    def __call__(self, key: Any) -> Callable[..., Any]:
        cls = key if isinstance(key, type) else type(key)
        try:
            return self._impl[cls]
        except KeyError:
            raise self.missing_error(f"no {self.concern} for {self.key_kind} {cls.__name__}") from None

    def universe(self) -> dict[str, type]:
        """Name → class of everything this registry must cover."""
        raise NotImplementedError

    def missing(self) -> list[str]:
        """Names of the classes without an entry here."""
        return sorted(name for name, cls in self.universe().items() if cls not in self._impl)
