"""Constant folding of what ``forward`` computes from parameters and buffers alone.

A weight standardised, masked (``torch.where(mask > 0, w, 0)``, ``w * mask_buffer``),
binarised (``sign(w)·α``, also inside a custom ``autograd.Function``), fake-quantised
(``round(w / s)·s``) or reparametrised (weight_norm, ``parametrize``) in ``forward`` is a
subgraph of the traced program whose only sources are ``get_attr`` nodes. Its value is the
same at every call: it is evaluated once, on the model's real tensors (the tracer ran on
meta copies, which hold no values), and handed to the functional op that reads it as a
constant weight.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import fx, nn

from snncompile.frontend.tracer import flat_values

# operations whose value is not a function of their arguments: never folded
_UNSTABLE = ("rand", "randn", "rand_like", "randn_like", "randint", "bernoulli", "dropout", "normal", "uniform_",
             "random_", "multinomial", "empty", "empty_like")


def _name(n: fx.Node) -> str:
    return n.target if isinstance(n.target, str) else getattr(n.target, "__name__", str(n.target))


def constant_nodes(graph: fx.Graph) -> set[str]:
    """Names of the fx nodes whose value depends on parameters and buffers only: every
    ``get_attr``, and every function or method call all of whose tensor operands are such
    nodes (at least one). Calls of modules (neurons have state) are never constant."""
    const: set[str] = set()
    for n in graph.nodes:
        if n.op == "get_attr":
            const.add(n.name)
        elif n.op in ("call_function", "call_method") and _name(n) not in _UNSTABLE:
            deps = [a for a in flat_values((n.args, n.kwargs)) if isinstance(a, fx.Node)]
            if deps and all(a.name in const for a in deps):
                const.add(n.name)
    return const


class Folder:
    """Evaluates constant fx nodes on the real tensors of ``root`` (the traced GraphModule,
    whose attributes are the model's own parameters and buffers), each once."""

    def __init__(self, root: fx.GraphModule, constant: set[str]) -> None:
        self.root = root
        self.constant = constant
        self._values: dict[str, Any] = {}

    def is_constant(self, n: Any) -> bool:
        return isinstance(n, fx.Node) and n.name in self.constant

    def value(self, n: fx.Node) -> Any:
        """The value of constant node ``n`` (a detached tensor, or a Python value)."""
        if n.name not in self._values:
            self._values[n.name] = self._evaluate(n)
        return self._values[n.name]

    def try_value(self, n: fx.Node) -> Any:
        """``value``, or None when the evaluation fails (a ``.cuda()`` on a machine without
        one): the error then surfaces where a handler needs the value."""
        try:
            return self.value(n)
        except Exception:
            return None

    def _evaluate(self, n: fx.Node) -> Any:
        if n.op == "get_attr":
            obj: Any = self.root
            for part in str(n.target).split("."):
                obj = getattr(obj, part)
            return obj.detach() if isinstance(obj, torch.Tensor) else obj
        args = fx.node.map_arg(n.args, self.value)
        kwargs = fx.node.map_arg(n.kwargs, self.value)
        with torch.no_grad():
            out = n.target(*args, **kwargs) if n.op == "call_function" else getattr(args[0], n.target)(*args[1:],
                                                                                                      **kwargs)
        return out.detach() if isinstance(out, torch.Tensor) else out

    def array(self, n: Any) -> np.ndarray | None:
        """A constant operand as a float64 array (None for a missing operand)."""
        if n is None:
            return None
        v = self.value(n) if isinstance(n, fx.Node) else n
        return v.detach().to(torch.float64).cpu().numpy() if isinstance(v, torch.Tensor) else np.asarray(v, float)


def refresh_hooked_weights(model: nn.Module, named: list[tuple[str, nn.Module]] | None = None) -> None:
    """``torch.nn.utils.weight_norm`` recomputes ``weight`` from ``weight_g``/``weight_v`` in a
    forward pre-hook: the stored ``weight`` is that of the last call (stale after loading a
    state dict). Recompute it as the next forward would. ``named``: ``list(model.named_modules())``."""
    for _, m in named or model.named_modules():
        for hook in list(m._forward_pre_hooks.values()) if m._forward_pre_hooks else ():
            if type(hook).__name__ == "WeightNorm" and type(hook).__module__.startswith("torch.nn.utils"):
                with torch.no_grad():
                    hook(m, None)


def _steps(values: np.ndarray) -> list[float]:
    """Candidate quantisation steps of nonzero ``values``: max/(2^(b−1)−1) for symmetric b-bit
    quantisation, and the smallest magnitude."""
    top = float(values.max())
    return [top / (2 ** (b - 1) - 1) for b in range(2, 17)] + [float(values.min())]


def _bits_with(values: np.ndarray, step: float) -> int | None:
    k = values / step
    if not np.allclose(k, np.round(k), rtol=0, atol=1e-3):
        return None
    return int(np.abs(np.round(k)).max()).bit_length() + 1


def integer_bits(weight: np.ndarray) -> int | None:
    """Storage width of a fake-quantised weight: the bits of the signed integers k with
    W = k·s, one step s per layer or per output row (None: not integer on ≤ 16 bits, or
    binary: one magnitude per row is the ``binarize`` pass's business)."""
    rows = [np.abs(r[r != 0]) for r in weight.reshape(weight.shape[0], -1)]
    rows = [r for r in rows if r.size]
    if not rows or all(np.all(r == r[0]) for r in rows):
        return None
    for groups in ([np.concatenate(rows)], rows):
        widths = []
        for r in groups:
            found = next((b for s in _steps(r) if s > 0 and (b := _bits_with(r, s)) is not None), None)
            if found is None or found > 16:
                break
            widths.append(found)
        else:
            return max(widths)
    return None
