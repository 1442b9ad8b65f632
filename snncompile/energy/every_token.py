"""Token selectors found in a graph, and the same network rebuilt keeping every token.

Three kinds of selector pick k of the N tokens of each step by their scores:

- ``mask``: a 0/1 keep mask scattered from top-k indices and multiplied into the tokens
  (``zeros_like(s).scatter(dim, topk_idx, 1)``): the layers after it keep N tokens, the
  dropped ones carrying zeros.
- ``gather``: the tokens at the top-k indices picked out (``torch.gather``,
  ``index_select``, ``x[arange(R)[:, None], idx]``, ``batch_index_select``): the layers
  after it are k tokens wide.

The indices come from ``topk(k)`` or from ``argsort``/``sort`` sliced to its first k
(``order[:, :k]``). The baseline "every token" is the same network with each selector's
k set to N: a TopK's k, a slice's stop. Its shapes change downstream of a gather (k → N
along the token axis); :func:`keep_every_token` re-derives each node's shape from its
inputs and refuses, by name, a node whose shape or parameters it cannot re-derive
(a convolution over tokens, a per-token parameter array): never a guess.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields, replace
from typing import Any

import numpy as np

from snncompile.errors import EXIT_UNSUPPORTED, SnnCompileError
from snncompile.ir import (
    Add,
    BatchNorm,
    Concat,
    Delay,
    Host,
    Input,
    IRGraph,
    Linear,
    MatMul,
    Neuron,
    Output,
    Reduce,
    Reshape,
    Scale,
    Slice,
    Transpose,
)
from snncompile.ir.host import Broadcast, Gather, IndexSelect, Max, Product, ScatterOnes, Sort, TopK, Where
from snncompile.ir.labels import labels
from snncompile.ir.nodes import Node

_VIEWS = (Reshape, Transpose, Slice)
Shape = tuple[int, ...]


@dataclass(frozen=True)
class Selector:
    """One token selector: its output node (the keep-mask product or the gather), ``kind``
    ("mask" | "gather"), the node holding k (a TopK, or the Slice of a sort), k of N tokens,
    and for a mask the ScatterOnes node (its values are the kept tokens)."""

    name: str
    kind: str
    k_node: str
    k: int
    n: int
    mask: str = ""


def through_views(graph: IRGraph, name: str, also: tuple[type, ...] = ()) -> str:
    """The first node before ``name`` that is not a reshape/transpose/slice (nor ``also`` host fns)."""
    while isinstance(graph.node(name), _VIEWS) or (
            isinstance(graph.node(name), Host) and isinstance(graph.node(name).fn, also)):
        name = graph.inputs(name)[0]
    return name


def _k_node(graph: IRGraph, name: str) -> tuple[str, int, int] | None:
    """``name`` (through reshapes and index broadcasts) as (k node, k, N): a TopK's indices,
    or the first k of a sort's order (``argsort(s)[:, :k]``); None for other indices."""
    while isinstance(graph.node(name), (Reshape, Transpose)) or (
            isinstance(graph.node(name), Host) and isinstance(graph.node(name).fn, Broadcast)):
        name = graph.inputs(name)[0]
    node = graph.node(name)
    if isinstance(node, Host) and isinstance(node.fn, TopK) and node.fn.indices:
        n = graph.node(graph.inputs(name)[0]).shape[node.fn.axis]
        return name, node.fn.k, n
    if isinstance(node, Slice) and node.start == 0:
        src = graph.node(graph.inputs(name)[0])
        if isinstance(src, Host) and isinstance(src.fn, Sort) and src.fn.indices \
                and _axis(src.fn.axis, src.shape) == _axis(node.axis, node.shape):
            return name, node.stop, src.shape[node.axis]
    return None


def _axis(axis: int, shape: Shape) -> int:
    return axis % len(shape) if shape else 0


def _index_input(graph: IRGraph, name: str, node: Host) -> str | None:
    """The indices input of a token-picking host op, None if ``node`` picks nothing."""
    if isinstance(node.fn, (Gather, IndexSelect)):
        return graph.inputs(name)[1]
    if isinstance(node.fn, ScatterOnes):
        return graph.inputs(name)[0]
    return None


def find_selectors(graph: IRGraph) -> tuple[list[Selector], list[str]]:
    """The token selectors of ``graph``, and the token-picking host ops it cannot rebuild with
    every token (indices not from a top-k or a sorted order's first k; a mask not from indices)
    as messages naming each."""
    found: list[Selector] = []
    unknown: list[str] = []
    for name in graph.topo():
        node = graph.node(name)
        if not isinstance(node, Host):
            continue
        if isinstance(node.fn, Product):
            sel = _mask_selector(graph, name)
            if sel is not None:
                found.append(sel)
            continue
        idx = _index_input(graph, name, node)
        if idx is None:
            if _token_mask_fill(graph, name, node):
                unknown.append(f"`{node.fn.describe()}` at `{node.source or name}` (a boolean token mask: how many "
                               "tokens it keeps is data-dependent, there is no k to set to N)")
            continue
        k = _k_node(graph, idx)
        if k is None:
            unknown.append(f"`{node.fn.describe()}` at `{node.source or name}` (its indices come from "
                           f"`{graph.node(through_views(graph, idx, (Broadcast,))).op}`, not a top-k or a sorted order)")
        elif isinstance(node.fn, (Gather, IndexSelect)):
            found.append(Selector(name, "gather", *k))
    return found, unknown


def _token_mask_fill(graph: IRGraph, name: str, node: Host) -> bool:
    """``masked_fill(mask, 0)`` / ``where(mask, x, 0)`` whose mask covers whole tokens: one value
    per token, broadcast over the channels (the last axis). An elementwise ``where(x > 0, x, 0)``
    or an attention mask is no token selection."""
    if not isinstance(node.fn, Where) or 0.0 not in (node.fn.a, node.fn.b):
        return False
    mask, out = tuple(graph.node(graph.inputs(name)[0]).shape), tuple(node.shape)
    return bool(out and mask) and out[-1] > 1 and mask[-1] == 1 and any(m > 1 for m in mask)


def _mask_selector(graph: IRGraph, name: str) -> Selector | None:
    for src in graph.inputs(name):
        mask = through_views(graph, src)
        m = graph.node(mask)
        if isinstance(m, Host) and isinstance(m.fn, ScatterOnes) and m.fn.binary_out():
            k = _k_node(graph, graph.inputs(mask)[0])
            if k is not None:
                return Selector(name, "mask", *k, mask=mask)
    return None


class NoEveryTokenNetwork(SnnCompileError):
    """The network cannot be rebuilt keeping every token (named in the message)."""


def refusal(what: str) -> NoEveryTokenNetwork:
    return NoEveryTokenNetwork(f"cannot rebuild the network keeping every token: {what}",
                           "the token selection's saving needs the same network with every token; price the "
                           "model without --keep-ratio", EXIT_UNSUPPORTED)


def keep_every_token(graph: IRGraph, found: list[Selector] | None = None) -> IRGraph:
    """A copy of ``graph`` whose selectors keep every token (k = N), each node's shape
    re-derived from its inputs downstream of a changed one."""
    found = find_selectors(graph)[0] if found is None else found
    k_nodes = {s.k_node for s in found}
    names = labels(graph)   # module paths, as every report names layers
    g = graph.copy()
    old = {n: tuple(graph.node(n).shape) for n in graph.topo()}
    for name in g.topo():
        node = g.node(name)
        ins = g.inputs(name)
        new_in = [tuple(g.node(i).shape) for i in ins]
        if name in k_nodes:
            new = _every(node, new_in)
        elif any(a != old[i] for a, i in zip(new_in, ins)):
            new = _reshaped(names.get(name, name), node, [old[i] for i in ins], new_in)
        else:
            continue
        if new is not node:
            g.nx.nodes[name]["node"] = new
    return g


def _every(node: Node, new_in: list[Shape]) -> Node:
    """A selector's k node keeping all N tokens."""
    shape = list(node.shape)
    if isinstance(node, Host):
        axis = _axis(node.fn.axis, node.shape)
        shape[axis] = new_in[0][axis]
        return replace(node, shape=tuple(shape), fn=replace(node.fn, k=shape[axis]))
    axis = _axis(node.axis, node.shape)
    shape[axis] = new_in[0][axis]
    return replace(node, shape=tuple(shape), stop=shape[axis])


def _broadcast(shapes: list[Shape]) -> Shape | None:
    try:
        return tuple(int(s) for s in np.broadcast_shapes(*shapes))
    except ValueError:   # one operand kept k tokens, the other every token
        return None


def _changed_axes(old: Shape, new: Shape) -> list[int]:
    return [a for a, (o, n) in enumerate(zip(old, new)) if o != n]


def _reshaped(label: str, node: Node, old_in: list[Shape], new_in: list[Shape]) -> Node:
    """``node`` (named ``label`` in messages) with its shape re-derived from inputs whose token
    axes changed size."""
    what = f"`{node.op}` node `{label}`"
    changed = sorted({a for o, n in zip(old_in, new_in) for a in _changed_axes(o, n)})
    shape = _shape_of(node, old_in, new_in, changed, what)
    if shape is None:
        shapes = ", ".join(str(o) for o in old_in)
        raise refusal(f"{what} ({shapes} → {tuple(node.shape)}) cannot take {new_in[0]} instead")
    if shape == tuple(node.shape):
        return node
    for f in fields(node) if not node.synaptic else ():   # a per-element array would have to grow: refuse
        v = getattr(node, f.name)
        if isinstance(v, np.ndarray) and v.ndim and tuple(v.shape) == tuple(node.shape) and f.name != "alive":
            raise refusal(f"{what} has a parameter `{f.name}` per element")
    if isinstance(node, Neuron):
        return replace(node, shape=shape, dynamics=_dynamics(node, shape, what),
                       alive=None if node.alive is None else _regrow(node.alive, node, shape, what, "neurons removed"))
    return replace(node, shape=shape)


def _dynamics(node: Neuron, shape: Shape, what: str) -> Any:
    """The neuron's dynamics with its per-neuron arrays (thresholds, decays) regrown to ``shape``."""
    dyn = node.dynamics
    grown = {f.name: _regrow(v, node, shape, what, f"a parameter `{f.name}` that differs")
             for f in fields(dyn) if isinstance(v := getattr(dyn, f.name), np.ndarray) and v.ndim}
    return replace(dyn, **grown) if grown else dyn


def _regrow(values: np.ndarray, node: Neuron, shape: Shape, what: str, differs: str) -> np.ndarray:
    """A per-neuron array the same at every token position, regrown to ``shape``; else refused."""
    a = np.broadcast_to(np.asarray(values), tuple(node.shape))
    for ax in _changed_axes(tuple(node.shape), shape):
        first = np.take(a, [0], axis=ax)
        if not np.array_equal(np.broadcast_to(first, a.shape), a):
            raise refusal(f"{what} has {differs} between token positions")
        a = np.take(first, [0] * shape[ax], axis=ax)
    return np.ascontiguousarray(a)


def _same(node: Node, old_in: list[Shape], new_in: list[Shape], changed: list[int], what: str) -> Shape | None:
    """Elementwise nodes: the output takes the (broadcast) input shape."""
    if isinstance(node, BatchNorm) and 0 in changed:
        return None   # per-channel parameters along the changed axis
    if isinstance(node, Delay) and isinstance(node.steps, np.ndarray):
        return None
    return _broadcast(new_in)


def _shape_of(node: Node, old_in: list[Shape], new_in: list[Shape], changed: list[int], what: str) -> Shape | None:
    if isinstance(node, (Neuron, BatchNorm, Scale, Add, Delay, Output, Input)):
        return _same(node, old_in, new_in, changed, what)
    if isinstance(node, Linear):
        return None if len(new_in[0]) - 1 in changed else (*new_in[0][:-1], node.shape[-1])
    if isinstance(node, Transpose):
        return tuple(new_in[0][p] for p in node.perm)
    if isinstance(node, Reshape):
        return _reshape(tuple(node.shape), old_in[0], new_in[0])
    if isinstance(node, Slice):
        return None if _axis(node.axis, new_in[0]) in changed else _with(new_in[0], node.axis, node.stop - node.start)
    if isinstance(node, Concat):
        axis = _axis(node.axis, new_in[0])
        return None if axis in changed else _with(new_in[0], axis, sum(s[axis] for s in new_in))
    if isinstance(node, Reduce):
        return _with(new_in[0], node.axis, 1) if node.keepdim else tuple(
            s for a, s in enumerate(new_in[0]) if a != _axis(node.axis, new_in[0]))
    if isinstance(node, MatMul):
        if node.mode != "matmul":
            return _broadcast(new_in)
        a, b = new_in
        lead = _broadcast([a[:-2], b[:-2]])
        return None if lead is None or a[-1] != b[-2] else (*lead, a[-2], b[-1])
    if isinstance(node, Host):
        return _host_shape(node, old_in, new_in, changed)
    return None


def _with(shape: Shape, axis: int, size: int) -> Shape:
    out = list(shape)
    out[_axis(axis, shape)] = size
    return tuple(out)


def _host_shape(node: Host, old_in: list[Shape], new_in: list[Shape], changed: list[int]) -> Shape | None:
    fn = node.fn
    if fn.elementwise or isinstance(fn, (Product, Where)):
        return _broadcast(new_in)
    if isinstance(fn, (Sort,)):
        return new_in[0]
    if isinstance(fn, TopK):
        return _with(new_in[0], fn.axis, fn.k)
    if isinstance(fn, Max):
        return tuple(s for a, s in enumerate(new_in[0]) if a != _axis(fn.axis, new_in[0]))
    if isinstance(fn, Gather):
        return new_in[1]
    if isinstance(fn, IndexSelect):
        return _with(new_in[0], fn.axis, int(np.prod(new_in[1])))
    if isinstance(fn, ScatterOnes):
        return tuple(node.shape)   # the scores' shape (zeros_like(s)); only k of its indices changed
    if isinstance(fn, Broadcast):
        return tuple(o if i == 1 else n for o, i, n in zip(node.shape, old_in[0], new_in[0]))
    return None


def _reshape(out: Shape, old: Shape, new: Shape) -> Shape | None:
    """A reshape's target after input axes changed size: each changed input axis must be one
    output axis, possibly merged with whole neighbouring input axes (same flat layout)."""
    target = list(out)
    for a in _changed_axes(old, new):
        before, after = math.prod(old[:a]), math.prod(old[a + 1:])
        for b in range(len(out)):
            pre, post = math.prod(out[:b]), math.prod(out[b + 1:])
            if before % pre == 0 and after % post == 0 and out[b] == before // pre * old[a] * (after // post):
                if out[b] != old[a] and (before // pre != 1 or after // post != 1):
                    # a merged axis: only if the merge is of whole axes on each side
                    if not (_splits(old[:a], pre) and _splits(old[a + 1:], post, tail=True)):
                        continue
                target[b] = out[b] // old[a] * new[a]
                break
        else:
            return None
    return tuple(target) if math.prod(target) == math.prod(new) else None


def _splits(axes: Shape, size: int, tail: bool = False) -> bool:
    """``size`` is the product of a run of whole axes at the start (or ``tail``: the end) of ``axes``."""
    seq = axes[::-1] if tail else axes
    return any(math.prod(seq[:i]) == size for i in range(len(seq) + 1))


__all__ = ["NoEveryTokenNetwork", "Selector", "find_selectors", "keep_every_token", "refusal", "through_views"]
