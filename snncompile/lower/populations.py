"""Lower an IR graph to populations (input, neurons) joined by sparse affine projections.

Every chain of linear nodes between two populations (conv, linear, batch norm, average
pooling, reshape, residual add) collapses into one sparse matrix per source population
plus a bias on the target. Max pooling of spikes becomes an OR population: a window-sum
projection into memoryless neurons that fire on any input spike. This is the form a
Loihi-class chip runs, and what the Lava backend emits.
"""

from __future__ import annotations

import math
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
    Mask,
    MatMul,
    Neuron,
    Output,
    Pool2d,
    Reduce,
    Reshape,
    Scale,
    Transpose,
)
from snncompile.lower.matrices import conv2d_matrix, linear_matrix, pool2d_matrix
from snncompile.sim.neuron_math import NeuronParams

# A max-pool of spikes is OR over the window: memoryless (tau=1 LIF: H = X), fires on ≥1.
OR_PARAMS = NeuronParams(model="lif", v_threshold=1.0, v_reset=0.0, tau=1.0, decay_input=True)


@dataclass
class Operand:
    """One factor of a dynamic product: population ``src`` gathered by ``idx`` into ``shape``."""

    src: str
    idx: np.ndarray                   # logical indices into src, one per operand element
    shape: tuple[int, ...]
    delay: int = 0                    # steps to hold src's values so both factors align
    scale: float = 1.0                # constant factor (e.g. attention scale applied before ·V)


@dataclass
class Population:
    name: str
    size: int
    kind: str                         # "input" | "neuron" | "or" | "matmul" (spike·spike product)
    shape: tuple[int, ...]
    params: NeuronParams | None = None
    bias: np.ndarray | None = None    # constant input per step (folded biases)
    depth: int = 0                    # synapse hops from the input (Lava latency)
    index: np.ndarray | None = None   # kept logical neurons (flat), None = all
    operands: list[Operand] = field(default_factory=list)  # matmul: the two factors
    product: str = "matmul"           # "matmul" | "hadamard" for kind "matmul"
    scale: float = 1.0                # fixed point: membrane units per float unit
    qparams: object | None = None     # fixed point: IntNeuronParams
    qbias: np.ndarray | None = None   # fixed point: integer bias per neuron

    @property
    def graded(self) -> bool:
        """Sends real values (input, products) rather than spikes."""
        return self.kind in ("input", "matmul")

    @property
    def logical_size(self) -> int:
        return int(np.prod(self.shape))

    def expand(self, values: np.ndarray) -> np.ndarray:
        """[..., size] of kept neurons → [..., logical_size] with zeros for removed ones."""
        if self.index is None:
            return values
        full = np.zeros((*values.shape[:-1], self.logical_size), dtype=values.dtype)
        full[..., self.index] = values
        return full


@dataclass
class Projection:
    src: str
    dst: str                          # a population, or OUTPUT
    weights: sp.csr_matrix            # (dst size, src size)
    layers: list[str] = field(default_factory=list)  # IR synaptic nodes folded in
    delay: int = 0                    # extra steps beyond the one every synapse adds
    impl: str = "sparse"              # "sparse" (CSR), "dense" or "conv" (shared kernel)
    conv: Conv2d | None = None        # the convolution, when this projection is exactly one
    conv_in_shape: tuple[int, ...] = ()

    structural: int | None = None     # synapses incl. zero-valued ones (dense emission)
    weight_bits: int = 32             # 1 when the projection is a single binary layer
    weight_exp: int = 0               # fixed point: weights are integer mantissas × 2^exp

    @property
    def nnz(self) -> int:
        """Synapses this projection holds (zero-valued ones too, when emitted dense)."""
        return int(self.weights.nnz) if self.structural is None else self.structural


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
    fixed_point: bool = False
    input_scale: float = 1.0
    output_scale: float = 1.0
    output_qbias: np.ndarray | None = None

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
    conv: tuple[Conv2d, tuple[int, ...]] | None = None  # value = one conv of one population

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


def plan_network(graph: IRGraph, dense: bool | None = None) -> NetworkPlan:
    """Lower ``graph``. ``dense``: emit every projection as a dense matrix (zeros kept),
    as an exporter unaware of pruning does; default: dense unless prune_synapses ran."""
    if dense is None:
        dense = not graph.meta.get("pruned", False)
    pops: dict[str, Population] = {}
    projs: list[Projection] = []
    vals: dict[str, _Affine] = {}

    def new_population(name: str, value: _Affine, pop: Population) -> _Affine:
        pop.bias = np.asarray(value.bias, dtype=np.float64)
        pop.depth = max(pops[s].depth for s in value.terms) + 1 if value.terms else 1
        for src, m in value.terms.items():
            proj = Projection(src, name, m.tocsr(), list(value.layers), pop.depth - pops[src].depth - 1)
            if value.conv is not None and len(value.terms) == 1:
                proj.conv, proj.conv_in_shape = value.conv
            proj.weight_bits = _bits(graph, value.layers)
            projs.append(proj)
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
            if ins[0].identity_of is not None:
                vals[name].conv = (node, tuple(in_shape))
        elif isinstance(node, Linear):
            lead = node.size // node.weight.shape[0]
            bias = None if node.bias is None else np.tile(node.bias, lead)
            vals[name] = ins[0].map(linear_matrix(node, in_shape), bias, name)
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
        elif isinstance(node, Transpose):
            idx = np.arange(int(np.prod(in_shape))).reshape(in_shape).transpose(node.perm).ravel()
            perm = sp.csr_matrix((np.ones(len(idx)), (np.arange(len(idx)), idx)), shape=(len(idx),) * 2)
            vals[name] = ins[0].map(perm, None, None)
        elif isinstance(node, Scale):
            vals[name] = ins[0].map(sp.identity(node.size, format="csr") * node.factor, None, None)
        elif isinstance(node, Reduce):
            idx = np.arange(int(np.prod(in_shape))).reshape(in_shape)
            kept = node.shape if node.keepdim else tuple(np.expand_dims(np.zeros(node.shape), node.axis).shape)
            out_idx = np.broadcast_to(np.arange(node.size).reshape(kept), in_shape)
            w = 1.0 / in_shape[node.axis] if node.mode == "mean" else 1.0
            m = sp.csr_matrix((np.full(idx.size, w), (out_idx.ravel(), idx.ravel())),
                              shape=(node.size, idx.size))
            vals[name] = ins[0].map(m, None, None)
        elif isinstance(node, MatMul):
            operands = []
            for src_name, value in zip(graph.inputs(name), ins):
                operand = _operand(value, graph.node(src_name).shape, pops, node.source)
                if node.mode == "hadamard":  # broadcast each factor to the output shape
                    pos = np.broadcast_to(np.arange(len(operand.idx)).reshape(operand.shape), node.shape)
                    operand = Operand(operand.src, operand.idx[pos.ravel()], tuple(node.shape),
                                      scale=operand.scale)
                operands.append(operand)
            pop = Population(name, node.size, "matmul", node.shape, operands=operands,
                             bias=np.zeros(node.size), params=None, product=node.mode)
            pop.depth = max(pops[o.src].depth for o in operands) + 1
            for o in operands:
                o.delay = pop.depth - pops[o.src].depth - 1
            pops[name] = pop
            vals[name] = _Affine({name: sp.identity(node.size, format="csr")}, np.zeros(node.size), [],
                                 identity_of=name)
        elif isinstance(node, Mask):
            vals[name] = ins[0].map(sp.diags(node.keep.ravel().astype(np.float64), format="csr"), None, None)
        elif isinstance(node, Add):
            a, b = ins
            terms = dict(a.terms)
            for p, m in b.terms.items():
                terms[p] = (terms[p] + m).tocsr() if p in terms else m
            vals[name] = _Affine(terms, a.bias + b.bias, a.layers + b.layers)
        elif isinstance(node, Neuron):
            kind = "or" if node.role == "or" else "neuron"
            pop = Population(name, node.size, kind, node.shape, params=_neuron_params(node))
            if ins[0].identity_of is not None:
                raise SnnCompileError(f"neuron `{node.source}` reads another population directly",
                                      "put a synaptic layer (Linear/Conv2d) between neuron layers",
                                      EXIT_UNSUPPORTED)
            vals[name] = new_population(name, ins[0], pop)
        elif isinstance(node, Output):
            value = ins[0]
            if value.identity_of is not None and pops[value.identity_of].kind != "input":
                pop = pops[value.identity_of]
                plan = NetworkPlan(pops, projs, "spikes", output_pop=pop.name,
                                   output_shape=node.shape, output_depth=pop.depth)
            else:
                depth = max(pops[s].depth for s in value.terms) + 1
                for src, m in value.terms.items():
                    projs.append(Projection(src, OUTPUT, m.tocsr(), list(value.layers),
                                            depth - pops[src].depth - 1,
                                            weight_bits=_bits(graph, value.layers)))
                plan = NetworkPlan(pops, projs, "values", output_bias=np.asarray(value.bias),
                                   output_shape=node.shape, output_depth=depth)
            plan = _finish(plan, graph, dense)
            if dense:  # count zero-valued synapses too: they are stored and computed
                for proj, pat in zip(plan.projections, plan_network(_structure(graph), dense=False).projections):
                    proj.structural = int(pat.weights.nnz)
            return plan
        else:  # pragma: no cover
            raise TypeError(node.op)
    raise ValueError("graph has no output node")


def _finish(plan: NetworkPlan, graph: IRGraph, dense: bool) -> NetworkPlan:
    """Drop removed neurons (and every synapse touching them); choose implementations."""
    for name, pop in plan.populations.items():
        node = graph.node(name) if name in graph.nx else None
        alive = getattr(node, "alive", None)
        if alive is not None and not alive.all():
            pop.index = np.flatnonzero(alive.ravel())
            pop.size = len(pop.index)
            pop.bias = pop.bias[pop.index]
            th = pop.params.v_threshold
            if isinstance(th, np.ndarray):
                pop.params = NeuronParams(**{**pop.params.__dict__, "v_threshold": th[pop.index]})
    for proj in plan.projections:
        src = plan.populations[proj.src]
        dst = plan.populations.get(proj.dst)
        w = proj.weights
        if dst is not None and dst.index is not None:
            w = w[dst.index]
        if src.index is not None:
            w = w[:, src.index]
        proj.weights = w.tocsr()
        if not dense:
            proj.weights.eliminate_zeros()
        shrunk = src.index is not None or (dst is not None and dst.index is not None)
        # a dense exporter still uses shared kernels for convolutions (as spikingjelly's does)
        wants_conv = proj.conv is not None and (proj.conv.impl == "conv" or (dense and not proj.conv.impl))
        if wants_conv and not shrunk and not proj.delay:
            proj.impl = "conv"
        elif dense:
            proj.impl = "dense"
        else:
            proj.impl = "sparse"
    return plan


def _operand(value: _Affine, shape: tuple[int, ...], pops: dict[str, Population], where: str) -> Operand:
    """A matmul factor must be a population's output, possibly transposed or reshaped."""
    if len(value.terms) == 1 and not value.bias.any():
        (src, m), = value.terms.items()
        m = m.tocsr()
        rows_ok = np.all(np.diff(m.indptr) == 1) and m.nnz and np.all(m.data == m.data[0])
        if rows_ok and (pops[src].kind != "input"):
            return Operand(src, m.indices.copy(), tuple(shape), scale=float(m.data[0]))
    raise SnnCompileError(f"matrix product at `{where}` has a factor that is not a population's "
                          "spikes (or another product), possibly scaled by a constant",
                          "feed matmul directly from spiking neurons (optionally transposed)",
                          EXIT_UNSUPPORTED)


def _bits(graph: IRGraph, layers: list[str]) -> int:
    if len(layers) == 1 and getattr(graph.node(layers[0]), "binary", False):
        return 1
    return 32


def synaptic_memory_bits(proj: Projection) -> int:
    """Storage of a projection as emitted: shared kernel, dense matrix, or CSR entries
    (weight + ⌈log2(fan-in)⌉ index bits each, plus a 32-bit row pointer per row)."""
    if proj.impl == "conv":
        return int(proj.conv.weight.size) * proj.conv.weight_bits
    rows, cols = proj.weights.shape
    if proj.impl == "dense":
        return rows * cols * proj.weight_bits
    return proj.nnz * (proj.weight_bits + max(1, math.ceil(math.log2(max(2, cols))))) + 32 * rows


def _structure(graph: IRGraph) -> IRGraph:
    """A copy whose matrices have a positive entry for every stored synapse (zero or not)."""
    g = graph.copy()
    for _, node in g.items():
        if isinstance(node, (Conv2d, Linear)):
            node.weight = node.mask.astype(np.float64)
            node.bias = None
        elif isinstance(node, BatchNorm):
            c = node.shape[0]
            node.mean, node.var, node.weight, node.bias, node.eps = (np.zeros(c), np.ones(c), np.ones(c),
                                                                     np.zeros(c), 0.0)
    g.meta["pruned"] = True
    return g
