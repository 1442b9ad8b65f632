"""Spiking attention's products: Q·Kᵀ and (Q·Kᵀ)·V of spikes (SSA: MatMul), spike ⊙ spike
(SDSA's Hadamard product: MatMul in ``hadamard`` mode)."""

from __future__ import annotations

from torch import fx

from snncompile.frontend.ops.common import unsupported
from snncompile.frontend.ops.context import Converter
from snncompile.frontend.ops.functional import constant_matmul
from snncompile.frontend.ops.registry import op
from snncompile.ir import MatMul


@op("matmul", "__matmul__")
def matmul(cx: Converter, n: fx.Node) -> str:
    where, tensor_args = n.format_node(), cx.tensor_args(n)
    if len(tensor_args) == 1 and len(n.args) == 2 and cx.folder.is_constant(n.args[1]):
        return constant_matmul(cx, n)   # x @ W: a Linear
    if len(tensor_args) != 2:
        raise unsupported("matmul with a constant operand (x @ W with W a matrix is supported)", where)
    a, b = (cx.env[x.name] for x in tensor_args)
    return cx.add("matmul", MatMul(cx.sample_shape(n), where), [a, b])


def hadamard(cx: Converter, n: fx.Node, tensor_args: list[fx.Node], where: str) -> str:
    """The elementwise product of two spike populations; a factor that is a 0/1 function of
    spikes (``1 − s``) is relayed through OR neurons first (``Converter.operand``)."""
    a, b = (cx.operand(cx.env[x.name], where, cx.module_of(n)) for x in tensor_args)
    return cx.add("hadamard", MatMul(cx.sample_shape(n), where, mode="hadamard"), [a, b])
