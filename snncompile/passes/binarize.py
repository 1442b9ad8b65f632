"""Detect binary synapses and store them as 1-bit signs with a scale.

A layer is binary when every nonzero weight of an output channel has the same magnitude
α_c (per layer: one α for all). Its weights are then 1 bit each (+ the mask: sign(0) = 0
stays a missing synapse, not a third value). Where the layer alone drives a spiking
neuron, α is moved into the neuron: weights become ±1 and the threshold, bias and reset
potential (and soft-reset amount) are divided by α (every charge equation is homogeneous
in V, X and V_reset).
"""

from __future__ import annotations

import numpy as np

from snncompile.ir import Conv2d, IRGraph, Linear, Neuron
from snncompile.ir.counting import binary_scales
from snncompile.passes.base import PassStats, sole_user


def _fold_alpha(graph: IRGraph, name: str, syn: Conv2d | Linear, alpha: np.ndarray) -> bool:
    user = sole_user(graph, name)
    neuron = graph.node(user) if user else None
    if not isinstance(neuron, Neuron) or graph.inputs(user) != [name] or np.any(alpha <= 0):
        return False
    if not np.all(np.frexp(alpha)[0] == 0.5):
        # dividing thresholds, bias and reset by α is exact in floating point only for a power
        # of two; otherwise a membrane that hits the threshold exactly would stop firing
        return False
    uniform = bool(np.all(alpha == alpha[0]))
    d = neuron.dynamics
    if not d.spiking:
        return False  # a readout's output is V itself: scaling its input would scale the output
    if d.v_reset not in (None, 0.0) and not uniform:
        return False  # a per-channel reset potential is not representable
    soft_by = d.reset_by if d.v_reset is None else None
    if soft_by not in (None, 0.0) and not uniform:
        return False  # nor a per-channel soft-reset amount
    per_neuron = np.broadcast_to(alpha.reshape((-1,) + (1,) * (len(neuron.shape) - 1)),
                                 neuron.shape) if len(neuron.shape) > 1 else alpha.reshape(neuron.shape)
    if per_neuron.shape != tuple(neuron.shape):
        return False
    syn.weight = np.sign(syn.weight).astype(np.float64)
    if syn.bias is not None:
        syn.bias = syn.bias / alpha
    th = d.v_threshold
    th = (th if np.isscalar(th) else np.asarray(th)) / (alpha[0] if uniform else per_neuron)
    if isinstance(th, np.ndarray) and th.ndim == 0:
        th = float(th)
    changes = {"v_threshold": th}
    if uniform and d.v_reset not in (None, 0.0):
        changes["v_reset"] = d.v_reset / alpha[0]
    if uniform and soft_by not in (None, 0.0):
        changes["reset_by"] = soft_by / float(alpha[0])
    neuron.dynamics = d.with_params(**changes)
    return True


def binarize(graph: IRGraph) -> PassStats:
    stats = PassStats("binarize")
    for name, node in list(graph.items()):
        if not isinstance(node, (Conv2d, Linear)) or node.binary:
            continue
        alpha = binary_scales(node.weight, node.mask)
        if alpha is None:
            continue
        if node.gain is not None:  # still binary per row after the gain: work on the values
            node.weight, node.gain = node.effective_weight, None
            alpha = binary_scales(node.weight, node.mask)
        node.binary, node.alpha, node.weight_bits = True, alpha, 1
        live = int(np.count_nonzero(node.mask & (node.weight != 0)))
        stats.bits_saved += live * 31
        stats.nodes_fused += 1
        per_layer = bool(np.all(alpha == alpha[0]))
        where = "α moved into the neuron" if _fold_alpha(graph, name, node, alpha) else "α kept on weights"
        stats.notes.append(f"{name}: binary ({'per layer' if per_layer else 'per channel'}), {where}")
    return stats
