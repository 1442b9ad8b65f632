"""Remove neurons that cannot matter.

A neuron is removed when it can never fire (no stored nonzero synapse from a live neuron
or the input reaches it, and its constant input is too small ever to reach the threshold),
or when it is not an output neuron and none of its outgoing synapses reaches a live neuron.
Removal cascades to a fixed point. Decided on the IR by the structural sweeps of
:mod:`snncompile.ir.structure` (conv positions, padding, masks, residual adds exact),
never by unrolling a layer.
"""

from __future__ import annotations

import numpy as np
import torch

from snncompile.ir import IRGraph, Neuron
from snncompile.ir.dynamics import (
    IF,
    LI,
    LIF,
    PLIF,
    CubaLI,
    CubaLIF,
    Dynamics,
    DynamicsRegistry,
    Integrator,
    LoihiCuba,
    OrPool,
    Threshold,
)
from snncompile.ir.memo import memo, remember
from snncompile.ir.semantics import STEP, neuron_params
from snncompile.ir.structure import is_population, liveness, output_population
from snncompile.passes.base import FACTS, PassStats

# the largest membrane a neuron reaches under a constant drive ``bias`` from V_init ``v0``
PEAK = DynamicsRegistry("dead-neuron bound")


def never_fires(bias: np.ndarray, p: Dynamics) -> np.ndarray:
    """True where a neuron driven only by constant ``bias`` can never reach threshold.

    The membrane starts at V_r (0 for soft reset) and moves monotonically toward its fixed
    point: V_r + b (LIF, decay_input), V_r + τ·b (LIF without decay_input), unbounded for
    IF with b > 0; current-based: the current's fixed point b/q_s in place of b. A
    non-spiking neuron (its output is V) is never "silent" unless V stays 0: b = 0, V_r = 0.
    """
    v0 = p.v_init
    if not p.spiking:
        return PEAK(p)(p, bias, v0)
    th = np.asarray(p.v_threshold, dtype=np.float64)
    if p.current_based:
        bias = bias / p.syn_decay
    peak = PEAK(p)(p, bias, v0)
    return (peak < th) & (v0 < th)


@PEAK.register(LI, Integrator, CubaLI)
def _silent_readout(p: Dynamics, bias: np.ndarray, v0: float) -> np.ndarray:
    """Non-spiking: True where V stays 0."""
    return np.broadcast_to((np.asarray(bias) == 0) & (v0 == 0), np.shape(bias)).copy()


@PEAK.register(IF)
def _peak_if(p: IF, bias: np.ndarray, v0: float) -> np.ndarray:
    return np.where(bias > 0, np.inf, v0)


@PEAK.register(Threshold)
def _peak_threshold(p: Threshold, bias: np.ndarray, v0: float) -> np.ndarray:
    return bias


def _peak_leaky(tau: float, decay_input: bool, bias: np.ndarray, v0: float) -> np.ndarray:
    fixed = v0 + bias if decay_input else v0 + tau * bias
    return np.maximum(v0, fixed)


@PEAK.register(LIF, OrPool)
def _peak_lif(p: LIF | OrPool, bias: np.ndarray, v0: float) -> np.ndarray:
    return _peak_leaky(p.tau, p.decay_input, bias, v0)


@PEAK.register(PLIF, CubaLIF)
def _peak_plif(p: PLIF | CubaLIF, bias: np.ndarray, v0: float) -> np.ndarray:
    return _peak_leaky(1.0 / p.decay, p.decay_input, bias, v0)


@PEAK.register(LoihiCuba)
def _peak_loihi(p: LoihiCuba, bias: np.ndarray, v0: float) -> np.ndarray:
    """Integer decays toward 0: without a positive bias V never rises above 0."""
    return np.where(bias > 0, np.inf, v0)


def never_fire_alone(graph: IRGraph) -> dict[str, np.ndarray]:
    """Per neuron layer (bool, its shape): the neurons that never fire on the input they
    receive when every population outputs 0 (folded biases), see :func:`never_fires`."""
    vals: dict[str, torch.Tensor] = {}
    out: dict[str, np.ndarray] = {}
    with torch.no_grad():  # one sample's values of one frontier, not the graph's
        for name, node in graph.items_releasing(vals):
            srcs = graph.inputs(name)
            if is_population(graph, name):
                if isinstance(node, Neuron):  # kept as bool: one byte per neuron, not eight
                    drive = vals[srcs[0]][0].numpy().ravel()
                    out[name] = never_fires(drive, neuron_params(node)).reshape(node.shape)
                vals[name] = torch.zeros((1, *node.shape), dtype=torch.float64)
            else:
                vals[name] = STEP(node)(node, [vals[s] for s in srcs], 1, "affine")
    return out


def find_dead(graph: IRGraph, quiet: dict[str, np.ndarray] | None = None) -> dict[str, np.ndarray]:
    """One round: for every neuron population, the neurons that are live now but dead."""
    quiet = never_fire_alone(graph) if quiet is None else quiet
    live = liveness(graph, "connect")
    keep_all = output_population(graph)
    dead = {}
    for name in graph.of_type(Neuron):
        node = graph.node(name)
        if name == keep_all:  # output neurons stay: the prediction reads all of them
            continue
        alive = np.ones(node.shape, dtype=bool) if node.alive is None else node.alive
        silent = ~live.drive[name] & quiet[name]
        d = alive & (silent | ~live.reaching[name])
        if d.any():
            dead[name] = d
    return dead


def dead_neurons(graph: IRGraph) -> PassStats:
    stats = PassStats("dead_neurons")
    quiet = never_fire_alone(graph)  # removals change no neuron's constant input
    before = {n: graph.node(n).kept for n in graph.of_type(Neuron)}
    for name in before:  # first, so that the last round sees the graph as the pass leaves it
        node = graph.node(name)
        if node.alive is not None and node.alive.all():
            node.alive = None
    while dead := find_dead(graph, quiet):
        for name, d in dead.items():
            node = graph.node(name)
            alive = np.ones(node.shape, dtype=bool) if node.alive is None else node.alive
            node.alive = alive & ~d   # removes at least one neuron: never all True
    remember(graph, NONE_DEAD, True)  # what the manager's fact check would find again
    for name, kept in before.items():
        node = graph.node(name)
        removed = kept - node.kept
        if removed:
            stats.neurons_removed += removed
            stats.notes.append(f"{name}: {removed} of {node.size} neurons removed")
    return stats


NONE_DEAD = "dead_neurons.none_dead"
FACTS["dead_neurons_removed"] = lambda graph: memo(graph, NONE_DEAD, lambda: not find_dead(graph))
