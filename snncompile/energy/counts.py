"""Exact operation counts per synaptic and neuron layer, from the IR (and spikes, for SOPs).

Conventions (see docs/energy.md):
- ``synapses``: (pre, post) pairs joined by a stored synapse (the IR ``mask``; the
  ``prune_synapses`` pass drops zero-valued ones); convolutions count over output
  positions with padding excluded, and synapses into removed neurons (``Neuron.alive``)
  do not count. ``synapses_dense``: the same with every weight present.
- ``macs``: multiply-accumulates of the ANN with the same topology for one forward pass
  (conv: Cout·Hout·Wout·Cin/groups·k², padding included, as published MAC tables count).
  ``macs_sparse``: the same counting only nonzero weights.
- ``sops``: Σ over time steps and input spikes of that input's fan-out, per sample.
  An input that is a sum of spikes (residual add) of value n counts n times. Since the
  fan-outs of all inputs sum to ``synapses``, the analytic form is rate·T·synapses.
- Which layer inputs are spikes is read from the graph (:func:`spike_valued`), never from
  the values. Which populations a layer joins, and between which kept neurons, is read
  from the netlist (:mod:`snncompile.energy.structure`).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import torch

from snncompile.energy.rates import ANY, Rates
from snncompile.energy.structure import Layers, Shortcut, layers_of
from snncompile.errors import EXIT_USAGE, SnnCompileError
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
from snncompile.ir.counting import SYNAPSES, all_stored, binary_scales, nonzero_weights_of
from snncompile.ir.host import MaxPool
from snncompile.ir.registry import Registry
from snncompile.ir.semantics import STEP
from snncompile.ir.structure import adjoint, binary_spikes, spike_valued, time_invariant
from snncompile.netlist import Netlist

DEFAULT_BITS = 32   # width of weights, biases, activations and membranes unless a node says otherwise


@dataclass
class LayerCount:
    """One synaptic layer (Conv2d or Linear). Counts are per sample."""

    name: str
    op: str
    in_shape: tuple[int, ...]
    out_shape: tuple[int, ...]
    synapses: int
    synapses_dense: int
    macs: int
    input_spiking: bool
    firing_rate_in: float | None = None   # mean input value per input element per step
    sops: float | None = None             # per sample, over all steps (spiking input)
    snn_macs: float | None = None         # per sample, over all steps (real-valued input)
    # static facts
    source: str = ""
    macs_sparse: int = 0                  # MACs with nonzero weights only (padding included)
    weights: int = 0                      # stored weights, dense
    weights_nnz: int = 0                  # stored weights (the mask; nonzero once zeros are pruned)
    weights_nonzero: int = 0              # stored weights with a nonzero value (weight sparsity)
    rows: int = 0                         # output channels / features (CSR rows)
    fan_in: int = 0                       # weights per row: Cin/groups·kh·kw or in_features
    bias: int = 0                         # number of bias values
    weight_bits: int = DEFAULT_BITS
    kernel_taps: int = 0                  # kh·kw (conv), 0 (linear)
    binary_weights: bool = False          # the nonzero weights are ±α (or weight_bits == 1)
    alphas: int = 0                       # scales α a binarized layer keeps (one per row)
    role: str = ""                        # "or": the synapses of a max-pool lowered to OR neurons
    input_spikes: float | None = None     # θ: Σ input values over steps, per sample
    fan_synapses: int | None = None       # synapses once per input element (differs from ``synapses``
                                          # when the input sums several populations)
    outputs: int | None = None            # output elements that reach a kept neuron (None: all)
    ir_name: str = ""                     # the IR node, once ``name`` is the module path
    once: bool = False                    # real-valued input the same at every step (made from a
                                          # window host): computed once per sample, not every step

    def evaluations(self, steps: int) -> int:
        """How often the layer computes per sample: every step, or once (``once``)."""
        return 1 if self.once else steps

    @property
    def in_size(self) -> int:
        return int(math.prod(self.in_shape))   # np.prod costs ~5 µs a call; priced per variant

    @property
    def out_size(self) -> int:
        return int(math.prod(self.out_shape))

    @property
    def kept_out(self) -> int:
        """Output elements computed: those feeding a kept neuron (removed ones cost nothing)."""
        return self.out_size if self.outputs is None else self.outputs


@dataclass
class NeuronCount:
    """One neuron population. Spikes are per sample over all steps (None if unknown)."""

    name: str
    source: str
    model: str
    shape: tuple[int, ...]
    neurons: int
    reset: str                            # "hard" | "soft"
    state_bits: int = DEFAULT_BITS
    role: str = ""                        # "or": memoryless OR neurons of a lowered max-pool
    size: int = 0                         # neurons before removal of dead ones
    firing_rate: float | None = None      # spikes per neuron per step
    spikes: float | None = None
    ir_name: str = ""


@dataclass
class ProductCount:
    """A spike·spike product (attention): no weights; ACs on coincident nonzero factors."""

    name: str
    mode: str                         # "matmul" | "hadamard"
    shape: tuple[int, ...]
    macs: int                         # ANN: every product, one pass
    acs: float | None = None          # SNN: nonzero products, per sample over all steps
    ir_name: str = ""


@dataclass
class HostCount:
    """A host operation (off the neuromorphic cores): its operations per sample and step
    (:class:`snncompile.ir.host.HostCost`), and the values crossing the core/host boundary
    (``values_in`` graded values read from the cores, ``values_out`` sent back). ``once``: every
    input is the same at every step (made from a window host), so the operations and the values
    read happen once per sample; ``out_once``: the output is, so it is sent once."""

    name: str
    source: str
    op: str
    shape: tuple[int, ...]
    macs: int
    comparisons: int
    transcendentals: int
    values_in: int
    values_out: int
    ir_name: str = ""
    once: bool = False
    out_once: bool = False


ENERGY = Registry("energy count")


def fan_out(graph: IRGraph, name: str, reaching: np.ndarray) -> np.ndarray:
    """Stored synapses leaving every input element of synaptic node ``name`` towards
    ``reaching`` output elements (the adjoint of its 0/1 pattern), shape ``in_shape``."""
    node = graph.node(name)
    src = graph.inputs(name)[0]
    x = torch.zeros((1, *graph.node(src).shape), dtype=torch.float64, requires_grad=True)
    with torch.enable_grad():
        y = STEP(node)(node, [x], 1, "pattern")
        (g,) = adjoint(y, [x], torch.as_tensor(reaching[None].astype(np.float64)))
    return g[0].numpy()


def _pattern_sum(node: Conv2d | Linear, x: np.ndarray, dense: bool) -> np.ndarray:
    """Per output element: Σ of ``x`` over the inputs it reads through a stored weight
    (every weight with ``dense``)."""
    if dense:
        node = copy.copy(node)
        node.mask = np.ones(node.weight.shape, dtype=bool)
    with torch.no_grad():
        return STEP(node)(node, [torch.from_numpy(x[None].astype(np.float64))], 1, "pattern")[0].numpy()


def _macs(graph: IRGraph, name: str, node: Conv2d | Linear, layers: Layers, dense: int,
          nnz: int) -> tuple[int, int, int]:
    """(MACs, MACs with stored weights only, outputs computed), counting neither the outputs that reach no
    kept neuron nor the inputs from removed neurons: no variant computes them (padding
    still counts, as in published MAC tables)."""
    rows = int(node.weight.shape[0])
    if not layers.removes_neurons:   # every output is computed: the closed forms
        return int(dense), int((node.size // rows) * nnz), int(node.size)
    per_row = np.full(rows, node.weight[0].size) if all_stored(node.mask) \
        else node.mask.reshape(rows, -1).sum(axis=1)
    reach = np.asarray(layers.reaching(name), dtype=bool)
    kept = reach.reshape(rows, -1).sum(axis=1) if isinstance(node, Conv2d) \
        else reach.reshape(-1, rows).sum(axis=0)          # kept outputs per channel / feature
    removed_in = (layers.sources(name) == 0).astype(np.float64)
    if not removed_in.any():
        return int(kept.sum() * node.weight[0].size), int((kept * per_row).sum()), int(kept.sum())
    macs = kept.sum() * node.weight[0].size - (_pattern_sum(node, removed_in, True) * reach).sum()
    sparse = (kept * per_row).sum() - (_pattern_sum(node, removed_in, False) * reach).sum()
    return int(round(float(macs))), int(round(float(sparse))), int(kept.sum())


@ENERGY.register(Conv2d, Linear)
def _layer(graph: IRGraph, name: str, node: Conv2d | Linear, layers: Layers) -> LayerCount:
    src = graph.inputs(name)[0]
    in_shape = tuple(graph.node(src).shape)
    nnz = int(node.mask.size) if all_stored(node.mask) else int(node.mask.sum())
    bits = int(getattr(node, "weight_bits", DEFAULT_BITS))
    count = SYNAPSES(node)(graph, name, node, None)   # closed form: dense count and MACs
    synapses, fan = layers.synapses(name)             # between kept neurons, as lowered
    taps = int(node.weight.shape[2] * node.weight.shape[3]) if isinstance(node, Conv2d) else 0
    macs, macs_sparse, outputs = _macs(graph, name, node, layers, count.macs, nnz)
    binary = bits == 1 or node.binary or binary_scales(node.weight, node.mask) is not None
    return LayerCount(
        name, node.op, in_shape, tuple(node.shape), synapses, count.synapses_dense, macs,
        spike_valued(graph, src), source=node.source, macs_sparse=int(macs_sparse),
        weights=int(node.weight.size), weights_nnz=nnz, rows=int(node.weight.shape[0]),
        fan_in=int(node.weight[0].size), bias=0 if node.bias is None else int(node.bias.size),
        weight_bits=bits, kernel_taps=taps, binary_weights=binary, alphas=int(node.weight.shape[0]),
        role=layers.role(name), fan_synapses=fan, outputs=outputs, once=time_invariant(graph, src))


@ENERGY.register(Neuron)
def _neurons(graph: IRGraph, name: str, node: Neuron, layers: Layers | None) -> NeuronCount:
    return NeuronCount(name, node.source, node.dynamics.name, tuple(node.shape), node.kept,
                       "soft" if node.dynamics.v_reset is None else "hard",
                       int(getattr(node, "state_bits", DEFAULT_BITS)), getattr(node, "role", ""), node.size)


@ENERGY.register(MatMul)
def _product(graph: IRGraph, name: str, node: MatMul, layers: Layers | None) -> ProductCount:
    a_shape = graph.node(graph.inputs(name)[0]).shape
    macs = int(np.prod(node.shape)) * (int(a_shape[-1]) if node.mode == "matmul" else 1)
    return ProductCount(name, node.mode, tuple(node.shape), macs)


@ENERGY.register(Host)
def _host(graph: IRGraph, name: str, node: Host, layers: Layers | None) -> HostCount:
    ins = [tuple(graph.node(s).shape) for s in graph.inputs(name)]
    cost = node.fn.cost(ins, tuple(node.shape))
    crossing = [int(np.prod(s)) for s, src in zip(ins, graph.inputs(name)) if not _on_host(graph, src)]
    out = node.size if any(not _host_user(graph, u) for u in graph.users(name)) else 0
    once = all(time_invariant(graph, s) for s in graph.inputs(name))
    return HostCount(name, node.source, node.fn.describe(), tuple(node.shape), cost.macs, cost.comparisons,
                     cost.transcendentals, sum(crossing), out, once=once, out_once=once or node.fn.window)


_VIEWS = (Reshape, Transpose, Slice)


def _on_host(graph: IRGraph, name: str) -> bool:
    """``name``'s values are made on the host (a host operation's output, reshaped or sliced)."""
    while isinstance(graph.node(name), _VIEWS):
        name = graph.inputs(name)[0]
    return isinstance(graph.node(name), Host)


def _host_user(graph: IRGraph, name: str) -> bool:
    """Every use of ``name`` (through reshapes) is a host operation: its values stay on the host."""
    node = graph.node(name)
    if isinstance(node, _VIEWS):
        return all(_host_user(graph, u) for u in graph.users(name))
    return isinstance(node, Host)


@ENERGY.register(Pool2d)
def _pool(graph: IRGraph, name: str, node: Pool2d, layers: Layers | None) -> HostCount | None:
    """A max-pool of real values (BN output) runs on the host; any other pool is free (an OR
    of spikes is priced as neurons, an average is folded into the layer it feeds)."""
    src = graph.inputs(name)[0]
    if node.mode != "max" or binary_spikes(graph, src):
        return None
    fn = MaxPool(node.kernel, node.stride, node.padding)
    cost = fn.cost([tuple(graph.node(src).shape)], tuple(node.shape))
    once = time_invariant(graph, src)
    return HostCount(name, node.source, fn.describe(), tuple(node.shape), cost.macs, cost.comparisons,
                     cost.transcendentals, graph.node(src).size, node.size, once=once, out_once=once)


def host_counts(graph: IRGraph, order: list[str] | None = None) -> list[HostCount]:
    """Every host partition's operations per sample and step (Host nodes, max-pools of real values)."""
    return _counts(graph, HostCount, (Host, Pool2d), order=order)


@ENERGY.register(Input, Output, BatchNorm, Reshape, Add, Mask, Transpose, Scale, Reduce, Concat, Slice,
                 AdaptiveAvgPool2d, Delay)
def _free(graph: IRGraph, name: str, node, layers: Layers | None) -> None:
    """Costs nothing of its own: folded into the synapses around it, or a host-side view
    (an unfused max-pool or an average pool is priced with the layer it feeds; a delay is
    the synapses' own latency on a chip, the recurrent layer it feeds is priced as a layer)."""
    return None


def _counts(graph: IRGraph, kind: type, of: tuple[type, ...], layers: Layers | None = None,
            order: list[str] | None = None) -> list:
    """The ENERGY rows of type ``kind`` (computed for nodes of types ``of`` only)."""
    out = []
    for name in graph.topo() if order is None else order:
        node = graph.node(name)
        if not isinstance(node, of):
            continue
        row = ENERGY(node)(graph, name, node, layers)
        if isinstance(row, kind):
            out.append(row)
    return out


def static_counts(graph: IRGraph, net: Netlist | None = None, layers: Layers | None = None,
                  order: list[str] | None = None, nonzero: bool = True) -> list[LayerCount]:
    """Per synaptic layer: synapses, MACs, weight storage facts (no spikes needed).
    ``net``: the netlist lowered from ``graph`` (lowered here if not given). ``nonzero``:
    count the nonzero weights too (else ``weights_nonzero`` is 0: see :func:`count_nonzero`)."""
    rows = _counts(graph, LayerCount, (Conv2d, Linear), layers_of(graph, net) if layers is None else layers,
                   order)
    if nonzero:
        count_nonzero(graph, rows)
    return rows


def count_nonzero(graph: IRGraph, rows: list) -> None:
    """Fill ``weights_nonzero`` of each row of a synaptic layer (by its ``ir_name``). The
    figure is only reported, never priced, so an estimate counts last: reading every weight
    (ResNet-18: 47 MB) evicts the caches the rest of its work runs in (~1 ms a ticket when
    each layer's count came between the others' rows)."""
    for row, n in zip(rows, nonzero_weights_of([graph.node(row.ir_name or row.name) for row in rows])):
        row.weights_nonzero = n


def neuron_counts(graph: IRGraph, order: list[str] | None = None) -> list[NeuronCount]:
    return _counts(graph, NeuronCount, (Neuron,), order=order)


def _check_values(graph: IRGraph, values: Mapping[str, np.ndarray], names: list[str]) -> None:
    for n in names:
        if n not in values:
            raise SnnCompileError(f"no simulated values for IR node {n!r}",
                                  "simulate with keep_values=True and pass result.values", EXIT_USAGE)
        v = values[n]
        want = tuple(graph.node(n).shape)
        if v.ndim != 2 + len(want) or tuple(v.shape[2:]) != want:
            raise SnnCompileError(f"values of {n!r} have shape {tuple(v.shape)}, expected [T, B, "
                                  f"{', '.join(map(str, want))}]", "pass simulate(...).values", EXIT_USAGE)


def dynamic_counts(graph: IRGraph, rows: list[LayerCount], values: Mapping[str, np.ndarray],
                   neurons: list[NeuronCount] | None = None, layers: Layers | None = None) -> None:
    """Fill exact SOPs / SNN MACs (and neuron spikes) from simulated values
    ({node: [T, B, *shape]}), per sample. ``layers``: the structure ``rows`` were counted with."""
    _check_values(graph, values, [graph.inputs(r.name)[0] for r in rows])
    if layers is None and rows:
        layers = layers_of(graph)
    for row in rows:
        src = graph.inputs(row.name)[0]
        v = np.asarray(values[src])
        T, B = v.shape[:2]
        if row.input_spiking:
            fo = fan_out(graph, row.name, layers.reaching(row.name))
            flat = v.reshape(T, B, -1)
            row.sops = float(np.tensordot(flat, fo.reshape(-1), axes=([2], [0])).sum() / B)
            row.input_spikes = float(flat.sum() / B)
            row.firing_rate_in = float(v.mean())
        else:
            row.snn_macs = float(row.macs_sparse * row.evaluations(T))
    for nc in neurons or []:
        _check_values(graph, values, [nc.name])
        s = np.asarray(values[nc.name])
        T, B = s.shape[:2]
        nc.spikes = float(s.sum() / B)
        nc.firing_rate = nc.spikes / (T * nc.neurons) if nc.neurons else 0.0


def measured_firing_rates(graph: IRGraph, values: Mapping[str, np.ndarray]) -> dict[str, float]:
    """Input firing rate of every spike-input synaptic layer and output rate of every neuron
    population, measured from simulated values; feed it back as ``firing_rates``."""
    rates: dict[str, float] = {}
    for name in graph.topo():
        if isinstance(graph.node(name), (Conv2d, Linear)) and spike_valued(graph, graph.inputs(name)[0]):
            rates[name] = float(np.asarray(values[graph.inputs(name)[0]]).mean())
    for nc in neuron_counts(graph):  # per live neuron: removed ones never fire
        s = np.asarray(values[nc.name])
        rates[nc.name] = float(s.sum() / (s.shape[0] * s.shape[1] * nc.neurons)) if nc.neurons else 0.0
    return rates


def analytic_counts(graph: IRGraph, rows: list[LayerCount], rates: Mapping[str, float], steps: int,
                    neurons: list[NeuronCount] | None = None, names: Mapping[str, str] | None = None) -> None:
    """Fill SOPs from firing rates without a forward pass: SOP = rate·T·synapses.

    ``rates`` maps synaptic layers (their input rate), neuron layers (their output rate,
    traced through reshapes and residual adds) or ``"*"`` (every other layer) to a rate.
    ``names``: the graph's :func:`~snncompile.ir.labels.labels`, when the caller has them.
    """
    table = Rates(graph, rates, names)
    missing = []
    for row in rows:
        if row.input_spiking:
            r = table.layer_input(row.name)
            if r is None:
                missing.append(row.name)
                continue
            row.firing_rate_in = r
            row.input_spikes = r * steps * row.in_size
            # r sums the rates of the populations an input element adds up: per element
            row.sops = r * steps * (row.synapses if row.fan_synapses is None else row.fan_synapses)
        else:
            row.snn_macs = float(row.macs_sparse * row.evaluations(steps))
    if missing:
        raise SnnCompileError(f"no firing rate for the spiking input of {', '.join(missing)}",
                              f"give a rate for these layers (IR name or module path), for the neurons "
                              f"feeding them (a max-pool in between changes the rate: name the layer), "
                              f"or '{ANY}'",
                              EXIT_USAGE)
    for nc in neurons or []:
        r = table.neuron(nc.name)
        nc.firing_rate = r
        nc.spikes = None if r is None else r * steps * nc.neurons


def product_counts(graph: IRGraph, values: Mapping[str, np.ndarray] | None = None,
                   order: list[str] | None = None) -> list[ProductCount]:
    out = _counts(graph, ProductCount, (MatMul,), order=order)
    for row in out:
        if values is None:
            continue
        a_name, b_name = graph.inputs(row.name)
        a = np.asarray(values[a_name]) != 0
        b = np.asarray(values[b_name]) != 0
        batch = a.shape[1]
        if row.mode == "matmul":  # out_ij += a_ik for every nonzero b_kj: one AC per pair
            # (heads and other leading axes are batch axes of the product)
            row.acs = float(np.matmul(a.astype(np.float64), b.astype(np.float64)).sum() / batch)
        else:
            row.acs = float(np.count_nonzero(a & b) / batch)
    return out


@dataclass
class ShortcutCount:
    """Synapses from population ``src`` into neuron population ``dst`` that cross no synaptic
    layer: a residual shortcut of spikes, or the input of an OR relay (weight-1 synapses on a
    neuromorphic core, one per (source, target) pair, as lowered). Per sample."""

    src: str
    dst: str
    synapses: int
    sops: float | None = None     # spikes delivered over all steps (exact mode)
    ir_name: str = ""             # "src→dst" in IR names, once src and dst are module paths

    @property
    def name(self) -> str:
        return f"{self.src}→{self.dst}"


def _pair_fan_out(sc: Shortcut) -> np.ndarray:
    """Per kept source neuron: the kept targets its shortcut reaches (one synapse per pair)."""
    proj = sc.proj
    m = proj.chains[0].matrix("pattern")
    for c in proj.chains[1:]:
        m = (m + c.matrix("pattern")).tocsr()
    m = m[proj.rows] if proj.rows is not None else m
    m = (m[:, proj.cols] if proj.cols is not None else m).tocsc()
    m.eliminate_zeros()
    return np.diff(m.indptr).astype(np.float64)


def shortcut_counts(layers: Layers, values: Mapping[str, np.ndarray] | None = None) -> list[ShortcutCount]:
    """Every projection the lowering made without a synaptic layer into a neuron population;
    with ``values``, one SOP per spike and synapse (whatever its weight)."""
    out = []
    for sc in layers.shortcuts():
        row = ShortcutCount(sc.src, sc.dst, sc.synapses)
        if values is not None:
            v = np.asarray(values[sc.src], dtype=np.float64)
            B = v.shape[1]
            flat = v.reshape(v.shape[0] * B, -1)
            if sc.proj.cols is not None:
                flat = flat[:, sc.proj.cols]
            row.sops = float((flat @ _pair_fan_out(sc)).sum() / B)
        out.append(row)
    return out
