"""Window hosts (time barriers): a mean over every time step read by host operations that
return to the steps (the official SparseSpikformer scores tokens from ``x.mean(0)``, ranks them,
repeats the kept indices over T and gathers them from every step). The mean becomes a
:class:`~snncompile.ir.host.TimeMean` host node, exact for every step; the rest of the chain is
per step on a value equal at every step. A run is then staged: the network before the barrier
runs all T steps, the host computes, the network after runs all T steps."""

from __future__ import annotations

from torch import fx

from snncompile.frontend.ops.common import unsupported
from snncompile.frontend.ops.context import Converter
from snncompile.frontend.ops.registry import call_op, module_handler, op_name

_HOST_HANDLERS = ("snncompile.frontend.ops.host", "snncompile.frontend.ops.host_select")


def _is_host(cx: Converter, u: fx.Node) -> bool:
    """``u`` is compiled by a host handler (GELU/softmax modules, argsort, topk, gather, …)."""
    if u.op == "call_module":
        m = cx.modules.get(str(u.target))
        handler = module_handler(m) if m is not None else None
    elif u.op in ("call_function", "call_method"):
        found = call_op(u.op, op_name(u))
        handler = found.handler if found is not None else None
    else:
        return False
    return handler is not None and handler.__module__ in _HOST_HANDLERS


def _per_step(cx: Converter, u: fx.Node) -> bool:
    shape = cx.rec.shapes.get(u.name, ())
    return len(shape) >= 2 and (shape[:2] == (cx.T, cx.B) or shape[0] == cx.T * cx.B)


def window_needed(cx: Converter, n: fx.Node) -> bool:
    """The values computed from the time mean ``n`` pass a host operation and come back to the
    steps (a [T, B, …] or [T·B, …] tensor): only a window host makes that exact."""
    host = back = False
    seen, todo = {n}, list(n.users)
    while todo:
        u = todo.pop()
        if u in seen or u.op == "output":
            continue
        seen.add(u)
        host = host or _is_host(cx, u)
        if _per_step(cx, u):
            back = True
            continue   # from here on the values are per step again
        todo.extend(u.users)
    return host and back


def time_window(cx: Converter, n: fx.Node) -> str:
    """``x.mean(0)`` over [T, B, …] as a TimeMean host node (the value of every step)."""
    from snncompile.frontend.ops.host import add_host  # (host imports arithmetic, which imports pooling)
    from snncompile.ir.host import TimeMean

    where = n.format_node()
    if n.kwargs.get("keepdim", n.args[2] if len(n.args) > 2 else False):
        raise unsupported("a mean over time with keepdim=True read by a host operation (write x.mean(0))", where)
    src = cx.ir_input(n.args[0], where)
    cx.windowed.add(n.name)
    return add_host(cx, TimeMean(), [src], tuple(cx.g.node(src).shape), cx.module_of(n))


def lift_window(cx: Converter, n: fx.Node, src0: fx.Node | None) -> str | None:
    """``v.unsqueeze(0)`` then ``.repeat(T, 1, …)`` of a value computed from a window host
    ([B, …] → [1, B, …] → [T, B, …]): it is that value at every step already."""
    if src0 is None or src0.name not in cx.windowed:
        return None
    full = tuple(cx.rec.shapes.get(n.name, ()))
    if full[:2] == (1, cx.B):
        cx.lifted.add(n.name)
    elif not (src0.name in cx.lifted and full[:2] == (cx.T, cx.B)):
        return None
    return cx.reshape(cx.env[src0.name], full[2:], n.format_node(), n.name)


def follow_window(cx: Converter, n: fx.Node) -> None:
    """Mark ``n`` as computed from a window host while its values are not per step yet."""
    if any(a.name in cx.windowed for a in n.all_input_nodes) and not _per_step(cx, n):
        cx.windowed.add(n.name)
