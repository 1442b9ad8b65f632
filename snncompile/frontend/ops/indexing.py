"""Pieces of tensors and their joins: chunk/split/unbind, indexing and slicing (Slice),
torch.cat (Concat)."""

from __future__ import annotations

import operator

from torch import fx

from snncompile.frontend.ops.common import contextual, selection, unsupported
from snncompile.frontend.ops.context import Converter
from snncompile.frontend.ops.registry import FUNCTION, op, op_name
from snncompile.frontend.ops.shape import static_lift
from snncompile.frontend.ops.window import lift_window
from snncompile.frontend.tracer import flat_values
from snncompile.ir import Concat, Slice


@op("chunk", "split", "unbind", "tensor_split", "split_with_sizes", early=True)
def pieces(cx: Converter, n: fx.Node) -> None:
    """chunk/split/unbind: remember where each piece lies; getitem makes it a Slice."""
    if not cx.tensor_args(n):
        return cx.refuse(n)
    name, where = op_name(n), n.format_node()
    src = n.args[0]
    dim = n.kwargs.get("dim", n.args[2] if len(n.args) > 2 else 0)
    if name == "unbind":
        dim = n.kwargs.get("dim", n.args[1] if len(n.args) > 1 else 0)
    axis = cx.sample_axis(src, dim, where)
    values = cx.rec.values.get(n.name)
    if not isinstance(values, (tuple, list)):
        raise unsupported(f"`{name}` whose pieces could not be evaluated", where)
    start, spans = 0, []
    for p in values:
        size = 1 if name == "unbind" else int(p.shape[dim])
        spans.append((start, start + size))
        start += size
    cx.pieces[n.name] = (cx.ir_input(src, where), axis, spans, name == "unbind")
    return None


def piece(cx: Converter, n: fx.Node, where: str) -> str:
    """``pieces[k]``: the Slice of the k-th piece (squeezed for unbind)."""
    src, axis, spans, squeeze = cx.pieces[n.args[0].name]
    if not isinstance(n.args[1], int):
        raise unsupported("indexing the pieces of chunk/split with a slice (take them one by one)", where)
    start, stop = spans[n.args[1]]
    shape = list(cx.g.node(src).shape)
    shape[axis] = stop - start
    out = cx.add("slice", Slice(tuple(shape), where, axis=axis, start=start, stop=stop), [src])
    return cx.reshape(out, cx.sample_shape(n), where, n.name) if squeeze else out


@op("getitem", opcodes=FUNCTION, early=True)
def getitem(cx: Converter, n: fx.Node) -> str | None:
    """``x[...]``: a piece of chunk/split, the spikes of a neuron's (spikes, state), a basic
    slice or index, or a static input lifted by ``x[None]``; indexing by a tensor is refused."""
    where, (src0, *index) = n.format_node(), n.args
    if isinstance(src0, fx.Node) and src0.name in cx.pieces:
        return piece(cx, n, where)
    if isinstance(src0, fx.Node) and src0.name in cx.host_pieces:
        from snncompile.frontend.ops.host import host_piece  # (host imports this package's modules)

        return host_piece(cx, n)
    if n.name not in cx.rec.shapes or src0.name not in cx.env:
        return None   # a Python value (a size), or an element of one
    by_tensor = any(isinstance(a, fx.Node) for a in flat_values(n.args[1:]))
    if not by_tensor and src0.name not in cx.rec.values:
        sliced = _basic_index(cx, n, where)
        if sliced is not None:
            return sliced
    if src0.name in cx.rec.values:   # (spikes, state) returned by a neuron module
        if index[0] == 0:
            return cx.env[src0.name]
        if not n.users:
            return None   # the state, unused (only the spikes go on)
        raise contextual(f"`{where}` uses element {index[0]!r} of what neuron `{src0.target}` returns "
                         "(its membrane state) in the computation",
                         "only spikes can pass between layers on a neuromorphic chip; return or record "
                         "the state, but compute the next layer from the spikes (element 0)")
    if by_tensor:
        from snncompile.frontend.ops.host_select import rows_index  # (host imports this package's modules)

        picked = rows_index(cx, n)
        if picked is not None:
            return picked
        raise selection(f"indexing by a tensor (`{where}`)", cx.module_of(n))
    lifts = isinstance(index[0], tuple) and index[0][:1] == (None,)
    if lifts and all(i is None or i == slice(None) for i in index[0][1:]):   # v[None, :, None]: new axes only
        window = lift_window(cx, n, src0)
        if window is not None:
            return window
    lifted = static_lift(cx, n, lifts)
    return lifted if lifted is not None else cx.refuse(n)


def _basic_index(cx: Converter, n: fx.Node, where: str) -> str | None:
    """x[..., a:b] / x[:, :, i] on per-sample axes (unit step) as Slice (+ Reshape)."""
    index = n.args[1] if isinstance(n.args[1], tuple) else (n.args[1],)
    if any(i is None for i in index) or not all(isinstance(i, (slice, int, type(Ellipsis))) for i in index):
        return None
    full = cx.rec.shapes[n.args[0].name]
    if index.count(Ellipsis) > 1:
        return None
    if Ellipsis in index:
        k = index.index(Ellipsis)
        index = index[:k] + (slice(None),) * (len(full) - len(index) + 1) + index[k + 1:]
    index = index + (slice(None),) * (len(full) - len(index))
    src = cx.ir_input(n.args[0], where)
    lead = len(full) - len(cx.g.node(src).shape)
    if any(i != slice(None) for i in index[:lead]):
        if cx.mode == "m" and lead and isinstance(index[0], int):
            raise unsupported("indexing one time step inside forward() of a multi-step model", where)
        raise unsupported("indexing over the time or batch axis", where)
    out = src
    for axis, i in enumerate(index[lead:]):
        if i == slice(None):
            continue
        size = cx.g.node(out).shape[axis]
        if isinstance(i, int):
            start, stop = (i % size), (i % size) + 1
        else:
            start, stop, step = i.indices(size)
            if step != 1:
                raise unsupported("slicing with a step", where)
        shape = list(cx.g.node(out).shape)
        shape[axis] = stop - start
        out = cx.add("slice", Slice(tuple(shape), where, axis=axis, start=start, stop=stop), [out])
    return cx.reshape(out, cx.sample_shape(n), where, n.name)


@op("cat", "concat")
def concat(cx: Converter, n: fx.Node) -> str:
    where = n.format_node()
    items = n.args[0] if n.args else n.kwargs.get("tensors")
    dim = n.args[1] if len(n.args) > 1 else n.kwargs.get("dim", 0)
    if isinstance(items, fx.Node) and items.name in cx.pieces:   # torch.cat(x.chunk(k)) re-joins x
        joined = items
        items = []
        for k in range(len(cx.pieces[joined.name][2])):
            with cx.gm.graph.inserting_after(joined):
                items.append(cx.gm.graph.call_function(operator.getitem, (joined, k)))
            cx.rec.shapes[items[-1].name] = tuple(cx.rec.values[joined.name][k].shape)
            cx.env[items[-1].name] = piece(cx, items[-1], where)
    if not isinstance(items, (list, tuple)):
        raise unsupported("concatenation of a computed sequence", where)
    srcs = [cx.ir_input(i, where) for i in items]
    axis = cx.sample_axis(items[0], dim, where)
    if len(srcs) == 1:
        return srcs[0]
    return cx.add("concat", Concat(cx.sample_shape(n), where, axis=axis), srcs)
