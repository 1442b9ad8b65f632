"""Lower an IR graph to populations (input, neurons) joined by sparse affine projections.

Every chain of linear nodes between two populations (conv, linear, batch norm, average
pooling, reshape, residual add) collapses into one sparse matrix per source population
plus a bias on the target. Max pooling of spikes becomes an OR population: a window-sum
projection into memoryless neurons that fire on any input spike. This is the form a
Loihi-class chip runs, and what the Lava backend emits.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp

from snncompile.errors import EXIT_UNSUPPORTED, SnnCompileError
from snncompile.ir import (
    Add,
    BatchNorm,
    Conv2d,
    Input,
    IRGraph,
    Linear,
    Neuron,
    Output,
    Pool2d,
    Reshape,
)
from snncompile.lower.matrices import conv2d_matrix, pool2d_matrix
from snncompile.sim.neuron_math import NeuronParams

# A max-pool of spikes is OR over the window: memoryless (tau=1 LIF: H = X), fires on ≥1.
OR_PARAMS = NeuronParams(model="lif", v_threshold=1.0, v_reset=0.0, tau=1.0, decay_input=True)


@dataclass
class Population:
    name: str
    size: int
    kind: str                         # "input" | "neuron" | "or"
    shape: tuple[int, ...]
    params: NeuronParams | None = None
    bias: np.ndarray | None = None    # constant input per step (folded biases)
    depth: int = 0                    # synapse hops from the input (Lava latency)


@dataclass
class Projection:
    src: str
    dst: str                          # a population, or OUTPUT
    weights: sp.csr_matrix            # (dst size, src size)
    layers: list[str] = field(default_factory=list)  # IR synaptic nodes folded in
    delay: int = 0                    # extra steps beyond the one every synapse adds

    @property
    def nnz(self) -> int:
        return int(self.weights.nnz)


OUTPUT = "__output__"


@dataclass
class NetworkPlan:
    populations: dict[str, Population]
    projections: list[Projection]
    output_kind: str                  # "spikes" (a population) or "values" (affine readout)
    output_pop: str | None = None
    output_bias: np.ndarray | None = None
    output_shape: tuple[int, ...] = ()
    output_depth: int = 0             # step offset at which output step 0 is read

    @property
    def depth(self) -> int:
        return max([p.depth for p in self.populations.values()] + [self.output_depth])

    def into(self, dst: str) -> list[Projection]:
        return [p for p in self.projections if p.dst == dst]


@dataclass
class _Affine:
    """A value as Σ_p M_p · s_p + bias over source populations p."""

    terms: dict[str, sp.csr_matrix]
    bias: np.ndarray
    layers: list[str]
    identity_of: str | None = None    # the value is exactly population p's output

    def map(self, m: sp.csr_matrix, extra_bias: np.ndarray | None, layer: str | None) -> _Affine:
        terms = {p: (m @ a).tocsr() for p, a in self.terms.items()}
        bias = m @ self.bias
        if extra_bias is not None:
            bias = bias + extra_bias
        return _Affine(terms, bias, self.layers + ([layer] if layer else []))


def _neuron_params(node: Neuron) -> NeuronParams:
    th = node.v_threshold
    th = np.asarray(th, dtype=np.float64).ravel() if isinstance(th, np.ndarray) else float(th)
    return NeuronParams(model=node.model, v_threshold=th, v_reset=node.v_reset, tau=node.tau,
                        decay=node.decay, decay_input=node.decay_input)


def _linear_matrix(node: Linear, in_shape: tuple[int, ...]) -> sp.csr_matrix:
    w = sp.csr_matrix(node.effective_weight)
    lead = int(np.prod(in_shape[:-1])) if len(in_shape) > 1 else 1
    return w if lead == 1 else sp.kron(sp.identity(lead, format="csr"), w, format="csr")


def plan_network(graph: IRGraph) -> NetworkPlan:
    pops: dict[str, Population] = {}
    projs: list[Projection] = []
    vals: dict[str, _Affine] = {}

    def new_population(name: str, value: _Affine, pop: Population) -> _Affine:
        pop.bias = np.asarray(value.bias, dtype=np.float64)
        pop.depth = max(pops[s].depth for s in value.terms) + 1 if value.terms else 1
        for src, m in value.terms.items():
            m = m.tocsr()
            m.eliminate_zeros()
            projs.append(Projection(src, name, m, list(value.layers),
                                    pop.depth - pops[src].depth - 1))
        pops[name] = pop
        eye = sp.identity(pop.size, format="csr")
        return _Affine({name: eye}, np.zeros(pop.size), [], identity_of=name)

    for name, node in graph.items():
        ins = [vals[s] for s in graph.inputs(name)]
        in_shape = graph.node(graph.inputs(name)[0]).shape if ins else ()
        if isinstance(node, Input):
            pops[name] = Population(name, node.size, "input", node.shape, depth=0)
            vals[name] = _Affine({name: sp.identity(node.size, format="csr")},
                                 np.zeros(node.size), [], identity_of=name)
        elif isinstance(node, Conv2d):
            bias = None if node.bias is None else np.repeat(node.bias, node.size // node.shape[0])
            vals[name] = ins[0].map(conv2d_matrix(node, in_shape), bias, name)
        elif isinstance(node, Linear):
            lead = node.size // node.weight.shape[0]
            bias = None if node.bias is None else np.tile(node.bias, lead)
            vals[name] = ins[0].map(_linear_matrix(node, in_shape), bias, name)
        elif isinstance(node, BatchNorm):
            scale, shift = node.scale_shift()
            per = node.size // node.shape[0]
            m = sp.diags(np.repeat(scale, per), format="csr")
            vals[name] = ins[0].map(m, np.repeat(shift, per), None)
        elif isinstance(node, Pool2d):
            m = pool2d_matrix(node, in_shape)
            if node.mode == "avg":
                vals[name] = ins[0].map(m, None, None)
                continue
            src = ins[0].identity_of
            if src is None or pops[src].kind == "input":
                raise SnnCompileError(
                    f"max pooling at `{node.source}` reads values that are not spikes",
                    "a neuromorphic core can max-pool only spikes (as OR); move the pooling "
                    "after the spiking neuron, or use AvgPool2d", EXIT_UNSUPPORTED)
            value = _Affine({src: m}, np.zeros(node.size), [])
            vals[name] = new_population(name, value, Population(name, node.size, "or", node.shape,
                                                                params=OR_PARAMS))
        elif isinstance(node, Reshape):
            vals[name] = ins[0]
        elif isinstance(node, Add):
            a, b = ins
            terms = dict(a.terms)
            for p, m in b.terms.items():
                terms[p] = (terms[p] + m).tocsr() if p in terms else m
            vals[name] = _Affine(terms, a.bias + b.bias, a.layers + b.layers)
        elif isinstance(node, Neuron):
            pop = Population(name, node.size, "neuron", node.shape, params=_neuron_params(node))
            if ins[0].identity_of is not None:
                raise SnnCompileError(f"neuron `{node.source}` reads another population directly",
                                      "put a synaptic layer (Linear/Conv2d) between neuron layers",
                                      EXIT_UNSUPPORTED)
            vals[name] = new_population(name, ins[0], pop)
        elif isinstance(node, Output):
            value = ins[0]
            if value.identity_of is not None and pops[value.identity_of].kind != "input":
                pop = pops[value.identity_of]
                return NetworkPlan(pops, projs, "spikes", output_pop=pop.name,
                                   output_shape=node.shape, output_depth=pop.depth)
            depth = max(pops[s].depth for s in value.terms) + 1
            for src, m in value.terms.items():
                m = m.tocsr()
                m.eliminate_zeros()
                projs.append(Projection(src, OUTPUT, m, list(value.layers),
                                        depth - pops[src].depth - 1))
            return NetworkPlan(pops, projs, "values", output_bias=np.asarray(value.bias),
                               output_shape=node.shape, output_depth=depth)
        else:  # pragma: no cover
            raise TypeError(node.op)
    raise ValueError("graph has no output node")
