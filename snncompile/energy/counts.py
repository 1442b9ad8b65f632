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
  the values.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import torch

from snncompile import schema
from snncompile.errors import EXIT_USAGE, SnnCompileError
from snncompile.ir import (
    AdaptiveAvgPool2d,
    Add,
    BatchNorm,
    Concat,
    Conv2d,
    Delay,
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
from snncompile.ir.counting import SYNAPSES, binary_scales, live_synapses
from snncompile.ir.registry import Registry
from snncompile.ir.semantics import STEP
from snncompile.ir.structure import Liveness, alive_of, is_population, liveness, spike_valued

_NO_LIVENESS = Liveness({}, {}, {})  # for rows that need no structural sweep

DEFAULT_BITS = 32   # width of weights, biases, activations and membranes unless a node says otherwise
ANY = "*"           # firing-rate key that applies to every layer not named otherwise


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
    weights_nnz: int = 0                  # stored nonzero weights
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

    @property
    def in_size(self) -> int:
        return int(np.prod(self.in_shape))

    @property
    def out_size(self) -> int:
        return int(np.prod(self.out_shape))


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


@dataclass
class ProductCount:
    """A spike·spike product (attention): no weights; ACs on coincident nonzero factors."""

    name: str
    mode: str                         # "matmul" | "hadamard"
    shape: tuple[int, ...]
    macs: int                         # ANN: every product, one pass
    acs: float | None = None          # SNN: nonzero products, per sample over all steps


ENERGY = Registry("energy count")


def fan_out(graph: IRGraph, name: str, live: Liveness) -> np.ndarray:
    """Stored synapses leaving every input element of synaptic node ``name`` towards
    elements that reach a live neuron (the adjoint of its 0/1 pattern), shape ``in_shape``."""
    node = graph.node(name)
    src = graph.inputs(name)[0]
    x = torch.zeros((1, *graph.node(src).shape), dtype=torch.float64, requires_grad=True)
    with torch.enable_grad():
        y = STEP(node)(node, [x], 1, "pattern")
        (g,) = torch.autograd.grad(y, x, torch.as_tensor(live.reaching[name][None].astype(np.float64)))
    return g[0].numpy()


def _role(graph: IRGraph, name: str) -> str:
    users = graph.users(name)
    if len(users) == 1 and isinstance(graph.node(users[0]), Neuron):
        return getattr(graph.node(users[0]), "role", "")
    return ""


@ENERGY.register(Conv2d, Linear)
def _layer(graph: IRGraph, name: str, node: Conv2d | Linear, live: Liveness) -> LayerCount:
    src = graph.inputs(name)[0]
    in_shape = tuple(graph.node(src).shape)
    nnz = int(node.mask.sum())
    bits = int(getattr(node, "weight_bits", DEFAULT_BITS))
    count = SYNAPSES(node)(graph, name, node, live)
    if isinstance(node, Conv2d):
        positions = int(np.prod(node.shape[1:]))
        macs_sparse, taps = nnz * positions, int(node.weight.shape[2] * node.weight.shape[3])
    else:
        macs_sparse, taps = (node.size // node.weight.shape[0]) * nnz, 0
    binary = bits == 1 or node.binary or binary_scales(node.weight, node.mask) is not None
    fan = live_synapses(graph, name, live, per_population=False) if src in live.multiplicity else None
    return LayerCount(
        name, node.op, in_shape, tuple(node.shape), count.synapses, count.synapses_dense, count.macs,
        spike_valued(graph, src), source=node.source, macs_sparse=int(macs_sparse),
        weights=int(node.weight.size), weights_nnz=nnz, rows=int(node.weight.shape[0]),
        fan_in=int(node.weight[0].size), bias=0 if node.bias is None else int(node.bias.size),
        weight_bits=bits, kernel_taps=taps, binary_weights=binary, alphas=int(node.weight.shape[0]),
        role=_role(graph, name), fan_synapses=fan)


@ENERGY.register(Neuron)
def _neurons(graph: IRGraph, name: str, node: Neuron, live: Liveness) -> NeuronCount:
    return NeuronCount(name, node.source, node.dynamics.name, tuple(node.shape), node.kept,
                       "soft" if node.dynamics.v_reset is None else "hard",
                       int(getattr(node, "state_bits", DEFAULT_BITS)), getattr(node, "role", ""), node.size)


@ENERGY.register(MatMul)
def _product(graph: IRGraph, name: str, node: MatMul, live: Liveness) -> ProductCount:
    a_shape = graph.node(graph.inputs(name)[0]).shape
    macs = int(np.prod(node.shape)) * (int(a_shape[-1]) if node.mode == "matmul" else 1)
    return ProductCount(name, node.mode, tuple(node.shape), macs)


@ENERGY.register(Input, Output, BatchNorm, Pool2d, Reshape, Add, Mask, Transpose, Scale, Reduce, Concat, Slice,
                 AdaptiveAvgPool2d, Delay)
def _free(graph: IRGraph, name: str, node, live: Liveness) -> None:
    """Costs nothing of its own: folded into the synapses around it, or a host-side view
    (an unfused max-pool or an average pool is priced with the layer it feeds; a delay is
    the synapses' own latency on a chip, the recurrent layer it feeds is priced as a layer)."""
    return None


def _counts(graph: IRGraph, kind: type, of: tuple[type, ...], live: Liveness | None = None) -> list:
    """The ENERGY rows of type ``kind`` (computed for nodes of types ``of`` only)."""
    live = liveness(graph) if live is None else live
    out = []
    for name, node in graph.items():
        if not isinstance(node, of):
            continue
        row = ENERGY(node)(graph, name, node, live)
        if isinstance(row, kind):
            out.append(row)
    return out


def static_counts(graph: IRGraph, live: Liveness | None = None) -> list[LayerCount]:
    """Per synaptic layer: synapses, MACs, weight storage facts (no spikes needed)."""
    return _counts(graph, LayerCount, (Conv2d, Linear), live)


def neuron_counts(graph: IRGraph) -> list[NeuronCount]:
    return _counts(graph, NeuronCount, (Neuron,), live=_NO_LIVENESS)


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
                   neurons: list[NeuronCount] | None = None, live: Liveness | None = None) -> None:
    """Fill exact SOPs / SNN MACs (and neuron spikes) from simulated values
    ({node: [T, B, *shape]}), per sample. ``live``: the sweep ``rows`` were counted with."""
    _check_values(graph, values, [graph.inputs(r.name)[0] for r in rows])
    if live is None and rows:
        live = liveness(graph)
    for row in rows:
        src = graph.inputs(row.name)[0]
        v = np.asarray(values[src])
        T, B = v.shape[:2]
        if row.input_spiking:
            fo = fan_out(graph, row.name, live)
            flat = v.reshape(T, B, -1)
            row.sops = float(np.tensordot(flat, fo.reshape(-1), axes=([2], [0])).sum() / B)
            row.input_spikes = float(flat.sum() / B)
            row.firing_rate_in = float(v.mean())
        else:
            row.snn_macs = float(row.macs_sparse * T)
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
    for row in static_counts(graph):
        if row.input_spiking:
            rates[row.name] = float(np.asarray(values[graph.inputs(row.name)[0]]).mean())
    for nc in neuron_counts(graph):  # per live neuron: removed ones never fire
        s = np.asarray(values[nc.name])
        rates[nc.name] = float(s.sum() / (s.shape[0] * s.shape[1] * nc.neurons)) if nc.neurons else 0.0
    return rates


class _Rates:
    """Looks up firing rates given per synaptic layer or per neuron (IR name or module path)."""

    def __init__(self, graph: IRGraph, rates: Mapping[str, float]) -> None:
        self.graph = graph
        self.rates: dict[str, float] = {}
        alias: dict[str, str] = {}
        for name, node in graph.items():
            if isinstance(node, (Conv2d, Linear, Neuron)):
                alias[name] = name
                if node.source:
                    alias.setdefault(node.source, name)
        unknown = []
        for key, value in rates.items():
            if isinstance(value, bool) or not isinstance(value, (int, float)) \
                    or not math.isfinite(value) or value < 0:
                raise SnnCompileError(f"firing rate {key!r} = {value!r} is not a finite, non-negative number",
                                      "rates are mean spikes per neuron per step, e.g. 0.12", EXIT_USAGE)
            if key == ANY:
                self.rates[ANY] = float(value)
            elif key in alias:
                self.rates[alias[key]] = float(value)
            else:
                unknown.append(key)
        if unknown:
            names = [n for n in alias if n == alias[n]]
            raise SnnCompileError(f"firing rates given for unknown layer(s) {', '.join(map(repr, unknown))}",
                                  f"use IR names or module paths of synaptic or neuron layers "
                                  f"({', '.join(names[:12])}{', ...' if len(names) > 12 else ''}) or "
                                  f"'{ANY}' for all", EXIT_USAGE)
        for name, value in self.rates.items():
            if name != ANY and isinstance(graph.node(name), Neuron) and value > 1:
                raise SnnCompileError(f"firing rate of neuron layer {name!r} is {value} > 1",
                                      "a neuron fires at most once per step", EXIT_USAGE)

    def value(self, name: str, _seen: frozenset = frozenset()) -> float | None:
        """Mean value per element per step of node ``name``'s output, if it can be told (a
        delay passes its input's mean rate on)."""
        if name in self.rates:
            return self.rates[name]
        if name in _seen:   # a loop of sums with no neuron on it
            return None
        seen = _seen | {name}
        node = self.graph.node(name)
        if isinstance(node, Neuron):
            return self.rates.get(ANY)
        if isinstance(node, (Reshape, Delay)):
            return self.value(self.graph.inputs(name)[0], seen)
        if isinstance(node, Mask):  # a static keep-mask passes the kept fraction on average
            v = self.value(self.graph.inputs(name)[0], seen)
            return None if v is None else v * float(np.mean(node.keep))
        if isinstance(node, Add):
            parts = [self.value(s, seen) for s in self.graph.inputs(name)]
            return None if any(p is None for p in parts) else float(sum(parts))
        return None

    def layer_input(self, row: LayerCount) -> float | None:
        if row.name in self.rates:
            return self.rates[row.name]
        v = self.value(self.graph.inputs(row.name)[0])
        return self.rates.get(ANY) if v is None else v

    def neuron(self, name: str) -> float | None:
        if name in self.rates:
            return self.rates[name]
        # A synaptic layer reading this neuron directly (through reshapes, delays) tells its rate.
        frontier, seen = list(self.graph.users(name)), set()
        while frontier:
            user = frontier.pop()
            if user in seen:
                continue
            seen.add(user)
            node = self.graph.node(user)
            if isinstance(node, (Reshape, Delay)):
                frontier.extend(self.graph.users(user))
            elif isinstance(node, (Conv2d, Linear)) and user in self.rates:
                return self.rates[user]
        return self.rates.get(ANY)


def analytic_counts(graph: IRGraph, rows: list[LayerCount], rates: Mapping[str, float], steps: int,
                    neurons: list[NeuronCount] | None = None) -> None:
    """Fill SOPs from firing rates without a forward pass: SOP = rate·T·synapses.

    ``rates`` maps synaptic layers (their input rate), neuron layers (their output rate,
    traced through reshapes and residual adds) or ``"*"`` (every other layer) to a rate.
    """
    table = _Rates(graph, rates)
    missing = []
    for row in rows:
        if row.input_spiking:
            r = table.layer_input(row)
            if r is None:
                missing.append(row.name)
                continue
            row.firing_rate_in = r
            row.input_spikes = r * steps * row.in_size
            # r sums the rates of the populations an input element adds up: per element
            row.sops = r * steps * (row.synapses if row.fan_synapses is None else row.fan_synapses)
        else:
            row.snn_macs = float(row.macs_sparse * steps)
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


def parse_firing_rates(text: str) -> dict[str, float]:
    """Rates from the command line: ``0.1`` (every layer), ``name=0.1,name2=0.05`` (IR names
    or module paths, ``*`` for the rest), or a JSON file: ``{"name": rate}`` or a previous
    report (``report.json`` or its ``energy`` object; its measured rates are reused)."""
    import json
    from pathlib import Path

    text = text.strip()
    if text.endswith(".json"):
        path = Path(text)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise SnnCompileError(f"cannot read firing rates {path}: {exc.strerror}",
                                  "pass an existing .json file", EXIT_USAGE) from None
        except ValueError as exc:
            raise SnnCompileError(f"firing rates {path} is not JSON: {exc}", "fix the file", EXIT_USAGE) from None
        if isinstance(data, dict) and isinstance(data.get("energy"), dict):
            data = data["energy"]
        if isinstance(data, dict) and isinstance(data.get("layers"), list):
            rates = {}
            for row in data["layers"]:
                r = row.get("firing_rate_out") if row.get("op") == "neuron" else row.get("firing_rate_in")
                if r is not None:
                    rates[row["name"]] = r
            if not rates:
                raise SnnCompileError(f"{path} holds no measured firing rates",
                                      "use a report of a run with --input", EXIT_USAGE)
            return rates
        if not isinstance(data, dict):
            raise SnnCompileError(f"firing rates {path} is not an object of name → rate",
                                  'e.g. {"sn1": 0.12, "*": 0.1}', EXIT_USAGE)
        return _checked_rates(str(path), dict(data))
    try:
        return _checked_rates("--firing-rates", {ANY: float(text)})
    except ValueError:
        pass
    rates: dict[str, float] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        key, sep, value = part.partition("=")
        try:
            if not sep or not key.strip():
                raise ValueError
            rates[key.strip()] = float(value)
        except ValueError:
            raise SnnCompileError(f"cannot read firing rate {part!r}",
                                  "use 0.1, name=0.1,name2=0.05 ('*' for the rest) or a .json file",
                                  EXIT_USAGE) from None
    if not rates:
        raise SnnCompileError("no firing rates given", "e.g. --firing-rates 0.1", EXIT_USAGE)
    return _checked_rates("--firing-rates", rates)


def _checked_rates(where: str, rates: dict) -> dict[str, float]:
    """Each rate is a spike probability per neuron and step (``schema.FIRING_RATE``)."""
    return {str(k): schema.check_value(where, f"firing rate of {k}", v, schema.FIRING_RATE,
                                       "a firing rate is spikes per neuron per step, in [0, 1]")
            for k, v in rates.items()}


def product_counts(graph: IRGraph, values: Mapping[str, np.ndarray] | None = None) -> list[ProductCount]:
    out = _counts(graph, ProductCount, (MatMul,), live=_NO_LIVENESS)
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
    neuromorphic core, one per (source, target) pair). Per sample."""

    src: str
    dst: str
    synapses: int
    sops: float | None = None     # spikes delivered over all steps (exact mode)

    @property
    def name(self) -> str:
        return f"{self.src}→{self.dst}"


def _direct_sources(graph: IRGraph, name: str, seen: set[str] | None = None) -> set[str]:
    """Populations reaching ``name`` through nodes that are neither synaptic nor populations."""
    seen = set() if seen is None else seen
    if name in seen:
        return set()
    seen.add(name)
    node = graph.node(name)
    if is_population(graph, name):
        return set() if isinstance(node, Input) else {name}
    if isinstance(node, (Conv2d, Linear)):
        return set()
    out: set[str] = set()
    for s in graph.inputs(name):
        out |= _direct_sources(graph, s, seen)
    return out


def _through(graph: IRGraph, src: str, end: str, x: torch.Tensor) -> torch.Tensor:
    """``x`` (values of ``src``, [N, *shape]) carried to ``end`` along the direct paths only
    (synaptic nodes and other populations contribute nothing), with 0/1 weights."""
    vals: dict[str, torch.Tensor] = {src: x}
    for name in graph.topo():
        if name == src or name in vals and name != end:
            continue
        node = graph.node(name)
        ins = graph.inputs(name)
        if not ins or not any(s in vals for s in ins) or is_population(graph, name) \
                or isinstance(node, (Conv2d, Linear)):
            continue
        args = [vals.get(s, torch.zeros((x.shape[0], *graph.node(s).shape), dtype=x.dtype)) for s in ins]
        vals[name] = STEP(node)(node, args, 1, "pattern")
        if name == end:
            break
    return vals.get(end, torch.zeros((x.shape[0], *graph.node(end).shape), dtype=x.dtype))


def shortcut_counts(graph: IRGraph, live: Liveness, values: Mapping[str, np.ndarray] | None = None
                    ) -> list[ShortcutCount]:
    """Every direct (layer-free) connection between populations into a neuron population."""
    out = []
    for dst in graph.of_type(Neuron):
        feed = graph.inputs(dst)[0]
        alive = torch.as_tensor(alive_of(graph, dst).astype(np.float64))
        for src in sorted(_direct_sources(graph, feed)):
            with torch.no_grad():
                ind = torch.as_tensor(alive_of(graph, src)[None].astype(np.float64))
                paths = _through(graph, src, feed, ind)[0]   # > 1 where a + a joins a pair twice
                syn = int(((paths > 0) * alive).sum())        # one synapse per joined pair, as lowered
                if not syn:
                    continue
                row = ShortcutCount(src, dst, syn)
                if values is not None:   # one event per spike and synapse, whatever its weight
                    v = torch.as_tensor(np.asarray(values[src], dtype=np.float64))
                    T, B = v.shape[:2]
                    got = _through(graph, src, feed, v.reshape(T * B, *v.shape[2:]))
                    per_pair = torch.where(paths > 0, alive / paths.clamp(min=1), torch.zeros_like(paths))
                    row.sops = float((got * per_pair).sum() / B)
            out.append(row)
    return out
