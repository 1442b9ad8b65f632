"""Lower convolutional patch-embedding stages (ConvPEP / SPS stem) to synapse + neuron layers.

A stage is Conv2d → [BatchNorm] → spiking neuron [→ MaxPool2d]. After fold_batchnorm the
Conv and BatchNorm are one synapse; any BatchNorm still between them is folded here. Max
pooling of spikes is not a host-side op on a neuromorphic core: it becomes OR over the
window, i.e. a depthwise convolution with weights 1 into memoryless neurons (LIF with
τ = 1, v_reset = 0) that fire when the window sum reaches 1. Max pooling anywhere else in
the network (of spikes) is lowered the same way.
"""

from __future__ import annotations

import numpy as np

from snncompile.ir import BatchNorm, Conv2d, IRGraph, Neuron, Pool2d
from snncompile.ir.dynamics import OrPool
from snncompile.ir.structure import binary_spikes
from snncompile.passes.base import PassStats, sole_user
from snncompile.passes.fold_batchnorm import fold_batchnorm, folding_keeps


def or_layer(graph: IRGraph, name: str) -> None:
    """Replace max-pool node ``name`` (on spikes) by an OR conv + neuron pair in place."""
    pool = graph.node(name)
    (src,) = graph.inputs(name)
    channels = graph.node(src).shape[0]
    kh, kw = pool.kernel
    conv = Conv2d(pool.shape, pool.source, weight=np.ones((channels, 1, kh, kw)), bias=None,
                  stride=pool.stride, padding=pool.padding, groups=channels, impl="conv")
    conv.binary, conv.alpha, conv.weight_bits = True, np.ones(channels), 1
    conv_name = graph.unique_name(f"{name}_or_syn")
    graph.add(conv_name, conv, [src])
    users = graph.users(name)
    neuron = Neuron(pool.shape, pool.source, dynamics=OrPool())
    # keep the pool's name on the neuron: reports and spike comparisons refer to it
    graph.remove(name)
    graph.add(name, neuron, [conv_name])
    for user in users:
        graph.nx.add_edge(name, user)


def stages(graph: IRGraph) -> list[list[str]]:
    """Conv → [BN] → neuron [→ maxpool] chains that start at the input (the stem)."""
    found, cur = [], graph.input_name
    while True:
        conv = sole_user(graph, cur)
        if conv is None or not isinstance(graph.node(conv), Conv2d):
            return found
        chain, nxt = [conv], sole_user(graph, conv)
        if nxt and isinstance(graph.node(nxt), BatchNorm):
            chain.append(nxt)
            nxt = sole_user(graph, nxt)
        if not nxt or not isinstance(graph.node(nxt), Neuron):
            return found
        chain.append(nxt)
        after = sole_user(graph, nxt)
        if after and isinstance(graph.node(after), Pool2d) and graph.node(after).mode == "max":
            chain.append(after)
            nxt = after
        found.append(chain)
        cur = nxt


def fusing_keeps(graph: IRGraph) -> tuple[str, ...]:
    """The live synapses, as folding keeps them: a max-pool of spikes counts its window into
    every OR neuron (:mod:`snncompile.ir.counting`), as its OR synapses do once fused. (Not the
    neurons: the OR neurons are new Neuron nodes.)"""
    return tuple(c for c in folding_keeps(graph) if c == "synapses")


def _spike_max_pool(graph: IRGraph, name: str) -> bool:
    # OR equals max only on 0/1 spikes: a max-pool of a sum of spikes (0, 1, 2) stays a max
    return graph.node(name).mode == "max" and binary_spikes(graph, graph.inputs(name)[0])


def fuse_convpep(graph: IRGraph) -> PassStats:
    stats = PassStats("fuse_convpep")
    stem = stages(graph)
    if any(isinstance(graph.node(n), BatchNorm) for chain in stem for n in chain):
        folded = fold_batchnorm(graph)
        stats.nodes_fused += folded.nodes_fused
        stats.nodes_removed += folded.nodes_removed
    if stem:
        stats.notes.append(f"patch-embedding stem: {len(stem)} stage(s) "
                           + " | ".join("→".join(c) for c in stem))
    for name in graph.of_type(Pool2d):
        pool = graph.node(name)
        if not _spike_max_pool(graph, name):
            continue
        or_layer(graph, name)
        stats.nodes_fused += 1
        stats.notes.append(f"{name}: max-pool of spikes → OR (depthwise k{pool.kernel[0]} ones + "
                           f"threshold-1 neurons)")
    return stats
