"""The one lowering: final IR → netlist.

Every chain of linear nodes between populations (conv, linear, batch norm, average
pooling, reshape, transpose, scale, mask, residual add) becomes projections that keep the
IR nodes themselves (:class:`snncompile.netlist.Chain`), plus a constant bias on the target.
Max pooling of spikes becomes an OR population; spike products a matmul population; a
Delay a delay population (its drive sent ``steps`` steps late: a relay of spikes when the
drive is one population's spikes), which is how a recurrent loop is closed.
Synapse counts are exact and closed form where a chain joins each pair of neurons by one
path at most; any other projection is unrolled alone to count it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from snncompile.errors import EXIT_UNSUPPORTED, SnnCompileError
from snncompile.ir import (
    AdaptiveAvgPool2d,
    Add,
    BatchNorm,
    Concat,
    Conv2d,
    Delay,
    Host,
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
    Slice,
    Transpose,
)
from snncompile.ir.counting import conv_counts, linear_counts, pool_counts
from snncompile.ir.dynamics import OrPool
from snncompile.ir.host import Identity, MaxPool
from snncompile.ir.labels import labels
from snncompile.ir.registry import Registry
from snncompile.ir.semantics import STEP, neuron_params
from snncompile.netlist import (
    OUTPUT,
    POPULATION_TYPES,
    BiasMap,
    Chain,
    DelayPopulation,
    HostPopulation,
    InputPopulation,
    Netlist,
    NeuronPopulation,
    Operand,
    OrPopulation,
    OutputKind,
    Population,
    ProductPopulation,
    Projection,
    bias_map,
)
from snncompile.threads import one_thread

# A max-pool of spikes is OR over the window: memoryless (tau=1 LIF: H = X), fires on ≥1.
OR_PARAMS = OrPool()
LOWER = Registry("lowering")


class _Bias:
    """A value's bias map [1, *shape], computed now or (``lazy``) on its first read, for a
    lowering whose biases nothing reads (an energy estimate's: ~1 ms of a ResNet-18 ticket).
    ``zero``: known to be all zeros without computing it (a population's output; a view or a
    bias-free synaptic layer of zeros), None: not known."""

    __slots__ = ("_make", "_map", "zero")

    def __init__(self, make: Callable[[], torch.Tensor], lazy: bool, zero: bool | None = None) -> None:
        self._make: Callable[[], torch.Tensor] | None = None if not lazy else make
        self._map: torch.Tensor | None = make() if not lazy else None   # (in the lowering's own context)
        self.zero = zero

    @property
    def tensor(self) -> torch.Tensor:
        if self._make is not None:
            with one_thread(), torch.no_grad():   # as in the lowering itself
                self._map = self._make()
            self._make = None   # (drops what it read: the bias maps before it)
        return self._map

    def is_zero(self) -> bool:
        return bool(self.zero) or _is_zero(self.tensor)


@dataclass
class _Value:
    """A node's value as Σ_terms chain(population output) + bias."""

    terms: list[tuple[str, list]]     # (source population, chain nodes)
    bias: _Bias                       # [1, *shape]
    layers: list[str]

    def identity_of(self) -> str | None:
        """The population whose output this value is exactly (through reshapes)."""
        if len(self.terms) == 1 and all(isinstance(n, Reshape) for n in self.terms[0][1]) \
                and self.bias.is_zero():
            return self.terms[0][0]
        return None


class _Lowering:
    def __init__(self, graph: IRGraph, dense: bool, host: bool = True, lazy_bias: bool = False) -> None:
        self.graph, self.dense = graph, dense
        self.pops: dict[str, Population] = {}
        self.projs: list[Projection] = []
        self.vals: dict[str, _Value] = {}
        self.relays: dict[str, str | None] = {}   # delay → the population its drive is exactly
        self.netlist: Netlist | None = None
        self.host = host   # real-valued max-pools become host partitions (else refused)
        self.lazy = lazy_bias

    def zeros(self, shape) -> _Bias:
        return _Bias(lambda: _zeros(shape), self.lazy, zero=True)

    def sum(self, a: _Bias, b: _Bias) -> _Bias:
        return _Bias(lambda: _sum(a.tensor, b.tensor), self.lazy, zero=True if a.zero and b.zero else None)

    def bias_map(self, bias: _Bias, shape) -> BiasMap:
        """A population's bias from its bias map, kept compact."""
        if not self.lazy:
            return BiasMap(_compact_map(bias.tensor, shape), tuple(shape))
        return BiasMap(lambda: _compact_map(bias.tensor, shape), tuple(shape))

    def source(self, name: str, shape) -> _Value:
        return _Value([(name, [])], self.zeros(shape), [])

    def linear(self, name: str, node, value: _Value, layer: bool = False) -> _Value:
        before = value.bias
        zero = True if before.zero and (isinstance(node, (Reshape, Transpose, Slice)) or (
            isinstance(node, (Conv2d, Linear)) and node.bias is None)) else None
        bias = _Bias(lambda: _affine(node, before.tensor), self.lazy, zero)
        return _Value([(s, chain + [node]) for s, chain in value.terms], bias,
                      value.layers + ([name] if layer else []))

    def connect(self, dst: str, value: _Value) -> int:
        """Projections from every source of ``value`` into ``dst``; returns dst's depth."""
        by_src: dict[str, list] = {}
        for src, chain in value.terms:
            by_src.setdefault(src, []).append(chain)
        depth = max(self.pops[s].depth for s in by_src) + 1 if by_src else 1
        for src, chains in by_src.items():
            in_shape = tuple(self.pops[src].shape)
            # the layers on this source's paths only (a residual identity has none)
            on_path = {id(n) for c in chains for n in c}
            layers = [name for name in value.layers if id(self.graph.node(name)) in on_path]
            proj = Projection(src, dst, [Chain(c, in_shape) for c in chains], layers,
                              depth - self.pops[src].depth - 1)
            proj.weight_bits = _bits(self.graph, layers)
            self.projs.append(proj)
        return depth

    def feed_delay(self, name: str, value: _Value) -> None:
        """Connect delay population ``name`` to its drive (once the drive is lowered)."""
        pop = self.pops[name]
        pop.bias = self.bias_map(value.bias, pop.shape)
        self.relays[name] = value.identity_of()   # decided once every delay is fed (resolve_relays)
        self.connect(name, value)
        for proj in self.projs:   # sent from the start of every step: depth 0, like the input
            if proj.dst == name:
                proj.delay = 0

    def resolve_relays(self) -> None:
        """A delay relays spikes when its drive is exactly a spiking population's output, or
        another delay's that relays spikes (a chain of delays in a loop may be fed in any order)."""
        changed = True
        while changed:
            changed = False
            for name, src in self.relays.items():
                relay = src is not None and not self.pops[src].graded
                if relay != self.pops[name].relay:
                    self.pops[name].relay, changed = relay, True

    def population(self, name: str, value: _Value, pop: Population) -> _Value:
        pop.bias = self.bias_map(value.bias, pop.shape)
        pop.depth = self.connect(name, value)
        self.pops[name] = pop
        return self.source(name, pop.shape)


@LOWER.register(Input)
def _input(lw: _Lowering, name: str, node: Input, ins: list[_Value]) -> _Value:
    lw.pops[name] = InputPopulation(name, node.size, tuple(node.shape), depth=0)
    return lw.source(name, node.shape)


@LOWER.register(Conv2d, Linear)
def _synaptic(lw, name, node, ins):
    return lw.linear(name, node, ins[0], layer=True)


@LOWER.register(BatchNorm, Reshape, Transpose, Scale, Reduce, Mask, Slice, AdaptiveAvgPool2d)
def _linear(lw, name, node, ins):
    return lw.linear(name, node, ins[0])


@LOWER.register(Pool2d)
def _pool(lw, name, node: Pool2d, ins):
    if node.mode in ("avg", "sum"):
        return lw.linear(name, node, ins[0])
    src = ins[0].identity_of()
    if (src is None or not binary_pop(lw, src)) and lw.host:
        fn = MaxPool(node.kernel, node.stride, node.padding)   # max of real values: a host partition
        return _host_population(lw, name, Host(node.shape, node.source, fn=fn), ins)
    if src is None or isinstance(lw.pops[src], InputPopulation):
        feed = lw.graph.node(lw.graph.inputs(name)[0])
        what = "the input" if src is not None else \
            f"real values (the output of {feed.op} `{feed.source or lw.graph.inputs(name)[0]}`)"
        raise SnnCompileError(f"max pooling at `{node.source or name}` (MaxPool2d) reads {what}, not spikes: a "
                              "neuromorphic core can max-pool only spikes (as OR neurons)",
                              "move the MaxPool2d after the spiking neuron (pool the spikes) or use AvgPool2d; "
                              "`--target energy` estimates the model as written", EXIT_UNSUPPORTED)
    value = _Value([(src, [node])], lw.zeros(node.shape), [])
    return lw.population(name, value, OrPopulation(name, node.size, tuple(node.shape), params=OR_PARAMS))


@LOWER.register(Add)
def _add(lw, name, node, ins):
    a, b = ins
    return _Value(a.terms + b.terms, lw.sum(a.bias, b.bias), a.layers + b.layers)


@LOWER.register(Concat)
def _concat(lw, name, node: Concat, ins):
    """Each input lands in its slot: a one-input Concat per term, summed like an Add."""
    sizes = tuple(lw.graph.node(s).shape[node.axis] for s in lw.graph.inputs(name))
    terms, bias, layers = [], lw.zeros(node.shape), []
    for k, value in enumerate(ins):
        slot = Concat(node.shape, node.source, axis=node.axis, slot=k, sizes=sizes)
        v = lw.linear(name, slot, value)
        terms, bias, layers = terms + v.terms, lw.sum(bias, v.bias), layers + v.layers
    return _Value(terms, bias, layers)


@LOWER.register(Neuron)
def _neuron(lw, name, node: Neuron, ins):
    src = ins[0].identity_of()
    # a delayed drive, or real values a host partition writes (max of BN output), arrive one-to-one
    if src is not None and not isinstance(lw.pops[src], (DelayPopulation, HostPopulation)):
        raise SnnCompileError(f"neuron `{node.source or name}` reads another population directly",
                              "put a synaptic layer (Linear/Conv2d) between neuron layers", EXIT_UNSUPPORTED)
    kind = POPULATION_TYPES[node.dynamics.population_kind]   # neurons, or OR neurons of a spike max-pool
    return lw.population(name, ins[0], kind(name, node.size, tuple(node.shape), params=neuron_params(node)))


@LOWER.register(Delay)
def _delay(lw, name, node: Delay, ins):
    """A delay population; a loop's Delay gets its drive once its source is lowered (``lower``)."""
    lw.pops[name] = DelayPopulation(name, node.size, tuple(node.shape), bias=np.zeros(node.size), depth=0,
                                    steps=node.steps)
    if ins:
        lw.feed_delay(name, ins[0])
    return lw.source(name, node.shape)


@LOWER.register(MatMul)
def _matmul(lw, name, node: MatMul, ins):
    operands = []
    for src_name, value in zip(lw.graph.inputs(name), ins):
        operand = _operand(lw, value, tuple(lw.graph.node(src_name).shape), node.source or name)
        if node.mode == "hadamard":  # broadcast each factor to the output shape
            pos = np.broadcast_to(np.arange(len(operand.idx)).reshape(operand.shape), node.shape)
            operand = Operand(operand.src, operand.idx[pos.ravel()], tuple(node.shape), scale=operand.scale)
        operands.append(operand)
    pop = ProductPopulation(name, node.size, tuple(node.shape), operands=operands,
                            bias=np.zeros(node.size), product=node.mode)
    pop.depth = max(lw.pops[o.src].depth for o in operands) + 1
    for o in operands:
        o.delay = pop.depth - lw.pops[o.src].depth - 1
    lw.pops[name] = pop
    return lw.source(name, node.shape)


def binary_pop(lw: _Lowering, src: str) -> bool:
    """``src`` sends 0/1 spikes (what OR neurons can max-pool)."""
    pop = lw.pops[src]
    return not pop.graded and not isinstance(pop, InputPopulation)


@LOWER.register(Host)
def _host(lw, name, node: Host, ins):
    return _host_population(lw, name, node, ins)


def _host_population(lw: _Lowering, name: str, node: Host, ins: list[_Value]) -> _Value:
    """A host partition. One input arrives as its drive (synapses + bias); each input of a
    several-input op is gathered from a population, through a relay host population
    (``<name>.in<k>``, the identity) where it is not a population's output."""
    in_shapes = [tuple(lw.graph.node(s).shape) for s in lw.graph.inputs(name)]
    common = dict(fn=node.fn, source=node.source or name)
    if len(ins) == 1:
        pop = HostPopulation(name, node.size, tuple(node.shape), in_shape=in_shapes[0], driven=True, **common)
        pop.bias = lw.bias_map(ins[0].bias, in_shapes[0])   # the drive has the input's shape
        pop.depth = lw.connect(name, ins[0])
        lw.pops[name] = pop
        return lw.source(name, node.shape)
    operands = []
    for k, (value, shape) in enumerate(zip(ins, in_shapes)):
        operand = _gathered(lw, value, shape)
        if operand is None:
            relay = f"{name}.in{k}"
            lw.population(relay, value, HostPopulation(relay, int(np.prod(shape)), shape, fn=Identity(), in_shape=shape,
                                                       driven=True, source=node.source or name))
            operand = Operand(relay, np.arange(int(np.prod(shape))), shape)
        operands.append(operand)
    pop = HostPopulation(name, node.size, tuple(node.shape), operands=operands, bias=np.zeros(node.size), **common)
    pop.depth = max(lw.pops[o.src].depth for o in operands) + 1
    for o in operands:
        o.delay = pop.depth - lw.pops[o.src].depth - 1
    lw.pops[name] = pop
    return lw.source(name, node.shape)


def _gathered(lw: _Lowering, value: _Value, shape: tuple[int, ...]) -> Operand | None:
    """``value`` as a gather of one population's outputs (reshaped, transposed, sliced, scaled), or None."""
    if len(value.terms) != 1 or not value.bias.is_zero():
        return None
    src, chain = value.terms[0]
    if not all(isinstance(n, (Reshape, Transpose, Scale, Slice)) for n in chain) or \
            isinstance(lw.pops[src], InputPopulation):
        return None
    if any(isinstance(n, Scale) and n.offset for n in chain):
        return None
    c = Chain(chain, tuple(lw.pops[src].shape))
    with torch.no_grad():
        idx = c.apply(torch.arange(lw.pops[src].logical_size, dtype=torch.float64)[None], "pattern")
    scale = float(np.prod([n.factor for n in chain if isinstance(n, Scale)]))
    return Operand(src, idx.reshape(-1).numpy().astype(np.int64), tuple(shape), scale=scale)


@LOWER.register(Output)
def _output(lw, name, node: Output, ins):
    value = ins[0]
    src = value.identity_of()
    if src is not None and not isinstance(lw.pops[src], InputPopulation):
        pop = lw.pops[src]
        kind = OutputKind.MEMBRANE if pop.graded else OutputKind.SPIKES   # a non-spiking population: its values
        lw.netlist = Netlist(lw.pops, lw.projs, kind, output_pop=pop.name, output_shape=tuple(node.shape),
                             output_depth=pop.depth)
    else:
        depth = lw.connect(OUTPUT, value)
        lw.netlist = Netlist(lw.pops, lw.projs, OutputKind.VALUES,
                             output_bias=value.bias.tensor.reshape(-1).numpy().copy(),
                             output_shape=tuple(node.shape), output_depth=depth)
    return value


# Bias maps are [1, *shape] tensors that may be broadcast views (stride 0 along the axes
# they are constant on): a folded layer bias is one value per channel, and a map of a
# paper-size layer would otherwise be materialised per neuron at every node of a chain.
def _zeros(shape) -> torch.Tensor:
    return torch.zeros((1,) * (len(shape) + 1), dtype=torch.float64).expand(1, *shape)


def _compact(t: torch.Tensor) -> torch.Tensor:
    """``t`` without its broadcast axes (size 1 where the stride is 0): same values, broadcastable."""
    # the view t[0:1 on each broadcast axis], made directly (indexing costs 3x as much)
    stride = t.stride()
    return t.as_strided([1 if st == 0 else n for st, n in zip(stride, t.shape)], stride)


def _is_zero(t: torch.Tensor) -> bool:
    # numpy's count of elements != 0 (NaN included) on the compact view: torch's any(t != 0)
    # costs ~10 µs, paid for every layer of a chain
    return np.count_nonzero(_compact(t).numpy()) == 0


def _sum(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    # numpy's shape broadcast: torch.broadcast_shapes costs ~50 µs a call, a dozen per residual network
    return (_compact(a) + _compact(b)).expand(np.broadcast_shapes(tuple(a.shape), tuple(b.shape)))


def _step_bias(node, bias: torch.Tensor) -> torch.Tensor:
    """The affine step of ``node`` on a bias map; per-element nodes (batch norm, scale) run on
    its compact form, which gives the same values per element."""
    if isinstance(node, (BatchNorm, Scale)):
        return torch.from_numpy(_per_element(node, _compact(bias).numpy())).expand(1, *node.shape)
    return STEP(node)(node, [bias.contiguous()], 1, "affine")


def _per_element(node: BatchNorm | Scale, b: np.ndarray) -> np.ndarray:
    """The affine step of a batch norm or scale on a compact bias map, in numpy: the same
    float64 products and sums as the reference step (ir.semantics), at a tenth of the cost
    of torch's dispatch on these small arrays (a residual network lowers dozens)."""
    with np.errstate(all="ignore"):   # inf·0 is NaN here as in torch, without a warning
        if isinstance(node, Scale):
            y = b * float(node.factor)
            return y + float(node.offset) if node.offset else y
        scale, shift = node.scale_shift()
        per_channel = (1, -1) + (1,) * (b.ndim - 2)
        return b * scale.reshape(per_channel) + shift.reshape(per_channel)


def _compact_map(bias: torch.Tensor, shape) -> np.ndarray:
    compact = _compact(bias)[0] if tuple(bias.shape[1:]) == tuple(shape) else bias.reshape(tuple(shape))
    return compact.numpy().copy()


def _affine(node, bias_in: torch.Tensor) -> torch.Tensor:
    """The bias map after ``node`` (a linear node) of the bias map ``bias_in`` before it."""
    bias = _zero_in_bias(node, bias_in)
    return _step_bias(node, bias_in) if bias is None else bias


def _zero_in_bias(node, bias_in: torch.Tensor) -> torch.Tensor | None:
    """A synaptic layer's bias map on an input bias map of zeros: its own bias per output
    channel (what the affine step computes, without running the layer on zeros); None if
    the input bias is not all zero or the node is not a synaptic layer."""
    if not isinstance(node, (Conv2d, Linear)) or not _is_zero(bias_in):
        return None
    if node.bias is None:
        return _zeros(node.shape)
    b = torch.from_numpy(np.array(node.bias, dtype=np.float64))   # a copy: IR weights are read-only
    per_channel = (1, -1, 1, 1) if isinstance(node, Conv2d) else (1,) * len(node.shape) + (-1,)
    # 0 + b as the step on zeros computes it (a -0.0 bias becomes +0.0)
    return (torch.zeros((), dtype=torch.float64) + b.reshape(per_channel)).expand(1, *node.shape)


def _operand(lw: _Lowering, value: _Value, shape: tuple[int, ...], where: str) -> Operand:
    """A product's factor must be a population's output, possibly transposed, reshaped or scaled."""
    if len(value.terms) == 1 and value.bias.is_zero():
        src, chain = value.terms[0]
        if all(isinstance(n, (Reshape, Transpose, Scale, Slice)) for n in chain) and \
                not isinstance(lw.pops[src], InputPopulation):
            c = Chain(chain, tuple(lw.pops[src].shape))
            with torch.no_grad():  # the gather: where each operand element comes from
                idx = c.apply(torch.arange(lw.pops[src].logical_size, dtype=torch.float64)[None], "pattern")
            scale = float(np.prod([n.factor for n in chain if isinstance(n, Scale)]))
            return Operand(src, idx.reshape(-1).numpy().astype(np.int64), tuple(shape), scale=scale)
    raise SnnCompileError(f"matrix product at `{where}` has a factor that is not a population's "
                          "spikes (or another product), possibly scaled by a constant",
                          "feed matmul directly from spiking neurons (optionally transposed)", EXIT_UNSUPPORTED)


def _bits(graph: IRGraph, layers: list[str]) -> int:
    if len(layers) == 1 and getattr(graph.node(layers[0]), "binary", False):
        return 1
    return 32


@one_thread()   # hundreds of batch-1 steps on bias maps and 0/1 patterns
@torch.no_grad()
def lower(graph: IRGraph, dense: bool | None = None, host: bool = True, lazy_bias: bool = False) -> Netlist:
    """Lower ``graph``. ``dense``: emit every projection with its zero-valued synapses, as
    an exporter unaware of pruning does; default: dense unless the graph's synapses are
    pruned (the ``synapses_pruned`` fact of the prune_synapses pass). ``lazy_bias``: compute
    each population's bias on its first read (the same values), for a netlist read for its
    structure only; it reads the IR nodes then, so they must not have changed since."""
    if dense is None:
        dense = "synapses_pruned" not in graph.facts
    lw = _Lowering(graph, dense, host, lazy_bias)
    back = graph.delayed_reads()   # a loop's Delay comes before its source
    waiting: dict[str, list[str]] = {}
    for src, delay in back:
        waiting.setdefault(src, []).append(delay)
    for name, node in graph.items_releasing(lw.vals):  # a bias map is as large as its layer
        srcs = [s for s in graph.inputs(name) if (s, name) not in back]
        lw.vals[name] = LOWER(node)(lw, name, node, [lw.vals[s] for s in srcs])
        for delay in waiting.get(name, []):
            lw.feed_delay(delay, lw.vals[name])
    lw.resolve_relays()
    if lw.netlist is None:
        raise ValueError("graph has no output node")
    if lw.netlist.output_pop is not None:   # read straight from a population: a relay's kind is known now
        lw.netlist.output_kind = OutputKind.MEMBRANE if lw.pops[lw.netlist.output_pop].graded else OutputKind.SPIKES
    _finish(lw.netlist, graph, dense)
    names = labels(graph)
    lw.netlist.labels = {p: names[p] for p in lw.netlist.populations if p in names}
    return lw.netlist


def _finish(net: Netlist, graph: IRGraph, dense: bool) -> None:
    """Drop removed neurons (and every synapse touching them); choose implementations; count."""
    for name, pop in net.populations.items():
        alive = getattr(graph.node(name), "alive", None) if name in graph.nx else None   # relays: not in the IR
        if alive is not None and not alive.all():
            pop.index = np.flatnonzero(alive.ravel())
            pop.size = len(pop.index)
            lazy = bias_map(pop)
            pop.bias = lazy.kept(pop.index) if lazy is not None else pop.bias[pop.index]
            params = pop.params if isinstance(pop, NeuronPopulation) else None
            per_neuron = {k: getattr(params, k)[pop.index] for k in ("v_threshold", "reset_by")
                          if isinstance(getattr(params, k, None), np.ndarray)}
            if per_neuron:
                pop.params = pop.params.with_params(**per_neuron)
    # A population whose every neuron was removed does not exist on the chip (nor in Lava,
    # which refuses a process of shape (0,)); its synapses go with it.
    operands = {o.src for p in net.populations.values() if isinstance(p, (ProductPopulation, HostPopulation))
                for o in p.operands}
    empty = {n for n, p in net.populations.items()
             if p.size == 0 and isinstance(p, NeuronPopulation) and n not in operands and n != net.output_pop}
    for name in empty:
        del net.populations[name]
    net.projections = [p for p in net.projections if p.src not in empty and p.dst not in empty]
    for proj in net.projections:
        src, dst = net.populations[proj.src], net.populations.get(proj.dst)
        proj.cols = src.index
        proj.rows = None if dst is None else dst.index
        proj.keep_zeros = dense
        shrunk = proj.cols is not None or proj.rows is not None
        kernel = proj.kernel
        # a dense exporter still uses shared kernels for convolutions (as spikingjelly's does)
        wants_conv = kernel is not None and (kernel.impl == "conv" or (dense and not kernel.impl))
        if wants_conv and not shrunk and not proj.delay:
            proj.impl = "conv"
        else:
            proj.impl = "dense" if dense else "sparse"
        proj.synapses = count_synapses(proj, src, dst, dense)


def count_synapses(proj: Projection, src: Population, dst: Population | None, dense: bool) -> int:
    """Exact synapses of one projection between kept neurons: ⟨dst kept, P(src kept)⟩ with P
    the 0/1 pattern of the chain when each pair is joined by at most one path, else the
    nonzero entries of this projection's unrolled matrix (several chains from one source)."""
    mode = "pattern" if dense else "connect"
    closed = _closed_form(proj, src, dst, dense)
    if closed is not None:
        return closed
    if len(proj.chains) == 1 and proj.chains[0].unique_paths:
        chain = proj.chains[0]
        alive_in = np.zeros(src.logical_size, dtype=np.float32)  # path counts: exact in float32
        alive_in[src.index if src.index is not None else slice(None)] = 1.0
        with torch.no_grad():
            reach = chain.apply(torch.from_numpy(alive_in)[None], mode).reshape(-1).numpy()
        if dst is not None and dst.index is not None:
            reach = reach[dst.index]
        return int(round(float(reach.sum(dtype=np.float64))))
    if dense:
        m = proj.chains[0].matrix("pattern")
        for c in proj.chains[1:]:
            m = (m + c.matrix("pattern")).tocsr()
        m = m[proj.rows] if proj.rows is not None else m
        m = m[:, proj.cols] if proj.cols is not None else m
        m = m.tocsr()
        m.eliminate_zeros()
        return int(m.nnz)
    return int(proj.matrix().nnz)


def _closed_form(proj: Projection, src: Population, dst: Population | None, dense: bool) -> int | None:
    """The count without applying the chain, where it is one layer between populations that
    keep every neuron, followed only by nodes that pass every element on (reshapes, batch
    norms without a zero gain), or one pooling window followed by reshapes: the layer's
    stored synapses (ir.counting's closed form); a chain of reshapes alone joins each
    element to one."""
    if len(proj.chains) != 1 or src.index is not None or (dst is not None and dst.index is not None):
        return None
    if all(isinstance(n, Reshape) for n in proj.chains[0].nodes):   # one-to-one (a residual identity)
        return src.logical_size
    layer, *rest = proj.chains[0].nodes or [None]
    if isinstance(layer, Pool2d) and all(isinstance(n, Reshape) for n in rest):   # a window: no weights
        return pool_counts(layer, proj.chains[0].in_shape)
    if not isinstance(layer, (Conv2d, Linear)) or not all(
            isinstance(n, Reshape) or (isinstance(n, BatchNorm) and np.all(n.scale_shift()[0] != 0)) for n in rest):
        return None
    if not dense and np.any(layer.mask & (layer.weight == 0)):   # "connect": stored nonzero weights only
        return None
    if isinstance(layer, Conv2d):
        return conv_counts(layer, proj.chains[0].in_shape)[0]
    return linear_counts(layer)[0]
