"""Pooling and reductions: pooling layers and functions, VotingLayer, mean/sum."""

from __future__ import annotations

from torch import fx, nn

from snncompile.frontend.ops.common import VOTING, adaptive_pool, pair, unsupported
from snncompile.frontend.ops.context import Converter
from snncompile.frontend.ops.registry import layer, op, op_name
from snncompile.frontend.ops.window import time_window, window_needed
from snncompile.ir import Pool2d, Reduce


@layer(nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d)
def adaptive_pool2d(cx: Converter, m: nn.Module, path: str, src: str, out_shape: tuple[int, ...]) -> str:
    mode = "max" if isinstance(m, nn.AdaptiveMaxPool2d) else "avg"
    return cx.add(path, adaptive_pool(out_shape, cx.g.node(src).shape, mode, path), [src])


def _check_ceil(m: nn.Module, in_shape: tuple[int, ...], out_shape: tuple[int, ...], path: str) -> None:
    """``ceil_mode=True`` changes nothing when every window fits (the floor-mode output size,
    e.g. an even size pooled by 2, as MA-SNN's downsampling does); otherwise it is refused."""
    if not m.ceil_mode:
        return
    k, s, p = (pair(v) for v in (m.kernel_size, m.stride or m.kernel_size, m.padding))
    floor = tuple((n + 2 * pi - ki) // si + 1 for n, ki, si, pi in zip(in_shape[-2:], k, s, p))
    if floor != tuple(out_shape[-2:]):
        raise unsupported("pooling with ceil_mode=True over a partial last window", path)


@layer(nn.MaxPool2d)
def max_pool2d(cx: Converter, m: nn.MaxPool2d, path: str, src: str, out_shape: tuple[int, ...]) -> str:
    _check_ceil(m, cx.g.node(src).shape, out_shape, path)
    if pair(m.dilation) != (1, 1) or m.return_indices:
        raise unsupported("MaxPool2d with dilation or return_indices", path)
    node = Pool2d(out_shape, path, mode="max", kernel=pair(m.kernel_size),
                  stride=pair(m.stride or m.kernel_size), padding=pair(m.padding))
    return cx.add(path, node, [src])


@layer(nn.AvgPool2d)
def avg_pool2d(cx: Converter, m: nn.AvgPool2d, path: str, src: str, out_shape: tuple[int, ...]) -> str:
    _check_ceil(m, cx.g.node(src).shape, out_shape, path)
    if m.divisor_override is not None:   # (0 too: torch refuses it, it must not pass as a plain average)
        raise unsupported("AvgPool2d with divisor_override", path)
    node = Pool2d(out_shape, path, mode="avg", kernel=pair(m.kernel_size),
                  stride=pair(m.stride or m.kernel_size), padding=pair(m.padding),
                  count_include_pad=bool(m.count_include_pad))
    return cx.add(path, node, [src])


@layer(nn.AvgPool1d)
def avg_pool1d(cx: Converter, m: nn.AvgPool1d, path: str, src: str, out_shape: tuple[int, ...]) -> str:
    """``AvgPool1d`` over the last axis (SNASNet's ``boost``: a VotingLayer) as a 2-D pooling
    with a window of height 1 on the input seen as [..., 1, L]."""
    (k,), (s,), (p,) = (tuple(v) if isinstance(v, (tuple, list)) else (v,)
                        for v in (m.kernel_size, m.stride or m.kernel_size, m.padding))
    if m.ceil_mode:
        raise unsupported("pooling with ceil_mode=True", path)
    shape = cx.g.node(src).shape
    lead = tuple(shape[:-1]) or (1,)
    flat = cx.reshape(src, (*lead, 1, shape[-1]), path, path)
    pooled = cx.add(path, Pool2d((*lead, 1, out_shape[-1]), path, mode="avg", kernel=(1, int(k)),
                                 stride=(1, int(s)), padding=(0, int(p)),
                                 count_include_pad=bool(m.count_include_pad)), [flat])
    return cx.reshape(pooled, tuple(out_shape), path, path)


@layer(*VOTING)
def voting(cx: Converter, m: nn.Module, path: str, src: str, out_shape: tuple[int, ...]) -> str:
    """spikingjelly's VotingLayer: the mean over groups of ``voting_size`` along the last
    axis (a reshape, then a mean)."""
    shape = cx.g.node(src).shape
    v = int(m.voting_size)
    grouped = cx.reshape(src, (*shape[:-1], shape[-1] // v, v), path, path)
    return cx.add(path, Reduce(out_shape, path, mode="mean", axis=len(shape)), [grouped])


@op("adaptive_avg_pool2d", "avg_pool2d", "max_pool2d", "adaptive_max_pool2d")
def pool_function(cx: Converter, n: fx.Node) -> str:
    """torch.nn.functional's pooling."""
    name, where = op_name(n), n.format_node()
    src = cx.ir_input(n.args[0], where)
    in_shape = cx.g.node(src).shape
    p = dict(zip(("input", "kernel_size", "stride", "padding"), n.args)) | dict(n.kwargs)
    out = cx.sample_shape(n)
    if name.startswith("adaptive"):
        node = adaptive_pool(out, in_shape, "max" if "max" in name else "avg", where)
        return cx.add(name, node, [src])
    k = pair(p["kernel_size"])
    stride = pair(p.get("stride") or k)
    if p.get("ceil_mode") or p.get("dilation", 1) not in (1, (1, 1)) or p.get("divisor_override") is not None:
        raise unsupported(f"{name} with ceil_mode, dilation or divisor_override", where)
    node = Pool2d(out, where, mode="max" if "max" in name else "avg", kernel=k, stride=stride,
                  padding=pair(p.get("padding", 0)),
                  count_include_pad=bool(p.get("count_include_pad", True)))
    return cx.add(name, node, [src])


@op("mean", "sum")
def reduce(cx: Converter, n: fx.Node) -> str:
    """A mean or sum over one per-sample axis; over time (axis 0 of ``[T, B, ...]``) the
    value passes on, marked as reduced over time (the output's sum over steps)."""
    name, where = op_name(n), n.format_node()
    dims = n.args[1] if len(n.args) > 1 else n.kwargs.get("dim")
    if cx.mode == "m" and dims in (0, (0,), [0]):
        if name == "mean" and window_needed(cx, n):
            return time_window(cx, n)
        cx.time_reduced.add(n.name)
        cx.after_mean.add(n.name)   # carried per step: no host operation may read it (trace.py)
        return cx.ir_input(n.args[0], where)
    src = cx.ir_input(n.args[0], where)
    if isinstance(dims, (tuple, list)) and len(dims) == 1:
        dims = dims[0]
    if not isinstance(dims, int):
        raise unsupported(f"{name} over {dims!r}", where)
    axis = cx.sample_axis(n.args[0], dims, where)
    if n.args[0].name in cx.time_reduced:
        cx.time_reduced.add(n.name)
    keepdim = bool(n.kwargs.get("keepdim", n.args[2] if len(n.args) > 2 else False))
    return cx.add(name, Reduce(cx.sample_shape(n), where, mode=name, axis=axis,
                               keepdim=keepdim), [src])
