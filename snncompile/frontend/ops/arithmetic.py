"""Elementwise arithmetic: residual sums and differences (SEW ADD), scalar affine maps
(``1 - s``: SEW IAND's complement), scaling, division by a constant, and products (a 0/1
keep-mask buffer; spike ⊙ spike is attention's, in ``attention``)."""

from __future__ import annotations

import numpy as np
import torch
from torch import fx

from snncompile.frontend.ops.attention import hadamard
from snncompile.frontend.ops.common import unsupported
from snncompile.frontend.ops.context import Converter
from snncompile.frontend.ops.host import product
from snncompile.frontend.ops.registry import op, op_name
from snncompile.ir import Add, Mask, Scale

_SUBTRACT = ("sub", "__sub__", "isub")


def _scalars(n: fx.Node) -> list[int | float]:
    return [a for a in n.args if isinstance(a, (int, float)) and not isinstance(a, bool)]


@op("add", "__add__", "iadd", "sub", "__sub__", "isub", "rsub")
def add(cx: Converter, n: fx.Node) -> str:
    """x + y, x − y (a residual: SEW ADD), or x ± c, c − x (an affine Scale)."""
    name, where, tensor_args = op_name(n), n.format_node(), cx.tensor_args(n)
    if len(tensor_args) == 1 and n.args[0] is tensor_args[0] or len(tensor_args) == 1 and len(n.args) == 2:
        return _affine_scalar(cx, n, name, tensor_args[0], where)
    if len(tensor_args) != 2 or n.kwargs:
        raise unsupported("addition with a constant tensor or scaled operand", where)
    a, b = (cx.env[x.name] for x in tensor_args)
    if name in _SUBTRACT:
        b = cx.add("neg", Scale(cx.g.node(b).shape, where, factor=-1.0), [b])
    shape = cx.sample_shape(n)
    if cx.g.node(a).shape != cx.g.node(b).shape:
        raise unsupported("broadcasting addition", where)
    return cx.add("add", Add(shape, where), [a, b])


def _affine_scalar(cx: Converter, n: fx.Node, name: str, arg: fx.Node, where: str) -> str:
    """x + c, x − c, c − x (``1 - spike``: SEW-ResNet's IAND) as y = a·x + b."""
    scalars = _scalars(n)
    if len(scalars) != 1 or n.kwargs:
        raise unsupported("addition of a constant tensor", where)
    c = float(scalars[0])
    sub = name in _SUBTRACT
    if name == "rsub" or (sub and n.args[0] is not arg):
        factor, offset = -1.0, c         # c − x
    else:
        factor, offset = 1.0, -c if sub else c
    src = cx.env[arg.name]
    return cx.add("affine", Scale(cx.sample_shape(n), where, factor=factor, offset=offset), [src])


@op("mul", "__mul__", "mul_", "imul")
def mul(cx: Converter, n: fx.Node) -> str:
    """x·c (Scale), spike ⊙ spike (attention's Hadamard product), or x·mask with a 0/1
    buffer (a static keep-mask)."""
    where, tensor_args = n.format_node(), cx.tensor_args(n)
    consts = [a for a in n.args if isinstance(a, fx.Node) and a.name in cx.consts]
    if len(consts) == 0 and len(tensor_args) == 1:
        scalars = _scalars(n)
        if len(scalars) != 1:
            raise unsupported("multiplication of two tensors (only spike matmul is supported)", where)
        return cx.add("scale", Scale(cx.sample_shape(n), where, factor=float(scalars[0])),
                      [cx.env[tensor_args[0].name]])
    if len(consts) == 0 and len(tensor_args) == 2:
        if any(cx.from_host(cx.env[a.name]) for a in tensor_args):
            return product(cx, n, tensor_args)   # a factor computed on the host (a gate, a keep mask)
        return hadamard(cx, n, tensor_args, where)   # spike ⊙ spike (SDSA)
    if len(tensor_args) != 1 or len(consts) != 1:
        raise unsupported("multiplication other than by a static 0/1 keep-mask buffer "
                          "or a constant scalar", where)
    return _keep_mask(cx, n, tensor_args[0], consts[0], where)


def _keep_mask(cx: Converter, n: fx.Node, arg: fx.Node, const: fx.Node, where: str) -> str:
    value = cx.consts[const.name].detach().to(torch.float64).cpu().numpy()
    if not np.isin(value, (0.0, 1.0)).all():
        raise unsupported("multiplication by a buffer that is not a 0/1 mask", where)
    full = cx.rec.shapes[n.name]
    lead = len(full) - len(cx.sample_shape(n))
    keep = np.broadcast_to(value, full)[(0,) * lead] != 0
    src = cx.env[arg.name]
    cx.consts_used.add(str(const.target))
    return cx.add(str(const.target).replace(".", "_"),
                  Mask(tuple(keep.shape), str(const.target), keep=keep.copy()), [src])


@op("truediv", "div", "__truediv__", "itruediv")
def divide(cx: Converter, n: fx.Node) -> str | None:
    """x / c as a Scale by 1/c."""
    where, tensor_args, scalars = n.format_node(), cx.tensor_args(n), _scalars(n)
    if len(tensor_args) != 1 or len(scalars) != 1:
        return cx.refuse(n)
    f = float(scalars[0])
    if n.args[0] is not tensor_args[0]:
        raise unsupported("division of a constant by a tensor", where)
    src = cx.env[tensor_args[0].name]
    return cx.add("scale", Scale(cx.sample_shape(n), where, factor=1.0 / f), [src])
