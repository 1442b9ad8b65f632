"""Operations refused by name whatever they return: selection by data-dependent values
(SparseSpikformer's top-k tokens) and random numbers drawn inside forward()."""

from __future__ import annotations

from torch import fx

from snncompile.frontend.ops.common import contextual, selection
from snncompile.frontend.ops.context import Converter
from snncompile.frontend.ops.registry import op, op_name

SELECTION = ("argmax", "argmin", "index_select", "masked_select", "nonzero", "take_along_dim", "multinomial",
             "index_put")   # topk, sort, argsort, gather, scatter, masked_fill, where: host
RANDOM = ("rand", "rand_like", "randn", "randn_like", "bernoulli", "poisson", "randint", "normal")


@op(*SELECTION, early=True)
def select(cx: Converter, n: fx.Node) -> None:
    raise selection(f"`{op_name(n)}`", cx.module_of(n))


@op(*RANDOM, early=True)
def random(cx: Converter, n: fx.Node) -> None:
    raise contextual(f"`{op_name(n)}` at `{cx.module_of(n)}` draws random numbers inside forward() "
                     "(e.g. Poisson encoding)", "encode the inputs outside the model and pass the "
                     "spike trains as --input [T, N, ...]; a compiled network is deterministic")


@op("setitem", "__setitem__", early=True)
def setitem(cx: Converter, n: fx.Node) -> None:
    """``out[idx] = value`` writes into a tensor in place (a padding border filled with constants,
    spikingjelly's BNAndPadLayer): the traced graph follows values, not writes."""
    raise contextual(f"item assignment (`tensor[...] = value`) at `{cx.module_of(n)}` writes into a tensor in "
                     "place; snncompile follows values, not writes",
                     "compute the value out of place: F.pad(x, p) (zeros), or for a BatchNorm's own padding "
                     "value (BNAndPadLayer) pad the BatchNorm's input with zeros before the BatchNorm")
