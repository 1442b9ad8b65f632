"""Results computed from a graph, kept while the graph stays as it was.

A structural sweep of a 224 px model costs seconds, and the pass manager, the passes'
fact checks and the report ask for the same counts of the same graph. :func:`memo`
remembers small results per graph (weakly: a graph that goes away takes its results
along) and forgets them as soon as anything in the graph differs from when they were
computed: a node added, removed, rewired or replaced, or any field of a node set to a
new value. Arrays are compared by identity (held by weak reference, so a replaced array
is not kept alive): IR arrays are never written in place (a pass replaces them, see
docs/design.md), which is what makes identity enough.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from dataclasses import fields
from typing import Any, TypeVar

import numpy as np

from snncompile.ir.graph import IRGraph
from snncompile.ir.nodes import Node

T = TypeVar("T")
_IMMUTABLE = (type(None), bool, int, float, complex, str, bytes, np.generic)


class _Ref:
    """An array field by identity, without keeping the array alive."""

    __slots__ = ("ref",)

    def __init__(self, value: object) -> None:
        try:
            self.ref = weakref.ref(value)
        except TypeError:   # not weakly referable (not an array): held, still by identity
            self.ref = lambda: value

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Ref) and self.ref() is not None and self.ref() is other.ref()

    __hash__ = None  # type: ignore[assignment]


def _value(v: Any) -> Any:
    """A field value as compared: scalars by value, containers element by element (they
    could change in place), anything else (arrays) by identity."""
    if isinstance(v, _IMMUTABLE):
        return v
    if isinstance(v, (tuple, list)):
        return (type(v).__name__, tuple(_value(e) for e in v))
    if isinstance(v, dict):
        return ("dict", tuple((k, _value(e)) for k, e in v.items()))
    return _Ref(v)


def _node_state(node: Node, ignore: frozenset[str]) -> tuple:
    return (_Ref(node), tuple(_value(getattr(node, f.name)) for f in fields(node) if f.name not in ignore))


def state(graph: IRGraph, ignore: frozenset[str] = frozenset()) -> list:
    """What the graph is now: every node's name, inputs, object and field values (but the
    fields named in ``ignore``)."""
    return [(name, tuple(data["inputs"]), _node_state(data["node"], ignore))
            for name, data in graph.nx.nodes(data=True)]


_MEMOS: weakref.WeakKeyDictionary[IRGraph, dict[str, tuple[list, Any]]] = weakref.WeakKeyDictionary()


def memo(graph: IRGraph, key: str, compute: Callable[[], T], ignore: frozenset[str] = frozenset()) -> T:
    """``compute()``, or its result from an earlier call with the same ``key`` on ``graph``
    in the same :func:`state` (``ignore``: node fields the result does not depend on, the
    same for every call with this ``key``). Keep results small: they live as long as the graph."""
    now = state(graph, ignore)
    kept = _MEMOS.setdefault(graph, {})
    if key not in kept or kept[key][0] != now:
        kept[key] = (now, compute())
    return kept[key][1]


def remember(graph: IRGraph, key: str, value: object, ignore: frozenset[str] = frozenset()) -> None:
    """Record ``value`` as what ``key`` is for ``graph`` in its current state (a pass that
    has just established it, so that a later check does not recompute it)."""
    _MEMOS.setdefault(graph, {})[key] = (state(graph, ignore), value)


_BY_ARRAYS: dict[tuple, tuple[tuple[weakref.ref, ...], Any]] = {}
MISSING = object()


def recalled(key: str, arrays: tuple[np.ndarray, ...]) -> Any:
    """What :func:`keep` remembered for ``key`` on these array objects, else MISSING: by
    identity, as :func:`memo` compares arrays (IR arrays are never written in place)."""
    got = _BY_ARRAYS.get((key, *map(id, arrays)))
    if got is not None and all(r() is a for r, a in zip(got[0], arrays)):
        return got[1]
    return MISSING


def keep(key: str, arrays: tuple[np.ndarray, ...], value: Any) -> None:
    """Remember ``value`` for ``key`` on these array objects while they all live (entries go
    when one of their arrays does; an array type without weak references is not remembered)."""
    k = (key, *map(id, arrays))
    try:
        refs = tuple(weakref.ref(a, lambda _, k=k: _BY_ARRAYS.pop(k, None)) for a in arrays)
    except TypeError:
        return
    _BY_ARRAYS[k] = (refs, value)
