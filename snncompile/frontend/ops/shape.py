"""Shape operations: flatten/view/reshape, transpose/permute, squeeze/unsqueeze, and a
static input repeated over time (``static-m`` models)."""

from __future__ import annotations

import torch
from torch import fx, nn

from snncompile.frontend.ops.common import unsupported
from snncompile.frontend.ops.context import Converter
from snncompile.frontend.ops.registry import FUNCTION, layer, op, op_name
from snncompile.frontend.ops.window import lift_window
from snncompile.ir import Transpose


@layer(nn.Flatten)
def flatten_layer(cx: Converter, m: nn.Module, path: str, src: str, out_shape: tuple[int, ...]) -> str:
    return cx.reshape(src, out_shape, path, path)


@op("flatten", "view", "reshape", "contiguous")
def reshape(cx: Converter, n: fx.Node) -> str:
    where = n.format_node()
    src = cx.ir_input(n.args[0], where)
    if n.args[0].name in cx.time_reduced:
        cx.time_reduced.add(n.name)
    return cx.reshape(src, cx.sample_shape(n), where, n.name)


@op("transpose", "permute", "swapaxes", "t")
def transpose(cx: Converter, n: fx.Node) -> str:
    """A permutation of the per-sample axes (the time and batch axes stay in front)."""
    name, where = op_name(n), n.format_node()
    src = cx.ir_input(n.args[0], where)
    rank = len(cx.g.node(src).shape)
    if name == "permute":
        dims = n.args[1:] if len(n.args) > 2 else n.args[1]
        full = [cx.sample_axis(n.args[0], d, where) for d in dims[-rank:]]
        lead = len(dims) - rank
        if list(dims[:lead]) != list(range(lead)):
            raise unsupported("permute that moves the time or batch axis", where)
        perm = tuple(full)
    else:
        a = cx.sample_axis(n.args[0], n.args[1], where)
        b = cx.sample_axis(n.args[0], n.args[2], where)
        perm_l = list(range(rank))
        perm_l[a], perm_l[b] = perm_l[b], perm_l[a]
        perm = tuple(perm_l)
    if perm == tuple(range(rank)):
        return src
    return cx.add("transpose", Transpose(cx.sample_shape(n), where, perm=perm), [src])


def _source(cx: Converter, n: fx.Node) -> fx.Node | None:
    """The first argument, when it is a tensor already in the IR."""
    src0 = n.args[0] if n.args and isinstance(n.args[0], fx.Node) else None
    return src0 if src0 is not None and src0.name in cx.env else None


def static_lift(cx: Converter, n: fx.Node, lifts: bool) -> str | None:
    """``static-m``: a static ``[B, ...]`` input lifted to ``[1, B, ...]`` (``lifts``: by
    ``unsqueeze(0)`` or ``x[None]``) before it is repeated over T is the input itself."""
    src0 = _source(cx, n)
    if cx.layout.convention != "static-m" or src0 is None:
        return None
    full, sh0 = cx.rec.shapes.get(n.name), cx.rec.shapes.get(src0.name)
    if lifts and sh0 and sh0[0] == cx.B and full[:2] == (1, cx.B):
        cx.lifted.add(n.name)
        return cx.env[src0.name]
    return None


@op("unsqueeze", "squeeze")
def squeeze(cx: Converter, n: fx.Node) -> str | None:
    window = lift_window(cx, n, _source(cx, n))
    if window is not None:
        return window
    lifted = static_lift(cx, n, op_name(n) == "unsqueeze" and n.args[1:2] == (0,))
    if lifted is not None:
        return lifted
    src0 = _source(cx, n)
    if src0 is None:
        return cx.refuse(n)
    return cx.reshape(cx.env[src0.name], cx.sample_shape(n), n.format_node(), n.name)


@op("repeat", "expand")
def repeat(cx: Converter, n: fx.Node) -> str | None:
    """``static-m``: the lifted input repeated over T is the input (the model's own T)."""
    src0 = _source(cx, n)
    window = lift_window(cx, n, src0)
    if window is not None:
        return window
    if cx.layout.convention == "static-m" and src0 is not None and src0.name in cx.lifted \
            and cx.rec.shapes[n.name][:2] == (cx.T, cx.B):
        return cx.env[src0.name]
    if src0 is not None and op_name(n) == "expand" and cx.from_host(cx.env[src0.name]):
        from snncompile.frontend.ops.host import add_host  # (host imports arithmetic, which imports this)
        from snncompile.ir.host import Broadcast

        return add_host(cx, Broadcast(), [cx.env[src0.name]], cx.sample_shape(n), cx.module_of(n))
    return cx.refuse(n)


@op("stack", opcodes=FUNCTION)
def stack(cx: Converter, n: fx.Node) -> str | None:
    """``static-m``: ``torch.stack([x] * T)`` of one static input is the input."""
    if n.target is torch.stack and cx.layout.convention == "static-m":
        items = n.args[0]
        if items and all(i is items[0] for i in items) and items[0].name in cx.env \
                and cx.rec.shapes[n.name][:2] == (cx.T, cx.B):
            return cx.env[items[0].name]
    return cx.refuse(n)
