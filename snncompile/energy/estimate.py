"""Energy of four variants of one topology, per layer, under a cited cost model.

- ``ann``: the same topology with neurons as ReLU, one pass, dense weights (or only the
  nonzero ones with ``ann_sparse``).
- ``snn``: the spiking network with full-precision weights (the node's ``weight_bits``;
  32 for a node the binarize pass made 1-bit) and the model's sparsity and spikes: SOPs on
  spike inputs, MACs on real-valued inputs every step, neuron updates (integrate, leak,
  compare, reset).
- ``snn_binary``: the same SNN with 1-bit weights ±α (α folded into the threshold): every
  SOP is a sign-controlled integer add; layers on real-valued input stay full precision.
- ``bnn``: the binary ANN: layers whose SNN input is spikes do XNOR-popcount bit-ops
  (priced BOPs/64 as in Bi-Real Net / ReActNet), layers on real-valued input stay real.

All counts and energies are per sample (one inference of ``steps`` time steps). The report's
``model_variant`` says which SNN variant the compiled model itself is.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from snncompile.energy.costs import CostModel, load_cost_model
from snncompile.energy.counts import (
    DEFAULT_BITS,
    HostCount,
    LayerCount,
    NeuronCount,
    ProductCount,
    ShortcutCount,
    analytic_counts,
    count_nonzero,
    dynamic_counts,
    host_counts,
    neuron_counts,
    product_counts,
    shortcut_counts,
    static_counts,
)
from snncompile.energy.host import HOST_SOURCE, host_energy, host_operations
from snncompile.energy.pricing import (
    Tally,
    binarized,
    fp_bits,
    in_ann,
    layer_weights,
    neuron_tally,
    price,
    synaptic_tally,
)
from snncompile.energy.report import (
    SPIKING,
    VARIANTS,
    AnnTotal,
    BnnTotal,
    Breakdown,
    EnergyReport,
    HostRow,
    NeuronRow,
    Priced,
    ProductRow,
    Row,
    Savings,
    ShortcutRow,
    SnnTotal,
    Storage,
    SynapticRow,
    Variants,
    num,
)
from snncompile.energy.structure import Layers, layers_of
from snncompile.errors import EXIT_USAGE, SnnCompileError
from snncompile.ir import Conv2d, IRGraph, Linear, Neuron
from snncompile.ir.labels import labels
from snncompile.netlist import Netlist
from snncompile.threads import one_thread


def _state_bits(graph: IRGraph, name: str) -> int:
    """Membrane width of the neurons a synaptic layer's output accumulates into."""
    frontier, seen = list(graph.users(name)), set()
    while frontier:
        user = frontier.pop(0)
        if user in seen:
            continue
        seen.add(user)
        node = graph.node(user)
        if isinstance(node, Neuron):
            return int(getattr(node, "state_bits", DEFAULT_BITS))
        if not isinstance(node, (Conv2d, Linear)):
            frontier.extend(graph.users(user))
    return DEFAULT_BITS


def _ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None or b <= 0 else float(a / b)


class _Pricer:
    """Prices rows in every variant and keeps the totals per variant."""

    def __init__(self, cost: CostModel, steps: int, ann_sparse: bool, have_snn: bool) -> None:
        self.cost, self.steps, self.ann_sparse, self.have_snn = cost, steps, ann_sparse, have_snn
        self.word = cost.memory["word_bits"] if cost.memory else DEFAULT_BITS
        self.totals = {v: Breakdown() for v in VARIANTS}
        # per priced layer (by row object, for this estimate only): its weights in each variant
        self.weights: dict[int, dict[str, tuple[int, int, str, int]]] = {}

    def priced(self, tally_of) -> Priced:
        """``tally_of(variant)``: the row's tally (None: not priced in that variant)."""
        p = Priced()
        for v in VARIANTS:
            b = price(None if v in SPIKING and not self.have_snn else tally_of(v), self.cost)
            if b is not None:
                self.totals[v].add(b)
            p.breakdown[v] = b
        return p

    def synaptic(self, r: LayerCount, state_bits: int) -> SynapticRow:
        ws = self.weights[id(r)] = {v: layer_weights(r, v, self.ann_sparse) for v in VARIANTS}
        priced = self.priced(lambda v: synaptic_tally(r, v, self.steps, self.ann_sparse, self.word, state_bits,
                                                      ws[v]))
        fmts, bits = {}, {}
        for v in VARIANTS:
            b, alpha, fmt, _ = ws[v]
            fmts[v] = fmt
            bits[v] = 0 if fmt == "none" else b + alpha + r.bias * DEFAULT_BITS
        return SynapticRow(
            r.name, r.op, r.source, r.role, r.in_shape, r.out_shape, r.input_spiking, r.synapses,
            r.synapses_dense, r.weights, r.weights_nnz, r.weight_bits, r.binary_weights,
            macs=r.macs if in_ann(r) else 0, macs_sparse=r.macs_sparse if in_ann(r) else 0, sops=r.sops,
            snn_macs=r.snn_macs, bops=r.macs if binarized(r) else 0, snn_weight_bits=fp_bits(r),
            firing_rate_in=r.firing_rate_in, input_spikes=r.input_spikes, weight_format=fmts, memory_bits=bits,
            priced=priced, weights_nonzero=r.weights_nonzero, ir_name=r.ir_name)

    def neuron(self, n: NeuronCount) -> NeuronRow:
        priced = self.priced(lambda v: neuron_tally(n, v, self.steps, self.word))
        ann = n.neurons * DEFAULT_BITS if in_ann(n) else 0
        return NeuronRow(
            n.name, n.model, n.reset, n.source, n.shape, n.neurons, n.firing_rate, n.spikes,
            n.neurons * self.steps if self.have_snn else 0, n.role, n.size - n.neurons,
            {"ann": ann, "snn": n.neurons * (n.state_bits + 1), "snn_binary": n.neurons * (n.state_bits + 1),
             "bnn": n.neurons if in_ann(n) else 0}, priced, ir_name=n.ir_name)

    def product(self, pc: ProductCount) -> ProductRow:
        def tally(v: str) -> Tally | None:
            if v == "ann":
                return {"mac": pc.macs, "mem": []}
            if v == "bnn":
                return {"bop": pc.macs, "mem": []}
            return None if pc.acs is None else {"ac": pc.acs, "mem": []}
        return ProductRow(pc.name, pc.mode, pc.shape, pc.macs, pc.acs, self.priced(tally), ir_name=pc.ir_name)

    def host(self, hc: HostCount) -> HostRow:
        """Host operations in every variant; the spiking ones also move the values across the
        core/host boundary (an ANN runs everything on one processor)."""
        p = Priced()
        parts = host_energy(hc, self.steps, transfers=True)
        for v in VARIANTS:
            if v in SPIKING and not self.have_snn:
                continue
            # the ANN twins evaluate once per sample, as their synaptic layers are counted
            steps = self.steps if v in SPIKING else 1
            b = Breakdown(host=sum(host_energy(hc, steps, transfers=v in SPIKING).values()))
            self.totals[v].add(b)
            p.breakdown[v] = b
        return HostRow(hc.name, hc.source, hc.op, hc.shape, *host_operations(hc, self.steps), parts, p,
                       ir_name=hc.ir_name)

    def shortcut(self, sc: ShortcutCount) -> ShortcutRow:
        # the ANN twins add the shortcut (uncounted, like every residual add)
        priced = self.priced(lambda v: None if v not in SPIKING or sc.sops is None else {"ac": sc.sops, "mem": []})
        return ShortcutRow(sc.name, sc.synapses, sc.sops, priced, ir_name=sc.ir_name)


def _check_arguments(steps, values, firing_rates) -> int:
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 1:
        raise SnnCompileError(f"steps must be a positive integer (got {steps!r})", "e.g. steps=4", EXIT_USAGE)
    if values is not None and firing_rates is not None:
        raise SnnCompileError("both simulated spikes and firing rates were given",
                              "drop --firing-rates (exact SOPs from the simulation) or --input "
                              "(analytic SOPs from the rates)", EXIT_USAGE)
    return int(steps)


def _fill_spikes(graph: IRGraph, rows: list[LayerCount], neurons: list[NeuronCount], layers: Layers, steps: int,
                 values: Mapping[str, np.ndarray] | None, firing_rates: Mapping[str, float] | None,
                 cost: CostModel, names: dict[str, str]) -> tuple[str, list[str]]:
    """Fill SOPs and spikes (exact from values, analytic from rates); (mode, notes)."""
    if values is not None:
        first = values[graph.inputs(rows[0].name)[0]] if rows else None
        if first is not None and np.asarray(first).shape[0] != steps:
            raise SnnCompileError(f"the simulated values cover {np.asarray(first).shape[0]} steps, not {steps}",
                                  "pass steps equal to the simulated number of steps", EXIT_USAGE)
        dynamic_counts(graph, rows, values, neurons, layers)
        return "exact", ["SOPs exact: Σ over steps and input spikes of each input's fan-out "
                         "(stored synapses into live neurons)"]
    if firing_rates is not None:
        analytic_counts(graph, rows, firing_rates, steps, neurons, names)
        notes = ["SOPs analytic: input firing rate · T · synapses (no forward pass)"]
        unknown = [names[nc.name] for nc in neurons if nc.spikes is None]
        if unknown:
            what = ("counted as firing in every step (upper bound)" if cost.per_neuron_update
                    else "resets not counted")
            notes.append(f"output firing rate unknown for {', '.join(unknown)}: {what}")
        return "analytic", notes
    return "static", ["no spikes or firing rates given: SNN variants left empty "
                      "(simulate with inputs, or pass firing rates)"]


@one_thread()   # hundreds of batch-1 structural steps (snncompile.threads)
def estimate_energy(graph: IRGraph, *, steps: int, values: Mapping[str, np.ndarray] | None = None,
                    firing_rates: Mapping[str, float] | None = None,
                    cost_model: str | CostModel = "45nm", ann_sparse: bool = False,
                    model_name: str | None = None, net: Netlist | None = None) -> EnergyReport:
    """The energy report of ``graph`` over ``steps`` time steps, per sample.

    SOPs are exact from simulated ``values`` ({node: [T, B, *shape]}, e.g.
    ``simulate(graph, x, keep_values=True).values``), or analytic from ``firing_rates``
    (per layer / neuron / ``"*"``; no forward pass). With neither, only the ANN and BNN
    variants are filled. ``net``: the netlist lowered from ``graph``, whose projections give
    the synapses between kept neurons and the shortcuts (lowered here if not given).
    """
    steps = _check_arguments(steps, values, firing_rates)
    cost = cost_model if isinstance(cost_model, CostModel) else load_cost_model(cost_model)
    order = graph.topo()
    layers = layers_of(graph, net)
    rows = static_counts(graph, layers=layers, order=order, nonzero=False)   # counted last (count_nonzero)
    neurons = neuron_counts(graph, order)
    names = labels(graph)
    mode, notes = _fill_spikes(graph, rows, neurons, layers, steps, values, firing_rates, cost, names)
    exact = values if mode == "exact" else None
    pricer = _Pricer(cost, steps, ann_sparse, mode != "static")
    at = {n: i for i, n in enumerate(order)}
    items = sorted([*rows, *neurons], key=lambda e: at[e.name])
    state = {r.name: _state_bits(graph, r.name) for r in rows}
    products = product_counts(graph, exact, order)
    shortcuts = shortcut_counts(layers, exact)
    hosts = host_counts(graph, order)
    _relabel(names, [*items, *products, *hosts], shortcuts)   # rows carry the user's module paths from here
    out: list[Row] = [pricer.synaptic(item, state[item.ir_name]) if isinstance(item, LayerCount)
                      else pricer.neuron(item) for item in items]
    out += [pricer.product(pc) for pc in products]
    out += [pricer.shortcut(sc) for sc in shortcuts]
    out += [pricer.host(hc) for hc in hosts]
    variants = _variants(rows, neurons, products, shortcuts, steps, ann_sparse, mode != "static", pricer.totals)
    model_variant, binary_layers = _model_variant(rows)
    notes += _notes(rows, products, shortcuts, cost, mode != "static", model_variant, binary_layers)
    if hosts:
        notes.append(f"host partitions (off-core: {', '.join(h.name for h in hosts)}) run on the embedded CPU / "
                     "host: their MACs, comparisons and erf/exp evaluations are priced in category 'host' in "
                     "every variant, the values crossing the core/host boundary in the spiking variants only; "
                     f"costs: {HOST_SOURCE}")
    count_nonzero(graph, [r for r in out if isinstance(r, SynapticRow)])   # reported, never priced: last
    e = {v: variants.energy(v) for v in VARIANTS}
    savings = Savings(_ratio(e["ann"], e["snn"]), _ratio(e["snn"], e["snn_binary"]),
                      _ratio(e["ann"], e["snn_binary"]), _ratio(e["ann"], e["bnn"]))
    return EnergyReport(model_name or graph.name, cost, mode, steps, bool(ann_sparse),
                        [r.name for r in rows if not r.input_spiking], binary_layers, model_variant, variants,
                        savings, _memory(rows, neurons, ann_sparse, pricer.weights), out, notes)


def _relabel(names: dict[str, str], counts: list, shortcuts: list[ShortcutCount]) -> None:
    """Name counts by module path (``ir_name`` keeps the IR node)."""
    for c in counts:
        c.ir_name, c.name = c.name, names.get(c.name, c.name)
    for sc in shortcuts:
        sc.ir_name = sc.name
        sc.src, sc.dst = names.get(sc.src, sc.src), names.get(sc.dst, sc.dst)


def _model_variant(rows: list[LayerCount]) -> tuple[str, list[str]]:
    """Which SNN variant the compiled model is, and its layers with binary weights."""
    binary_layers = [r.name for r in rows if binarized(r) and r.binary_weights]
    spiking_layers = [r.name for r in rows if binarized(r)]
    if spiking_layers and len(binary_layers) == len(spiking_layers):
        return "snn_binary", binary_layers
    return ("mixed" if binary_layers else "snn"), binary_layers


def _notes(rows: list[LayerCount], products: list[ProductCount], shortcuts: list[ShortcutCount],
           cost: CostModel, have_snn: bool, model_variant: str, binary_layers: list[str]) -> list[str]:
    notes = []
    if products:
        notes.append("attention products (spike × spike) count as ACs on nonzero factor pairs in the SNN "
                     "variants, MACs in the ANN and bit-ops in the BNN; they run as custom processes")
    mac_layers = [r.name for r in rows if not r.input_spiking]
    if mac_layers:
        notes.append(f"layers on real-valued input are MACs (the Spikformer-table convention: E_MAC on "
                     f"the first layer), repeated every step as the network recomputes them; the binary "
                     f"variants keep them full precision: {', '.join(mac_layers)}")
    if cost.per_neuron_update and have_snn:
        notes.append("neuron updates: 'active' = the neuron fires in that step (our reading of the "
                     "cost model's active/inactive figures)")
    if not cost.memory:
        notes.append(f"cost model {cost.name!r} prices operations only: memory accesses are not counted "
                     "separately (use the 'lemaire' model for a memory-aware estimate)")
    notes.append("batch norm, pooling and residual adds are not counted (folded into weights "
                 "and thresholds, or negligible)" + (
                     "; a residual shortcut of spikes straight into neurons is a row of weight-1 synapses "
                     "('shortcut', SOPs in the SNN variants, exact mode)" if shortcuts else ""))
    if model_variant == "mixed":
        notes.append(f"binary weights in {', '.join(binary_layers)} only: the compiled model lies "
                     "between the snn and snn_binary variants")
    if any(r.role == "or" for r in rows):
        notes.append("max pooling of spikes runs as OR neurons: SOPs and neuron updates in the SNN "
                     "variants, an uncounted max-pool in the ANN variants")
    return notes


def _variants(rows: list[LayerCount], neurons: list[NeuronCount], products: list[ProductCount],
              shortcuts: list[ShortcutCount], steps: int, ann_sparse: bool, have_snn: bool,
              totals: dict[str, Breakdown]) -> Variants:
    ann_rows = [r for r in rows if in_ann(r)]
    ann_macs = sum(r.macs_sparse if ann_sparse else r.macs for r in ann_rows)
    bops = sum(r.macs for r in ann_rows if binarized(r))
    bnn_macs = sum((r.macs_sparse if ann_sparse else r.macs) for r in ann_rows if not binarized(r))
    ann_neurons = sum(n.neurons for n in neurons if in_ann(n))   # removed neurons are in no variant
    product_macs = sum(pc.macs for pc in products)
    ann = AnnTotal(int(ann_macs) + product_macs, ann_neurons, totals["ann"])
    bnn = BnnTotal(int(bops) + product_macs, int(bnn_macs), bops / 64 + bnn_macs, ann_neurons, totals["bnn"])
    if not have_snn:
        return Variants(ann, None, None, bnn)
    spikes = None if any(n.spikes is None for n in neurons) else num(sum(n.spikes for n in neurons))

    def snn(v: str) -> SnnTotal:
        return SnnTotal(num(sum(r.sops or 0.0 for r in rows if r.input_spiking)),
                        num(sum(r.snn_macs or 0.0 for r in rows if not r.input_spiking)),
                        sum(n.neurons for n in neurons) * steps, spikes, totals[v],
                        shortcut_sops=num(sum(sc.sops or 0.0 for sc in shortcuts)), has_shortcuts=bool(shortcuts),
                        attention_acs=num(sum(pc.acs or 0.0 for pc in products)), has_products=bool(products))
    return Variants(ann, snn("snn"), snn("snn_binary"), bnn)


def _memory(rows: list[LayerCount], neurons: list[NeuronCount], ann_sparse: bool,
            weights: dict[int, dict[str, tuple[int, int, str, int]]]) -> dict[str, Storage]:
    """Storage in bits per variant at the real widths (not the runtime dtype); ``weights``:
    each row's ``layer_weights`` per variant, by ``id(row)`` (:attr:`_Pricer.weights`)."""
    n = sum(nc.neurons for nc in neurons)
    n_ann = sum(nc.neurons for nc in neurons if in_ann(nc))
    state = sum(nc.neurons * nc.state_bits for nc in neurons)
    out: dict[str, Storage] = {}
    for v in VARIANTS:
        keep = rows if v in SPIKING else [r for r in rows if in_ann(r)]
        w = int(sum(sum(weights[id(r)][v][:2]) for r in keep))
        bias = int(sum(r.bias for r in keep) * DEFAULT_BITS)
        if v == "ann":
            out[v] = Storage(w, bias, activation_bits=n_ann * DEFAULT_BITS)
        elif v == "bnn":
            out[v] = Storage(w, bias, activation_bits=n_ann)
        else:
            out[v] = Storage(w, bias, state_bits=int(state), spike_bits=n)
    return out
