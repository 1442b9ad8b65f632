"""Structural analysis of the IR: which elements are reached by live neurons, and which
reach live neurons, computed by propagating 0/1 indicators through every node's
non-negative "pattern" map (:mod:`snncompile.ir.semantics`): closed form per layer,
never an unrolled matrix, so it runs on ImageNet-size models in the memory of a
forward pass of one sample.

Populations are the nodes whose outputs are not an affine function of their inputs:
the input, neurons, max-pools of spikes (OR neurons) and spike products (MatMul).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from snncompile.ir.graph import IRGraph
from snncompile.ir.nodes import Add, Input, Mask, MatMul, Neuron, Output, Pool2d, Reshape, Transpose
from snncompile.ir.semantics import STEP


def is_population(graph: IRGraph, name: str) -> bool:
    """True for nodes that become neuron populations (or graded sources) when lowered."""
    node = graph.node(name)
    return isinstance(node, (Input, Neuron, MatMul)) or (isinstance(node, Pool2d) and node.mode == "max")


def spike_valued(graph: IRGraph, name: str) -> bool:
    """True if ``name``'s values are spikes or sums of spikes (known from the graph)."""
    node = graph.node(name)
    if isinstance(node, Neuron):
        return True
    if isinstance(node, (Reshape, Mask, Transpose)) or (isinstance(node, Pool2d) and node.mode == "max"):
        return spike_valued(graph, graph.inputs(name)[0])
    if isinstance(node, Add):
        return all(spike_valued(graph, s) for s in graph.inputs(name))
    return False


def alive_of(graph: IRGraph, name: str) -> np.ndarray:
    """Live neurons of a population (bool, its shape); non-neuron populations are all live."""
    node = graph.node(name)
    alive = getattr(node, "alive", None)
    return np.ones(node.shape, dtype=bool) if alive is None else np.asarray(alive, dtype=bool)


def output_population(graph: IRGraph) -> str | None:
    """The neuron population the output reads directly (through reshapes), if any."""
    name = graph.inputs(graph.output_name)[0]
    while isinstance(graph.node(name), Reshape):
        name = graph.inputs(name)[0]
    return name if is_population(graph, name) and not isinstance(graph.node(name), Input) else None


@dataclass
class Liveness:
    """Per node: ``reached`` — output elements driven by at least one live source neuron
    through a synapse; ``reaching`` — output elements that reach at least one live neuron
    (or the output) through a synapse. For a population, ``drive`` is the number-like
    structural drive at its input (> 0: some live synapse reaches the neuron)."""

    reached: dict[str, np.ndarray]
    reaching: dict[str, np.ndarray]
    drive: dict[str, np.ndarray]


def _pattern(graph: IRGraph, name: str, ins: list[torch.Tensor], mode: str) -> torch.Tensor:
    node = graph.node(name)
    return STEP(node)(node, ins, 1, mode)


def liveness(graph: IRGraph, mode: str = "pattern") -> Liveness:
    """One forward and one adjoint sweep of 0/1 indicators. ``mode``: "pattern" follows
    every stored synapse, "connect" only stored nonzero ones."""
    fwd: dict[str, torch.Tensor] = {}
    drive: dict[str, np.ndarray] = {}
    order = graph.topo()
    with torch.no_grad():
        for name in order:
            node = graph.node(name)
            ins = [fwd[s] for s in graph.inputs(name)]
            if is_population(graph, name):
                if ins:
                    drive[name] = (_pattern(graph, name, ins, mode) if isinstance(node, Pool2d)
                                   else ins[0])[0].numpy().copy()
                fwd[name] = torch.as_tensor(alive_of(graph, name)[None].astype(np.float64))
            else:
                fwd[name] = (_pattern(graph, name, ins, mode) > 0).to(torch.float64)
    back: dict[str, torch.Tensor] = {}

    def add(src: str, g: torch.Tensor) -> None:
        back[src] = back[src] + g if src in back else g

    for name in reversed(order):
        node = graph.node(name)
        srcs = graph.inputs(name)
        if not srcs:
            continue
        if isinstance(node, Output):
            add(srcs[0], torch.ones((1, *graph.node(srcs[0]).shape), dtype=torch.float64))
            continue
        if isinstance(node, MatMul):  # a product reads every element of both factors
            for s in srcs:
                add(s, torch.ones((1, *graph.node(s).shape), dtype=torch.float64))
            continue
        if isinstance(node, Neuron):  # a live neuron consumes its input element
            add(srcs[0], torch.as_tensor(alive_of(graph, name)[None].astype(np.float64)))
            continue
        g = (torch.ones((1, *node.shape), dtype=torch.float64) if isinstance(node, Pool2d) and
             node.mode == "max" else back.get(name))  # OR neurons are never removed
        if g is None or not torch.any(g > 0):
            continue
        xs = [torch.zeros((1, *graph.node(s).shape), dtype=torch.float64, requires_grad=True) for s in srcs]
        with torch.enable_grad():
            y = _pattern(graph, name, xs, mode)
            grads = torch.autograd.grad(y, xs, grad_outputs=(g > 0).to(torch.float64), allow_unused=True)
        for s, gr in zip(srcs, grads):
            if gr is not None:
                add(s, gr.detach())
    reached = {n: fwd[n][0].numpy() > 0 for n in order}
    reaching = {n: (back[n][0].numpy() > 0) if n in back else np.zeros(graph.node(n).shape, dtype=bool)
                for n in order}
    return Liveness(reached, reaching, drive)
