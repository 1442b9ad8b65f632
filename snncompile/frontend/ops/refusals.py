"""Operations refused by name whatever they return: selection by data-dependent values
(SparseSpikformer's top-k tokens) and random numbers drawn inside forward()."""

from __future__ import annotations

from torch import fx

from snncompile.frontend.ops.common import contextual, selection
from snncompile.frontend.ops.context import Converter
from snncompile.frontend.ops.registry import op, op_name

SELECTION = ("topk", "sort", "argsort", "argmax", "argmin", "gather", "index_select", "masked_select",
             "nonzero", "take_along_dim", "multinomial", "masked_fill", "scatter", "index_put")
RANDOM = ("rand", "rand_like", "randn", "randn_like", "bernoulli", "poisson", "randint", "normal")


@op(*SELECTION, early=True)
def select(cx: Converter, n: fx.Node) -> None:
    raise selection(f"`{op_name(n)}`", cx.module_of(n))


@op("where", early=True)
def where(cx: Converter, n: fx.Node) -> None:
    """``torch.where(cond, a, b)`` selects by values; ``where(cond)`` alone is refused by name."""
    if len(n.args) == 3:
        raise selection(f"`{op_name(n)}`", cx.module_of(n))
    return cx.refuse(n)


@op(*RANDOM, early=True)
def random(cx: Converter, n: fx.Node) -> None:
    raise contextual(f"`{op_name(n)}` at `{cx.module_of(n)}` draws random numbers inside forward() "
                     "(e.g. Poisson encoding)", "encode the inputs outside the model and pass the "
                     "spike trains as --input [T, N, ...]; a compiled network is deterministic")
