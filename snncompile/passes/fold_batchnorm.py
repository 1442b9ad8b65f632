"""Fold inference-mode BatchNorm into the synapse before it.

Conv2d/Linear → BatchNorm becomes one synapse with bias: W' = W·s[c], b' = b·s[c] + t[c]
with s = γ/√(σ²+ε), t = β − μ·s. W' is kept as W with the node's ``gain`` s (W is not
copied); a zero s[c] is written into W, because it removes that channel's synapses. A binary layer (±α per output channel) stays binary:
its per-channel scale becomes α·|s|. A BatchNorm with no synapse before it is kept.
"""

from __future__ import annotations

import numpy as np

from snncompile.ir import BatchNorm, Conv2d, IRGraph, Linear, Transpose
from snncompile.passes.base import PassStats, bypass, sole_user


def _scale_rows(syn: Conv2d | Linear, scale: np.ndarray) -> None:
    """Multiply output row o of ``syn`` by scale[o]: kept as the node's gain, so the weights
    are not copied (a paper-size model is not held twice), unless a row becomes zero, which
    changes which synapses carry weight: then the product is written into the weights."""
    gain = np.asarray(scale, dtype=np.float64) if syn.gain is None else syn.gain * scale
    if np.all(gain != 0):
        syn.gain = gain
    else:
        syn.weight = np.where(syn.mask, syn.weight, 0.0) * gain.reshape((-1,) + (1,) * (syn.weight.ndim - 1))
        syn.gain = None


def _swap_last(node) -> bool:
    p = getattr(node, "perm", ())
    return isinstance(node, Transpose) and len(p) >= 2 and p[-2:] == (len(p) - 1, len(p) - 2) \
        and tuple(p[:-2]) == tuple(range(len(p) - 2))


def _fold_transposed(graph: IRGraph, name: str, stats: PassStats) -> bool:
    """Linear → transpose → BatchNorm1d → transpose back (Spikformer's token form)."""
    (t1,) = graph.inputs(name)
    t2 = sole_user(graph, name)
    if not (_swap_last(graph.node(t1)) and t2 and _swap_last(graph.node(t2))):
        return False
    (src,) = graph.inputs(t1)
    syn = graph.node(src)
    if not isinstance(syn, Linear) or sole_user(graph, src) != t1 or sole_user(graph, t1) != name:
        return False
    scale, shift = graph.node(name).scale_shift()
    _scale_rows(syn, scale)
    bias = np.zeros(syn.weight.shape[0]) if syn.bias is None else syn.bias
    syn.bias = bias * scale + shift
    if syn.binary and syn.alpha is not None:
        syn.alpha = syn.alpha * np.abs(scale)
    for n in (t1, name, t2):
        bypass(graph, n)
    stats.nodes_fused += 1
    stats.nodes_removed += 3
    return True


def folding_keeps(graph: IRGraph) -> tuple[str, ...]:
    """The counts folding keeps: every count when no BatchNorm scale is zero (a nonzero
    scale is a gain, no synapse appears or goes); only the neurons otherwise (a zero scale
    is written into the weights, and the synapses it cut become stored zeros)."""
    if all(np.all(graph.node(n).scale_shift()[0] != 0) for n in graph.of_type(BatchNorm)):
        return ("synapses", "neurons")
    return ("neurons",)


def fold_batchnorm(graph: IRGraph) -> PassStats:
    stats = PassStats("fold_batchnorm")
    for name in graph.of_type(BatchNorm):
        if _fold_transposed(graph, name, stats):
            continue
        (src,) = graph.inputs(name)
        syn = graph.node(src)
        if not isinstance(syn, (Conv2d, Linear)) or sole_user(graph, src) != name:
            stats.notes.append(f"{name}: kept (no synapse of its own before it)")
            continue
        bn = graph.node(name)
        scale, shift = bn.scale_shift()
        if isinstance(syn, Linear) and len(syn.shape) > 1:
            stats.notes.append(f"{name}: kept (BatchNorm over a token axis)")
            continue
        _scale_rows(syn, scale)
        bias = np.zeros(syn.weight.shape[0]) if syn.bias is None else syn.bias
        syn.bias = bias * scale + shift
        if syn.binary and syn.alpha is not None:
            syn.alpha = syn.alpha * np.abs(scale)
        bypass(graph, name)
        stats.nodes_fused += 1
        stats.nodes_removed += 1
    return stats
