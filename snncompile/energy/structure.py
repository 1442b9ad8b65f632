"""Where each synaptic layer sits in the compiled network, read from the netlist.

The lowering decides which populations feed which, through which chain of IR nodes, how
many synapses each projection has (between kept neurons), which targets are OR neurons and
which connections cross no synaptic layer (residual shortcuts, relays). The estimator reads
those decisions here instead of walking the IR again. Per IR layer it needs

- ``sources``: per element of the layer's input, the number of source populations it
  carries (0/1, or more where a residual sum of spikes feeds the layer),
- ``reaching``: the layer's output elements that reach a kept neuron (or the output),
- the layer's synapses between kept neurons: ⟨reaching, P(sources)⟩ with P its 0/1 pattern.

Where a projection is the layer alone (plus nodes that map elements one-to-one) into one
population, the lowering's count of that projection *is* the layer's count; elsewhere the
count is taken from ``sources`` and ``reaching``, computed along the projections' chains.
A graph the lowering refuses (``--target energy`` estimates a model as written) is read
with the IR's own structural sweep instead (:class:`SweepStructure`): it has no shortcuts.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from snncompile.errors import SnnCompileError
from snncompile.ir import Conv2d, IRGraph, Linear, Neuron, Slice
from snncompile.ir.counting import live_synapses
from snncompile.ir.semantics import STEP
from snncompile.ir.structure import PATHS, Liveness, adjoint, liveness
from snncompile.lower import lower
from snncompile.netlist import (
    OUTPUT,
    Chain,
    HostPopulation,
    InputPopulation,
    Netlist,
    OrPopulation,
    Projection,
)


@dataclass(frozen=True)
class Term:
    """One chain of projection ``proj`` that crosses a layer, at position ``at``."""

    proj: Projection
    chain: Chain
    at: int

    @property
    def before(self) -> Chain:
        return Chain(self.chain.nodes[:self.at], self.chain.in_shape)

    @property
    def after(self) -> list:
        return self.chain.nodes[self.at + 1:]


@dataclass(frozen=True)
class Shortcut:
    """A projection that crosses no synaptic layer into a neuron population: weight-1
    synapses (a residual shortcut of spikes, the input of an OR relay), as lowered."""

    proj: Projection

    @property
    def src(self) -> str:
        return self.proj.src

    @property
    def dst(self) -> str:
        return self.proj.dst

    @property
    def synapses(self) -> int:
        return self.proj.synapses


def _one_to_one(node) -> bool:
    return isinstance(node, Slice) or PATHS(node)(node) == "one-to-one"


def _indicator(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.asarray(a, dtype=np.float64)[None])


def _adjoint(nodes: list, shape: tuple[int, ...], g: np.ndarray) -> np.ndarray:
    """Elements (of shape ``shape``) from which the 0/1 pattern of ``nodes`` reaches ``g`` > 0."""
    if not nodes:
        return g.reshape(shape) > 0
    x = torch.zeros((1, *shape), dtype=torch.float64, requires_grad=True)
    with torch.enable_grad():
        y = Chain(nodes, shape).apply(x, "pattern")
        (grad,) = adjoint(y, [x], _indicator(g))
    return grad[0].numpy() > 0


class NetlistStructure:
    """Per-layer structure from a netlist lowered from ``graph``."""

    def __init__(self, graph: IRGraph, net: Netlist) -> None:
        self.graph, self.net = graph, net
        # counts of the lowering follow every stored synapse (dense emission), or only
        # nonzero ones once zeros were pruned from the masks: the same set either way
        self.stored = all(p.keep_zeros for p in net.projections) or "synapses_pruned" in graph.facts
        self.terms: dict[int, list[Term]] = {}
        for proj in net.projections:
            for chain in proj.chains:
                for at, node in enumerate(chain.nodes):
                    if isinstance(node, (Conv2d, Linear)):
                        self.terms.setdefault(id(node), []).append(Term(proj, chain, at))

    def _terms(self, name: str) -> list[Term]:
        return self.terms.get(id(self.graph.node(name)), [])

    def kept(self, pop: str, reads: bool = True) -> np.ndarray:
        """0/1 per logical element of a population (or of the output), 1 where kept;
        ``reads``: per element of what it reads (a driven host partition reads its whole
        drive), else per element it sends."""
        if pop == OUTPUT:
            return np.ones(self.net.output_shape)
        p = self.net.populations[pop]
        if isinstance(p, HostPopulation) and p.driven and reads:   # every element of its drive is read
            return np.ones(p.in_shape)
        k = np.zeros(p.logical_size) if p.index is not None else np.ones(p.logical_size)
        if p.index is not None:
            k[p.index] = 1.0
        return k.reshape(p.shape)

    def role(self, name: str) -> str:
        """"or" when the layer feeds OR neurons directly (a max-pool lowered to OR)."""
        terms = self._terms(name)
        feeds_or = bool(terms) and all(t.proj.dst != OUTPUT and isinstance(self.net.populations[t.proj.dst], OrPopulation)
                                       for t in terms)
        return "or" if feeds_or and not any(t.after for t in terms) else ""

    def sources(self, name: str) -> np.ndarray | None:
        """Source populations per input element of layer ``name``. Counts add up along
        one-to-one nodes; a node that mixes elements (a pooling, a mean over tokens) carries
        one value, so the terms that meet in it count once (0/1) from there on, as in the
        IR sweep's multiplicity (ir.structure)."""
        terms, shape = self._terms(name), tuple(self.graph.node(self.graph.inputs(name)[0]).shape)
        if not terms:
            return np.zeros(shape)
        counted = 0.0                                   # terms along one-to-one nodes only
        mixed: dict[int, np.ndarray] = {}               # by the last mixing node on the way
        with torch.no_grad():
            for t in terms:
                reach = t.before.apply(_indicator(self.kept(t.proj.src, reads=False)), "pattern")[0].numpy()
                last = next((n for n in reversed(t.before.nodes) if not _one_to_one(n)), None)
                if last is None:
                    counted = counted + reach
                else:
                    mixed[id(last)] = mixed.get(id(last), 0.0) + reach
        total = np.zeros(shape) if np.isscalar(counted) else np.rint(counted.reshape(shape))
        for group in mixed.values():
            total = total + (group.reshape(shape) > 0).astype(np.float64)
        return total

    def reaching(self, name: str) -> np.ndarray:
        """Output elements of layer ``name`` that reach a kept neuron or the output."""
        shape = tuple(self.graph.node(name).shape)
        out = np.zeros(shape, dtype=bool)
        for t in self._terms(name):
            out |= _adjoint(t.after, shape, self.kept(t.proj.dst))
        return out

    def _lowered(self, name: str) -> int | None:
        """The lowering's own count, where a projection is this layer alone into one population."""
        terms = self._terms(name)
        if not self.stored or not terms or len({t.proj.dst for t in terms}) != 1:
            return None
        for t in terms:
            if len(t.proj.chains) != 1 or t.proj.layers != [name] \
                    or not all(_one_to_one(n) for i, n in enumerate(t.chain.nodes) if i != t.at):
                return None
        return sum(t.proj.synapses for t in terms)

    def synapses(self, name: str) -> tuple[int, int | None] | None:
        """(synapses once per source population, once per input element if that differs);
        None where the chains cannot tell (the caller sweeps the IR)."""
        terms = self._terms(name)
        lowered = self._lowered(name)
        if lowered is not None and len(terms) == 1:
            return lowered, None
        src = self.sources(name)
        if src is None:
            return None
        reach = self.reaching(name)
        per_pop = lowered if lowered is not None else _count(self.graph, name, src, reach)
        fan = _count(self.graph, name, (src > 0).astype(np.float64), reach) if src.max(initial=0) > 1 else None
        return per_pop, fan

    def shortcuts(self) -> list[Shortcut]:
        """Projections with no synaptic layer into neuron populations (from any population
        but the input), in graph order, then by source."""
        order = {n: i for i, n in enumerate(self.graph.topo())}
        out = [Shortcut(p) for p in self.net.projections
               if not p.layers and p.dst != OUTPUT and p.synapses
               and p.dst in self.graph.nx and isinstance(self.graph.node(p.dst), Neuron)   # host relays: no IR node
               and not isinstance(self.net.populations[p.src], InputPopulation)]
        return sorted(out, key=lambda s: (order[s.dst], s.src))


def _count(graph: IRGraph, name: str, sources: np.ndarray, reaching: np.ndarray) -> int:
    """⟨reaching, P(sources)⟩ with P the layer's 0/1 pattern."""
    node = graph.node(name)
    with torch.no_grad():
        fan_in = STEP(node)(node, [_indicator(sources)], 1, "pattern")[0].numpy()
    return int(round(float((fan_in * reaching).sum())))


class SweepStructure:
    """Per-layer structure from the IR's structural sweep (a graph that was not lowered)."""

    def __init__(self, graph: IRGraph, live: Liveness | None = None) -> None:
        self.graph = graph
        self.live = liveness(graph) if live is None else live

    def role(self, name: str) -> str:
        users = self.graph.users(name)
        if len(users) == 1 and isinstance(self.graph.node(users[0]), Neuron):
            return getattr(self.graph.node(users[0]), "role", "")
        return ""

    def reaching(self, name: str) -> np.ndarray:
        return self.live.reaching[name]

    def synapses(self, name: str) -> tuple[int, int | None]:
        src = self.graph.inputs(name)[0]
        fan = live_synapses(self.graph, name, self.live, per_population=False) \
            if src in self.live.multiplicity else None
        return live_synapses(self.graph, name, self.live), fan

    def shortcuts(self) -> list[Shortcut]:
        return []


class Layers:
    """Per-layer structure: from the netlist, and from the IR sweep for a layer whose
    chains cannot tell (computed once, on first need)."""

    def __init__(self, graph: IRGraph, net: Netlist | None) -> None:
        self.graph = graph
        self.net = NetlistStructure(graph, net) if net is not None else None
        self._sweep: SweepStructure | None = None
        self._removes: bool | None = None

    @property
    def sweep(self) -> SweepStructure:
        if self._sweep is None:
            self._sweep = SweepStructure(self.graph)
        return self._sweep

    @property
    def removes_neurons(self) -> bool:
        """True when a pass removed neurons (some layer outputs then reach none)."""
        if self._removes is None:
            self._removes = any(isinstance(n, Neuron) and n.kept != n.size
                                for n in (self.graph.node(k) for k in self.graph.topo()))
        return self._removes

    def role(self, name: str) -> str:
        return self.net.role(name) if self.net is not None else self.sweep.role(name)

    def synapses(self, name: str) -> tuple[int, int | None]:
        got = self.net.synapses(name) if self.net is not None else None
        return got if got is not None else self.sweep.synapses(name)

    def reaching(self, name: str) -> np.ndarray:
        return self.net.reaching(name) if self.net is not None else self.sweep.reaching(name)

    def sources(self, name: str) -> np.ndarray:
        """Per input element of layer ``name``: the kept populations it carries (0: removed)."""
        got = self.net.sources(name) if self.net is not None else None
        return got if got is not None else self.sweep.live.sources(self.graph.inputs(name)[0])

    def shortcuts(self) -> list[Shortcut]:
        return self.net.shortcuts() if self.net is not None else []


def layers_of(graph: IRGraph, net: Netlist | None = None) -> Layers:
    """The structure of ``graph`` from ``net``, lowered here when not given; a graph the
    lowering refuses is read with the IR sweep (an estimate of the model as written)."""
    if net is None:
        try:
            net = lower(graph, lazy_bias=True)   # counts read no bias (the netlist lives as long as the estimate)
        except SnnCompileError:
            net = None
    return Layers(graph, net)
