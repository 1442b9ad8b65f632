"""Functional synapses: ``F.conv1d``, ``F.conv2d``, ``F.linear`` and ``x @ W`` whose weight is a
constant of the model — a parameter used directly, or computed from parameters and buffers
in ``forward`` (standardised, masked, binarised, quantised; folded by ``frontend.fold``)."""

from __future__ import annotations

from typing import Any

import numpy as np
from torch import fx

from snncompile.frontend.fold import integer_bits
from snncompile.frontend.ops.common import pair, unsupported
from snncompile.frontend.ops.context import Converter
from snncompile.frontend.ops.registry import FUNCTION, op
from snncompile.ir import Conv2d, Linear

_CONV_ARGS = ("input", "weight", "bias", "stride", "padding", "dilation", "groups")


def _bound(n: fx.Node, names: tuple[str, ...]) -> dict[str, Any]:
    """The call's arguments by parameter name (positional and keyword)."""
    out = dict(zip(names, n.args))
    out.update(n.kwargs)
    return out


def _constant(cx: Converter, arg: Any, what: str, where: str) -> np.ndarray | None:
    if arg is None:
        return None
    if not cx.folder.is_constant(arg):
        raise unsupported(f"{what} that depends on the input (only weights computed from parameters and "
                          "buffers are constant synapses)", where)
    return cx.folder.array(arg)


def _weights(cx: Converter, n: fx.Node, args: dict[str, Any], path: str) -> tuple[np.ndarray, np.ndarray | None]:
    """The folded weight with an explicit ``--masks`` mask applied, and that mask."""
    where = n.format_node()
    weight = _constant(cx, args.get("weight"), "a weight", where)
    mask = cx.masks.get(path)
    if mask is not None:
        if mask.shape != weight.shape:
            raise unsupported(f"mask of shape {mask.shape} for the weight {weight.shape} computed in forward()",
                              path)
        weight = np.where(mask, weight, 0.0)
    return weight, mask


def _quantised(node: Conv2d | Linear) -> Conv2d | Linear:
    bits = integer_bits(node.weight)
    if bits is not None:   # fake-quantised in forward(): integers times one step
        node.weight_bits = bits
    return node


@op("conv2d", "conv1d", opcodes=FUNCTION)
def conv(cx: Converter, n: fx.Node) -> str:
    """``F.conv2d(x, W, b, stride, padding, dilation, groups)`` (conv1d as a 1 × k conv2d)."""
    path, where = cx.module_of(n), n.format_node()
    args = _bound(n, _CONV_ARGS)
    src = cx.ir_input(args["input"], where)
    weight, mask = _weights(cx, n, args, path)
    bias = _constant(cx, args.get("bias"), "a bias", where)
    one_d = n.target.__name__ == "conv1d"
    padding = args.get("padding", 0)
    if isinstance(padding, str):
        if padding != "valid":
            raise unsupported(f"{n.target.__name__} padding {padding!r}", where)
        padding = 0
    stride, dilation = args.get("stride", 1), args.get("dilation", 1)
    if one_d:
        c, length = cx.g.node(src).shape
        out = cx.sample_shape(n)
        flat = cx.reshape(src, (c, 1, length), where, f"{path}_as2d")
        node = Conv2d((out[0], 1, out[1]), path, weight=weight[:, :, None, :], bias=bias,
                      stride=(1, pair(stride)[0]), padding=(0, pair(padding)[0]), dilation=(1, pair(dilation)[0]),
                      groups=int(args.get("groups", 1)), mask=None if mask is None else mask[:, :, None, :])
        return cx.reshape(cx.synapse(path, _quantised(node), [flat], n), out, where, f"{path}_as1d")
    node = Conv2d(cx.sample_shape(n), path, weight=weight, bias=bias, stride=pair(stride), padding=pair(padding),
                  dilation=pair(dilation), groups=int(args.get("groups", 1)), mask=mask)
    return cx.synapse(path, _quantised(node), [src], n)


@op("linear", opcodes=FUNCTION)
def linear(cx: Converter, n: fx.Node) -> str:
    """``F.linear(x, W, b)``: y = x·Wᵀ + b over the last axis."""
    path, where = cx.module_of(n), n.format_node()
    args = _bound(n, ("input", "weight", "bias"))
    src = cx.ir_input(args["input"], where)
    weight, mask = _weights(cx, n, args, path)
    bias = _constant(cx, args.get("bias"), "a bias", where)
    node = Linear(cx.sample_shape(n), path, weight=weight, bias=bias, mask=mask)
    return cx.synapse(path, _quantised(node), [src], n)


def constant_matmul(cx: Converter, n: fx.Node) -> str:
    """``x @ W`` with W a constant matrix: a Linear with weight Wᵀ."""
    path, where = cx.module_of(n), n.format_node()
    x, w = n.args[0], n.args[1]
    if cx.folder.is_constant(x) or not cx.folder.is_constant(w):
        raise unsupported("matmul of a constant by a tensor (write x @ W, or use nn.Linear)", where)
    value = cx.folder.array(w)
    if value.ndim != 2:
        raise unsupported(f"matmul with a constant operand of rank {value.ndim} (a matrix is supported)", where)
    weight, mask = value.T.copy(), cx.masks.get(path)
    if mask is not None:
        weight = np.where(mask, weight, 0.0)
    node = Linear(cx.sample_shape(n), path, weight=weight, mask=mask)
    return cx.synapse(path, _quantised(node), [cx.ir_input(x, where)], n)
