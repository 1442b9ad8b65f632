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
from snncompile.ir.typeregistry import TypeRegistry

REGISTRIES: dict[str, Registry] = {}


class MissingBehaviour(NotImplementedError):
    """A node type has no entry in a registry (a bug in snncompile, not a user error)."""


class Registry(TypeRegistry):
    """Maps node classes to one function each for one concern."""

    key_kind = "IR node type"
    missing_error = MissingBehaviour

    def __init__(self, concern: str) -> None:
        super().__init__(concern, REGISTRIES)

    def universe(self) -> dict[str, type]:
        return dict(NODE_TYPES)


def not_applicable(concern: str) -> Callable[..., Any]:
    """An explicit 'this concern does not apply' entry, raising if it is ever reached."""
    def fn(node: Node, *args: Any, **kwargs: Any) -> Any:
        raise MissingBehaviour(f"{concern} does not apply to IR node type {type(node).__name__}")
    return fn
