"""One registry per concern: what each IR node type does in that concern.

Every behaviour that differs by node type (reference step, structural step, synapse
count, lowering, unrolling, energy count, report row) is looked up here by the node's
class, never through an ``isinstance`` chain. A registry knows every registry, so a test
can walk ``NODE_TYPES`` × ``REGISTRIES`` and fail on the first missing case.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from snncompile.ir.nodes import NODE_TYPES, Node

REGISTRIES: dict[str, Registry] = {}


class MissingBehaviour(NotImplementedError):
    """A node type has no entry in a registry (a bug in snncompile, not a user error)."""


class Registry:
    """Maps node classes to one function each for one concern."""

    def __init__(self, concern: str) -> None:
        if concern in REGISTRIES:
            raise ValueError(f"registry {concern!r} exists already")
        self.concern = concern
        self._impl: dict[type[Node], Callable[..., Any]] = {}
        REGISTRIES[concern] = self

    def register(self, *types: type[Node]) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        def deco(fn: Callable[..., Any]) -> Callable[..., Any]:
            for t in types:
                if t in self._impl:
                    raise ValueError(f"{self.concern}: {t.__name__} registered twice")
                self._impl[t] = fn
            return fn
        return deco

    def __call__(self, node: Node | type[Node]) -> Callable[..., Any]:
        cls = node if isinstance(node, type) else type(node)
        try:
            return self._impl[cls]
        except KeyError:
            raise MissingBehaviour(f"no {self.concern} for IR node type {cls.__name__}") from None

    def missing(self) -> list[str]:
        """Node types of the IR without an entry here."""
        return sorted(op for op, cls in NODE_TYPES.items() if cls not in self._impl)


def not_applicable(concern: str) -> Callable[..., Any]:
    """An explicit 'this concern does not apply' entry, raising if it is ever reached."""
    def fn(node: Node, *args: Any, **kwargs: Any) -> Any:
        raise MissingBehaviour(f"{concern} does not apply to IR node type {type(node).__name__}")
    return fn
