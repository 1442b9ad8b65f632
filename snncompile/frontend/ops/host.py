"""Host partitions: real-valued, data-dependent operations traced as written (SparseSpikformer's
token scoring MLP, top-k token selection, gathers, scatters into keep masks, real gates), each
an IR :class:`~snncompile.ir.Host` node that runs off the neuromorphic cores. ``no_host`` on the
converter (``--no-host``) refuses each by name with its module path."""

from __future__ import annotations

import dataclasses
from typing import Any

from torch import fx, nn

from snncompile.errors import EXIT_UNSUPPORTED, SnnCompileError
from snncompile.frontend.ops.common import unsupported
from snncompile.frontend.ops.context import Converter
from snncompile.frontend.ops.registry import FUNCTION, layer, op, op_name
from snncompile.ir import Host
from snncompile.ir.host import Gather, Gelu, HostFn, LogSoftmax, Product, ScatterOnes, Sigmoid, Softmax, TopK


def refusal(what: str, path: str) -> SnnCompileError:
    """``--no-host``: the op would need the embedded CPU / host."""
    return SnnCompileError(f"{what} at `{path}` is a host operation (real-valued or data-dependent: it needs the "
                           "chip's embedded CPU or the host), refused by --no-host",
                           "drop --no-host to compile it as a host partition (marked off-core in every report), "
                           "or replace it by spiking layers", EXIT_UNSUPPORTED)


def add_host(cx: Converter, fn: HostFn, inputs: list[str], shape: tuple[int, ...], path: str) -> str:
    """The Host node of ``fn`` (or the --no-host refusal)."""
    if getattr(cx, "no_host", False):
        raise refusal(f"`{fn.describe()}`", path)
    return cx.add(fn.name, Host(tuple(shape), path, fn=fn), inputs)


def _dim(n: fx.Node, pos: int, default: int | None) -> Any:
    return n.kwargs.get("dim", n.args[pos] if len(n.args) > pos else default)


@layer(nn.GELU, nn.Sigmoid, nn.Softmax, nn.LogSoftmax)
def activation_module(cx: Converter, m: nn.Module, path: str, src: str, out_shape: tuple[int, ...]) -> str:
    if isinstance(m, nn.GELU):
        fn: HostFn = Gelu(tanh=m.approximate == "tanh")
    elif isinstance(m, nn.Sigmoid):
        fn = Sigmoid()
    else:
        if m.dim is None:
            raise unsupported(f"{type(m).__name__} without dim", path)
        rank = len(cx.g.node(src).shape)
        axis = m.dim - (len(cx.rec.shapes.get(path, ())) or rank + 1) + rank if m.dim >= 0 else m.dim
        fn = LogSoftmax(axis) if isinstance(m, nn.LogSoftmax) else Softmax(axis)
    return add_host(cx, fn, [src], out_shape, path)


@op("gelu", "sigmoid", "softmax", "log_softmax")
def activation(cx: Converter, n: fx.Node) -> str:
    src = cx.ir_input(n.args[0], n.format_node())
    name, where = op_name(n), cx.module_of(n)
    if name == "gelu":
        fn: HostFn = Gelu(tanh=n.kwargs.get("approximate", "none") == "tanh")
    elif name == "sigmoid":
        fn = Sigmoid()
    else:
        axis = cx.sample_axis(n.args[0], _dim(n, 1, -1), n.format_node())
        fn = LogSoftmax(axis) if name == "log_softmax" else Softmax(axis)
    return add_host(cx, fn, [src], cx.sample_shape(n), where)


@op("topk", early=True)
def topk(cx: Converter, n: fx.Node) -> None:
    """``values, indices = x.topk(k, dim)``: remembered; ``getitem`` makes each a TopK node."""
    if not cx.tensor_args(n):
        return cx.refuse(n)
    where = n.format_node()
    k = n.kwargs.get("k", n.args[1] if len(n.args) > 1 else None)
    if not isinstance(k, int):
        raise unsupported("topk with a k computed in forward()", where)
    axis = cx.sample_axis(n.args[0], _dim(n, 2, -1), where)
    largest = bool(n.kwargs.get("largest", n.args[3] if len(n.args) > 3 else True))
    cx.host_pieces[n.name] = (cx.ir_input(n.args[0], where), TopK(k=k, axis=axis, largest=largest))
    return None


_FIELDS = {0: False, 1: True, "values": False, "indices": True}


def host_piece(cx: Converter, n: fx.Node) -> str:
    """``topk/sort/max(...)[0]`` / ``.values`` or ``[1]`` / ``.indices``."""
    src, fn = cx.host_pieces[n.args[0].name]
    if n.args[1] not in _FIELDS:
        raise unsupported(f"a part of {fn.name}'s result other than values ([0]) or indices ([1])", n.format_node())
    fn = dataclasses.replace(fn, indices=_FIELDS[n.args[1]])
    return add_host(cx, fn, [src], cx.sample_shape(n), cx.module_of(n))


@op("getattr", opcodes=FUNCTION, early=True)
def attribute(cx: Converter, n: fx.Node) -> str | None:
    """``topk(...).values`` / ``.indices``; any other attribute as before (a size: skipped)."""
    if isinstance(n.args[0], fx.Node) and n.args[0].name in cx.host_pieces:
        return host_piece(cx, n)
    return cx.refuse(n)


@op("zeros_like")
def zeros_like(cx: Converter, n: fx.Node) -> None:
    """Only a scatter's base (``zeros_like(s).scatter(dim, idx, 1)``): it reads only s's shape."""
    if not all(u.op in ("call_function", "call_method") and op_name(u) in ("scatter", "scatter_") for u in n.users):
        return cx.refuse(n)
    return None


@op("scatter", "scatter_", early=True)
def scatter(cx: Converter, n: fx.Node) -> str | None:
    """``zeros_like(s).scatter(dim, idx, value)``: a keep mask from indices."""
    where = n.format_node()
    base = n.args[0]
    value = n.kwargs.get("value", n.args[3] if len(n.args) > 3 else None)
    if not (isinstance(base, fx.Node) and op_name(base) == "zeros_like" and isinstance(value, (int, float))):
        raise unsupported("scatter other than zeros_like(x).scatter(dim, index, constant)", where)
    idx = n.args[2] if len(n.args) > 2 else n.kwargs.get("index")
    axis = cx.sample_axis(n, _dim(n, 1, None), where)
    return add_host(cx, ScatterOnes(axis=axis, value=float(value)), [cx.ir_input(idx, where)], cx.sample_shape(n),
                    cx.module_of(n))


@op("gather", opcodes=("call_function", "call_method"))
def gather(cx: Converter, n: fx.Node) -> str:
    """``torch.gather(x, dim, idx)`` (TP-Spikformer keeps its top-k tokens so)."""
    where = n.format_node()
    idx = n.args[2] if len(n.args) > 2 else n.kwargs.get("index")
    axis = cx.sample_axis(n.args[0], _dim(n, 1, None), where)
    return add_host(cx, Gather(axis=axis), [cx.ir_input(n.args[0], where), cx.ir_input(idx, where)],
                    cx.sample_shape(n), cx.module_of(n))


def product(cx: Converter, n: fx.Node, tensor_args: list[fx.Node]) -> str:
    """a ⊙ b of real values (a gate, a keep mask on tokens): a host product."""
    a, b = (cx.env[x.name] for x in tensor_args)
    return add_host(cx, Product(), [a, b], cx.sample_shape(n), cx.module_of(n))


__all__ = ["FUNCTION", "add_host", "product", "refusal"]
