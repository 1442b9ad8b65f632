"""Remove neurons that cannot matter.

A neuron is removed when it can never fire (no nonzero input synapse from a live neuron or
input, and a constant input too small ever to reach the threshold), or when it is not an
output neuron and none of its outgoing synapses reaches a live neuron. Removal cascades to
a fixed point. Decided on the lowered connection matrices, so it sees conv positions,
padding and masks exactly.
"""

from __future__ import annotations

import numpy as np

from snncompile.ir import IRGraph, Neuron
from snncompile.passes.base import PassStats
from snncompile.sim.neuron_math import NeuronParams


def never_fires(bias: np.ndarray, p: NeuronParams) -> np.ndarray:
    """True where a neuron driven only by constant ``bias`` can never reach threshold.

    The membrane starts at V_r (0 for soft reset) and moves monotonically toward its fixed
    point: V_r + b (LIF, decay_input), V_r + τ·b (LIF without decay_input), unbounded for
    IF with b > 0.
    """
    th = np.asarray(p.v_threshold, dtype=np.float64)
    v0 = p.v_init
    if p.model == "if":
        peak = np.where(bias > 0, np.inf, v0)
    else:
        tau = p.tau if p.model == "lif" else 1.0 / p.decay
        fixed = v0 + bias if p.decay_input else v0 + tau * bias
        peak = np.maximum(v0, fixed)
    return (peak < th) & (v0 < th)


def dead_neurons(graph: IRGraph) -> PassStats:
    from snncompile.lower.populations import OUTPUT, plan_network

    stats = PassStats("dead_neurons")
    plan = plan_network(graph, dense=False)
    out_pop = plan.output_pop
    alive: dict[str, np.ndarray] = {}
    for name, pop in plan.populations.items():
        node = graph.node(name) if name in graph.nx else None
        if pop.kind == "input":
            alive[name] = np.ones(pop.logical_size, dtype=bool)
        elif isinstance(node, Neuron):
            alive[name] = (np.ones(pop.logical_size, dtype=bool) if node.alive is None
                           else node.alive.ravel().copy())
        else:  # OR populations from un-fused max pools keep all their neurons
            alive[name] = np.ones(pop.logical_size, dtype=bool)
    # full-size matrices: plan_network already dropped removed neurons; re-lift to logical
    mats = []
    for proj in plan.projections:
        w = proj.weights.tocsr().copy()
        w.eliminate_zeros()
        src, dst = plan.populations[proj.src], plan.populations.get(proj.dst)
        rows = np.arange(w.shape[0]) if dst is None or dst.index is None else dst.index
        cols = np.arange(w.shape[1]) if src.index is None else src.index
        coo = w.tocoo()
        shape = (w.shape[0] if dst is None else dst.logical_size, src.logical_size)
        mats.append((proj.src, proj.dst, rows[coo.row], cols[coo.col], shape))
    for name, pop in plan.populations.items():  # factors of a product read their sources too
        for o in pop.operands:
            mats.append((o.src, name, np.arange(len(o.idx)) % pop.logical_size, o.idx, ()))
    changed = True
    while changed:
        changed = False
        fan_in = {n: np.zeros(a.size, dtype=np.int64) for n, a in alive.items()}
        fan_out = {n: np.zeros(a.size, dtype=np.int64) for n, a in alive.items()}
        for src, dst, r, c, _ in mats:
            live = alive[src][c] & (alive[dst][r] if dst != OUTPUT else True)
            np.add.at(fan_out[src], c[live], 1)
            if dst != OUTPUT:
                np.add.at(fan_in[dst], r[live], 1)
        for name, pop in plan.populations.items():
            node = graph.node(name) if name in graph.nx else None
            if not isinstance(node, Neuron) or name == out_pop:
                continue  # output neurons stay: the prediction reads all of them
            full_bias = np.zeros(pop.logical_size)
            idx = pop.index if pop.index is not None else np.arange(pop.logical_size)
            full_bias[idx] = pop.bias
            th = node.v_threshold
            params = NeuronParams(model=node.model, v_threshold=np.asarray(th, float).ravel()
                                  if isinstance(th, np.ndarray) else th, v_reset=node.v_reset,
                                  tau=node.tau, decay=node.decay, decay_input=node.decay_input)
            dead = ((fan_in[name] == 0) & never_fires(full_bias, params)) | (fan_out[name] == 0)
            new = alive[name] & ~dead
            if (new != alive[name]).any():
                alive[name] = new
                changed = True
    for name in list(alive):
        node = graph.node(name) if name in graph.nx else None
        if not isinstance(node, Neuron):
            continue
        before = node.kept
        node.alive = alive[name].reshape(node.shape)
        if node.alive.all():
            node.alive = None
        removed = before - node.kept
        if removed:
            stats.neurons_removed += removed
            stats.notes.append(f"{name}: {removed} of {node.size} neurons removed")
    return stats
