"""Structural analysis of the IR: which elements are reached by live neurons, and which
reach live neurons, computed by propagating 0/1 indicators through every node's
non-negative "pattern" map (:mod:`snncompile.ir.semantics`): closed form per layer,
never an unrolled matrix, so it runs on ImageNet-size models in the memory of a
forward pass of one sample.

Populations are the nodes whose outputs are not an affine function of their inputs:
the input, neurons, max-pools of spikes (OR neurons), spike products (MatMul) and delays
(their output is an earlier step's input). A delay is taken to pass every element on (its
source is needed wherever the delay is), which keeps the sweeps one pass over a graph with
loops.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch

from snncompile.ir.graph import IRGraph
from snncompile.ir.host import Product
from snncompile.ir.memo import memo
from snncompile.ir.nodes import (
    AdaptiveAvgPool2d,
    Add,
    BatchNorm,
    Concat,
    Conv2d,
    Delay,
    Host,
    Input,
    Linear,
    Mask,
    MatMul,
    Neuron,
    Node,
    Output,
    Pool2d,
    Reduce,
    Reshape,
    Scale,
    Slice,
    Transpose,
)
from snncompile.ir.registry import Registry, not_applicable
from snncompile.ir.semantics import STEP


def adjoint(y: torch.Tensor, xs: list[torch.Tensor], g: torch.Tensor,
            allow_unused: bool = False) -> tuple[torch.Tensor | None, ...]:
    """gᵀ·∂y/∂x for every x in ``xs`` (a vector-Jacobian product), as ∂(Σ y·g)/∂x: the same
    values as autograd's ``grad_outputs=g`` (the product's backward is 1·g, exact), without
    autograd's check of a given gradient, which imports torch's symbolic shapes and sympy
    (0.3–1.3 s on a command's first estimate)."""
    return torch.autograd.grad((y * g.reshape(y.shape)).sum(), xs, allow_unused=allow_unused)

# How one node joins input elements to output elements, for nodes inside a linear chain:
# "one-to-one" (each output reads at most one input and each input feeds at most one
# output), "many-to-one" (each input feeds at most one output) or "general".
PATHS = Registry("path structure")
PATHS.register(Input, Output, Reshape, Transpose, Mask, Scale, BatchNorm, Concat)(lambda node: "one-to-one")
PATHS.register(Reduce, Slice)(lambda node: "many-to-one")
PATHS.register(Conv2d, Linear, AdaptiveAvgPool2d)(lambda node: "general")
PATHS.register(Add, MatMul, Neuron, Delay, Host)(not_applicable("path structure (never inside a chain)"))


@PATHS.register(Pool2d)
def _pool_paths(node: Pool2d) -> str:
    disjoint = all(s >= k for s, k in zip(node.stride, node.kernel))
    return "many-to-one" if disjoint else "general"


def unique_paths(nodes: list[Node]) -> bool:
    """True if the chain ``nodes`` joins each (input, output) pair by at most one path, so
    that applying its 0/1 pattern to an indicator counts synapses exactly: any number of
    many-to-one nodes, then at most one general node, then only one-to-one nodes."""
    general = False
    for node in nodes:
        kind = PATHS(node)(node)
        if general and kind != "one-to-one":
            return False
        general = general or kind == "general"
    return True


def is_population(graph: IRGraph, name: str) -> bool:
    """True for nodes that become neuron populations (or graded sources) when lowered."""
    node = graph.node(name)
    return isinstance(node, (Input, Neuron, MatMul, Delay, Host)) or (isinstance(node, Pool2d) and node.mode == "max")


def _all_sources(graph: IRGraph, name: str, step: Callable[[str, Node], bool | list[str]]) -> bool:
    """True if every path back from ``name`` ends where ``step`` says True. ``step`` returns a
    verdict for a node, or the inputs to follow through it. A loop that returns to a node on the
    current path (no neuron on it) is False. Walked with a stack, not recursion: graphs imported
    from NIR can be thousands of nodes deep."""
    on_path: set[str] = set()
    done: set[str] = set()
    stack: list[tuple[str, bool]] = [(name, False)]
    while stack:
        n, leaving = stack.pop()
        if leaving:
            on_path.discard(n)
            done.add(n)
            continue
        if n in on_path:
            return False
        if n in done:
            continue
        verdict = step(n, graph.node(n))
        if isinstance(verdict, bool):
            if not verdict:
                return False
            done.add(n)
            continue
        on_path.add(n)
        stack.append((n, True))
        stack.extend((s, False) for s in reversed(verdict))
    return True


def _passes_through(node: Node) -> bool:
    """The node's values are some of its first input's (host gathers: :func:`_selects`)."""
    return isinstance(node, (Reshape, Mask, Transpose, Slice, Delay)) or (
        isinstance(node, Pool2d) and passes_values(node))


def spike_valued(graph: IRGraph, name: str) -> bool:
    """True if ``name``'s values are spikes or sums of spikes (known from the graph)."""
    def step(n: str, node: Node) -> bool | list[str]:
        if isinstance(node, Neuron):
            return node.emits_spikes   # LI / integrators output their membrane value
        if _passes_through(node):
            return graph.inputs(n)[:1]
        if isinstance(node, (Add, Concat)):
            return list(graph.inputs(n))
        if isinstance(node, MatMul) and node.mode == "hadamard":   # AND of spikes
            return binary_spikes(graph, n)
        if _masked(graph, n, node):   # tokens of spikes times a 0/1 keep mask: spikes of the kept tokens
            return [s for s in graph.inputs(n) if not binary_spikes(graph, s)][:1] or graph.inputs(n)[:1]
        if _selects(node):   # kept tokens gathered from spikes (or sums of them)
            return graph.inputs(n)[:1]
        return False
    return _all_sources(graph, name, step)


def time_invariant(graph: IRGraph, name: str) -> bool:
    """True if ``name``'s values are the same at every step: made from window hosts' outputs
    (a mean over all T steps) through stateless nodes only, so a chip's host computes them once
    per sample (the official SparseSpikformer's predictor on ``x.mean(0)``)."""
    def step(n: str, node: Node) -> bool | list[str]:
        if isinstance(node, Host) and node.fn.window:
            return True
        if isinstance(node, (Neuron, Delay, Input)) or not graph.inputs(n):
            return False   # state, or the input: values of their own at every step
        return list(graph.inputs(n))
    return _all_sources(graph, name, step)


def _masked(graph: IRGraph, name: str, node: Node) -> bool:
    """A host product with a 0/1 factor (a keep mask computed on the host)."""
    return isinstance(node, Host) and isinstance(node.fn, Product) and \
        any(binary_spikes(graph, s) for s in graph.inputs(name))


def _selects(node: Node) -> bool:
    """A host gather: its values are elements of its first input (index_select of kept tokens)."""
    return isinstance(node, Host) and node.fn.selects


def passes_values(node: Pool2d) -> bool:
    """A max-pool, or an average over single elements (1×1 windows: the identity)."""
    return node.mode == "max" or (node.kernel == (1, 1) and node.padding == (0, 0))


def binary_spikes(graph: IRGraph, name: str) -> bool:
    """True if ``name``'s values are 0/1 spikes (not sums of them): what OR can max-pool."""
    def step(n: str, node: Node) -> bool | list[str]:
        if isinstance(node, Neuron):
            return node.emits_spikes
        if _passes_through(node):
            return graph.inputs(n)[:1]
        if isinstance(node, Concat) or (isinstance(node, MatMul) and node.mode == "hadamard"):
            return list(graph.inputs(n))   # concat / AND of spikes
        if isinstance(node, Scale) and (node.factor, node.offset) in ((1.0, 0.0), (-1.0, 1.0)):
            return graph.inputs(n)[:1]     # s or NOT s = 1 − s
        if _masked(graph, n, node):
            return list(graph.inputs(n))   # spikes ⊙ a 0/1 keep mask
        if _selects(node):
            return graph.inputs(n)[:1]     # spikes of the kept tokens, gathered
        return isinstance(node, Host) and node.fn.binary_out()   # a host keep mask
    return _all_sources(graph, name, step)


def every(shape: tuple[int, ...]) -> np.ndarray:
    """An all-true indicator of ``shape`` as a read-only view: no memory per element."""
    return np.broadcast_to(np.True_, tuple(shape))


def _compact(indicator: np.ndarray) -> np.ndarray:
    """``indicator``, or :func:`every` when it is all true (the common case of a dense
    model: the sweeps then hold no per-element memory for it)."""
    return every(indicator.shape) if indicator.all() else indicator


def alive_of(graph: IRGraph, name: str) -> np.ndarray:
    """Live neurons of a population (bool, its shape, read-only); non-neuron populations
    are all live."""
    node = graph.node(name)
    alive = getattr(node, "alive", None)
    return every(node.shape) if alive is None else np.asarray(alive, dtype=bool)


def output_population(graph: IRGraph) -> str | None:
    """The neuron population the output reads directly (through reshapes), if any."""
    name = graph.inputs(graph.output_name)[0]
    while isinstance(graph.node(name), Reshape):
        name = graph.inputs(name)[0]
    return name if is_population(graph, name) and not isinstance(graph.node(name), Input) else None


@dataclass
class Liveness:
    """Per node (bool, the node's shape): ``reached`` — output elements driven by at least
    one live source neuron through a synapse; ``reaching`` — output elements that reach at
    least one live neuron (or the output) through a synapse. For a population, ``drive``:
    True where some live synapse reaches the neuron's input."""

    reached: dict[str, np.ndarray]
    reaching: dict[str, np.ndarray]
    drive: dict[str, np.ndarray]
    # elements reached by several populations through sums (residual streams): how many
    # (uint16; only nodes where some element has more than one). A synapse reading such an
    # element exists once per population, as in the lowered network.
    multiplicity: dict[str, np.ndarray] = field(default_factory=dict)
    # per Conv2d / Linear node of a "pattern" sweep: its live synapses (once per population,
    # once per element), ⟨Pᵀ(reaching), sources⟩, read off the adjoint sweep for free
    synapses: dict[str, tuple[int, int]] = field(default_factory=dict)

    def sources(self, name: str) -> np.ndarray:
        """Per element of ``name``: the number of populations it is reached from (0/1 or more)."""
        m = self.multiplicity.get(name)
        return self.reached[name] if m is None else m


def _pattern(graph: IRGraph, name: str, ins: list[torch.Tensor], mode: str) -> torch.Tensor:
    node = graph.node(name)
    return STEP(node)(node, ins, 1, mode)


def _f32(indicator: np.ndarray) -> torch.Tensor:
    """Sweeps run in float32: non-negative path counts, only ever tested for > 0."""
    return torch.from_numpy(indicator[None].astype(np.float32))


# node fields no sweep reads (report names and emission choices)
_UNSWEPT = frozenset({"source", "impl", "weight_bits"})


def liveness(graph: IRGraph, mode: str = "pattern") -> Liveness:
    """One forward and one adjoint sweep of 0/1 indicators. ``mode``: "pattern" follows
    every stored synapse, "connect" only stored nonzero ones. Indicators are kept as bool
    (one byte per element of a node, none when all true: read-only views, see :func:`every`);
    float copies exist for one node at a time.

    The sweep is remembered per state of the graph (:mod:`snncompile.ir.memo`; a few MB for
    Spikformer-8-768 at 224 px): the pass manager's count and the dead-neuron pass ask for
    the same graph in turn. Where no stored synapse has a zero weight (after prune_synapses)
    the two modes are the same sweep, and "connect" is answered by "pattern"'s (which also
    carries per-layer synapse counts)."""
    if mode == "connect" and not memo(graph, "stores_zeros", lambda: stores_zeros(graph), _UNSWEPT):
        mode = "pattern"
    return memo(graph, f"liveness.{mode}", lambda: _sweep(graph, mode), _UNSWEPT)


def stores_zeros(graph: IRGraph) -> bool:
    """Some Conv2d / Linear node stores a synapse whose weight is zero (``pattern`` and
    ``connect`` differ there)."""
    return any(np.any(node.mask & (node.weight == 0)) for _, node in graph.items()
               if isinstance(node, (Conv2d, Linear)))


def _sweep(graph: IRGraph, mode: str) -> Liveness:
    order = graph.topo()
    fwd, drive, mult = _forward(graph, order, mode)
    back, synapses = _adjoint(graph, order, mode, fwd, mult)
    reaching = {n: back[n] if n in back else np.zeros(graph.node(n).shape, dtype=bool) for n in order}
    return Liveness(fwd, reaching, drive, mult, synapses)


def _forward(graph: IRGraph, order: list[str], mode: str) -> tuple[dict, dict, dict]:
    """Elements reached from live sources (``reached``), populations' ``drive``, multiplicities."""
    fwd: dict[str, np.ndarray] = {}
    drive: dict[str, np.ndarray] = {}
    mult: dict[str, np.ndarray] = {}
    with torch.no_grad():
        for name in order:
            node = graph.node(name)
            if isinstance(node, Delay):   # its source may come later (a loop): every element passes
                fwd[name] = every(node.shape)
                continue
            ins = [_f32(fwd[s]) for s in graph.inputs(name)]
            if is_population(graph, name):
                if ins:
                    d = _pattern(graph, name, ins, mode) if isinstance(node, Pool2d) else ins[0]
                    drive[name] = _compact(d[0].numpy() > 0)
                fwd[name] = alive_of(graph, name)
            else:
                fwd[name] = _compact(_pattern(graph, name, ins, mode)[0].numpy() > 0)
                _multiplicity(graph, name, node, fwd, mult, mode)
    return fwd, drive, mult


def _consumed(graph: IRGraph, name: str, node: Node) -> list[tuple[str, np.ndarray]] | None:
    """What a node that ends a synaptic path reads of its inputs ((source, elements)), or
    None for a node the adjoint passes through."""
    srcs = graph.inputs(name)
    if isinstance(node, (Output, MatMul, Host)):  # a product (a host op) reads every element of its inputs
        return [(s, every(graph.node(s).shape)) for s in srcs]
    if isinstance(node, Neuron):  # a live neuron consumes its input element
        return [(srcs[0], alive_of(graph, name))]
    return None


def _adjoint(graph: IRGraph, order: list[str], mode: str, fwd: dict[str, np.ndarray],
             mult: dict[str, np.ndarray]) -> tuple[dict[str, np.ndarray], dict[str, tuple[int, int]]]:
    """Elements that reach a live neuron (per node reached by the sweep), and the live
    synapses of each Conv2d / Linear node (``pattern`` mode)."""
    back: dict[str, np.ndarray] = {}
    synapses: dict[str, tuple[int, int]] = {}

    def add(src: str, reach: np.ndarray) -> None:
        back[src] = _compact(back[src] | reach) if src in back else _compact(reach)

    for name in order:   # before the sweep: a loop's delay comes before its source
        if isinstance(graph.node(name), Delay):
            for s in graph.inputs(name):
                add(s, every(graph.node(s).shape))
    for name in reversed(order):
        node = graph.node(name)
        srcs = graph.inputs(name)
        if not srcs or isinstance(node, Delay):
            continue
        consumed = _consumed(graph, name, node)
        if consumed is not None:
            for s, reach in consumed:
                add(s, reach)
            continue
        g = (every(node.shape) if isinstance(node, Pool2d) and node.mode == "max"
             else back.get(name))  # OR neurons are never removed
        if g is None or not g.any():
            if mode == "pattern" and isinstance(node, (Conv2d, Linear)):
                synapses[name] = (0, 0)   # no synapse reaches a live neuron
            continue
        xs = [torch.zeros((1, *graph.node(s).shape), dtype=torch.float32, requires_grad=True) for s in srcs]
        with torch.enable_grad():
            y = _pattern(graph, name, xs, mode)
            grads = adjoint(y, xs, _f32(g), allow_unused=True)
        for s, gr in zip(srcs, grads):
            if gr is not None:
                add(s, gr[0].numpy() > 0)
        if mode == "pattern" and exact_adjoint(node):
            synapses[name] = _adjoint_synapses(grads[0][0].numpy(), srcs[0], fwd, mult)
    return back, synapses


def exact_adjoint(node: Node) -> bool:
    """True for a Conv2d / Linear node whose float32 adjoint of a 0/1 indicator is exact: each
    input element's value, the number of stored synapses leaving it, stays below 2**24."""
    if not isinstance(node, (Conv2d, Linear)):
        return False
    fan_out = node.weight.shape[0] * int(np.prod(node.weight.shape[2:]))
    return fan_out < 2**24


def _adjoint_synapses(fan_out: np.ndarray, src: str, fwd: dict[str, np.ndarray],
                      mult: dict[str, np.ndarray]) -> tuple[int, int]:
    """⟨fan_out, sources⟩ and ⟨fan_out, reached⟩ of a synaptic node's input (integers)."""
    f = fan_out.astype(np.float64).ravel()
    once = int(round(float(f @ fwd[src].ravel())))
    if src not in mult:
        return once, once
    return int(round(float(f @ mult[src].astype(np.float64).ravel()))), once


def _multiplicity(graph: IRGraph, name: str, node: Node, fwd: dict[str, np.ndarray],
                  mult: dict[str, np.ndarray], mode: str) -> None:
    """Sums of populations (Add) count each source; one-to-one nodes carry the count on."""
    srcs = graph.inputs(name)
    if not any(s in mult for s in srcs) and not isinstance(node, Add):
        return
    if isinstance(node, Add):
        m = sum(mult.get(s, fwd[s]).astype(np.uint16) for s in srcs)
    elif PATHS(node)(node) == "one-to-one" or isinstance(node, Slice):
        ins = [torch.from_numpy(mult.get(s, fwd[s]).astype(np.float32)[None]) for s in srcs]
        m = np.rint(_pattern(graph, name, ins, mode)[0].numpy()).astype(np.uint16)
    else:
        return
    if m.max(initial=0) > 1:
        mult[name] = m
