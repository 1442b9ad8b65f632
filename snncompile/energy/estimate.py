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
from dataclasses import asdict
from typing import Any

import numpy as np

from snncompile.energy.costs import CostModel, load_cost_model
from snncompile.energy.counts import (
    DEFAULT_BITS,
    LayerCount,
    NeuronCount,
    analytic_counts,
    dynamic_counts,
    neuron_counts,
    product_counts,
    shortcut_counts,
    static_counts,
)
from snncompile.energy.dynamics_cost import leaks_per_update
from snncompile.errors import EXIT_USAGE, SnnCompileError
from snncompile.ir import Conv2d, IRGraph, Linear, Neuron
from snncompile.ir.structure import liveness

VARIANTS = ("ann", "snn", "snn_binary", "bnn")
SPIKING = ("snn", "snn_binary")
CATEGORIES = ("mac", "synaptic", "neuron", "memory")
ALPHA_BITS = 32  # one full-precision scale α per output channel of a binarized layer

Tally = dict[str, Any]  # op → count, plus "mem": [(words, memory size in bits), ...]


# -- weight storage ---------------------------------------------------------------------------

def weight_storage(row: LayerCount, value_bits: int, sparse: bool) -> tuple[int, str]:
    """(bits, format) to store a layer's weights at ``value_bits`` per value.

    Dense layers (or ``sparse=False``) are stored dense. Pruned layers take the smallest of
    dense-with-zeros (a 1-bit value cannot encode 0, so ternary needs 2 bits), a bitmap
    (1 bit per dense position + the nonzero values) and CSR (per nonzero: the value and a
    column index of ceil(log2(fan_in)) bits; per row + 1: a pointer of ceil(log2(nnz+1)) bits).
    """
    if not sparse or row.weights_nnz == row.weights:
        return row.weights * value_bits, "dense"
    col_bits = max(int(np.ceil(np.log2(row.fan_in))), 0) if row.fan_in > 1 else 0
    ptr_bits = max(int(np.ceil(np.log2(row.weights_nnz + 1))), 1)
    options = {
        "dense": row.weights * (2 if value_bits == 1 else value_bits),
        "bitmap": row.weights + row.weights_nnz * value_bits,
        "csr": row.weights_nnz * (value_bits + col_bits) + (row.rows + 1) * ptr_bits,
    }
    fmt = min(options, key=lambda k: (options[k], k != "dense"))
    return int(options[fmt]), fmt


def _binarized(row: LayerCount) -> bool:
    """Layers the binary variants binarize: those whose SNN input is spikes."""
    return row.input_spiking and row.role != "or"


def _fp_bits(row: LayerCount) -> int:
    """Width of the full-precision twin: the node's own, or 32 bits for a binarized node."""
    return DEFAULT_BITS if row.weight_bits == 1 and row.role != "or" else row.weight_bits


def _in_ann(row: LayerCount | NeuronCount) -> bool:
    """OR synapses and neurons are a max-pool: the ANN twins max-pool instead (not counted)."""
    return row.role != "or"


def _layer_weights(row: LayerCount, variant: str, ann_sparse: bool) -> tuple[int, int, str, int]:
    """(weight bits, α bits, format, weights stored) of a layer in a variant."""
    alpha = 0
    if variant in ("ann", "bnn") and not _in_ann(row):
        return 0, 0, "none", 1
    if variant == "ann":
        bits, fmt = weight_storage(row, _fp_bits(row), ann_sparse)
        used = row.weights_nnz if ann_sparse else row.weights
    elif variant == "bnn":
        if _binarized(row):  # the binarized dense twin: 1 bit per weight, mask ignored
            bits, fmt, alpha = row.weights, "dense", ALPHA_BITS * row.alphas
        else:
            bits, fmt = weight_storage(row, _fp_bits(row), ann_sparse)
        used = row.weights if _binarized(row) or not ann_sparse else row.weights_nnz
    else:
        binary = variant == "snn_binary" and _binarized(row)
        vb = 1 if binary or row.role == "or" else _fp_bits(row)
        bits, fmt = weight_storage(row, vb, True)
        alpha = ALPHA_BITS * row.alphas if binary else 0
        used = row.weights_nnz
    return int(bits), alpha, fmt, max(int(used), 1)


# -- tallies ------------------------------------------------------------------------------------

def _dense_layer(row: LayerCount, uses: float, w: tuple[int, int, str, int], act_bits: int,
                 repeat: int, word: int, op: str) -> Tally:
    """A layer that multiplies every stored weight with its inputs (ANN style), ``repeat`` times.

    Weights are read as packed words: ``bits per stored weight / word`` words per use.
    """
    wbits, alpha, _, wused = w
    wmem = wbits + alpha + row.bias * DEFAULT_BITS
    per_use = wbits / wused
    t: Tally = {op: uses, "mem": [
        (uses * act_bits / word, row.in_size * act_bits),            # input reads
        (uses * per_use / word, wmem),                               # weight reads
        (repeat * row.out_size * DEFAULT_BITS / word, row.out_size * DEFAULT_BITS),  # output writes
    ]}
    if row.bias:
        t["mem"].append((repeat * row.out_size * DEFAULT_BITS / word, wmem))      # bias reads
    return t


def _synaptic_tally(row: LayerCount, variant: str, steps: int, ann_sparse: bool, word: int,
                    state_bits: int) -> Tally | None:
    w = _layer_weights(row, variant, ann_sparse)
    wbits, alpha, _, wused = w
    if variant in ("ann", "bnn") and not _in_ann(row):
        return {"mem": []}
    if variant == "ann":
        uses = row.macs_sparse if ann_sparse else row.macs
        return _dense_layer(row, uses, w, DEFAULT_BITS, 1, word, "mac")
    if variant == "bnn":
        if _binarized(row):
            return _dense_layer(row, row.macs, w, 1, 1, word, "bop")
        uses = row.macs_sparse if ann_sparse else row.macs
        return _dense_layer(row, uses, w, DEFAULT_BITS, 1, word, "mac")
    if not row.input_spiking:  # real-valued input: MACs with the kept weights, every step
        if row.snn_macs is None:
            return None
        return _dense_layer(row, row.snn_macs, w, DEFAULT_BITS, steps, word, "mac")
    if row.sops is None:
        return None
    op = "ac_binary" if variant == "snn_binary" or row.role == "or" else "ac"
    sops, theta = row.sops, row.input_spikes or 0.0
    wmem = wbits + alpha + row.bias * DEFAULT_BITS
    vmem = row.out_size * state_bits
    t: Tally = {op: sops, "mem": [
        (sops * (wbits / wused) / word, wmem),        # one (packed) weight per event
        (sops * state_bits / word, vmem),             # membrane read ...
        (sops * state_bits / word, vmem),             # ... and write per event
    ]}
    if row.bias:
        t["mem"].append((steps * row.out_size * DEFAULT_BITS / word, wmem))
    if row.kernel_taps:  # event-driven conv: locate the spike's outputs (Lemaire)
        t["addr_mac"] = 2 * theta
        t["addr_ac"] = row.kernel_taps * theta
    return t


def _neuron_tally(nc: NeuronCount, variant: str, steps: int, word: int) -> Tally:
    if variant in ("ann", "bnn"):  # ReLU / sign: one compare per neuron, one pass
        return {"cmp": nc.size if _in_ann(nc) else 0, "mem": []}
    n_steps = nc.neurons * steps
    leaks = n_steps * leaks_per_update(nc.model)   # per dynamics type (snncompile.energy.dynamics_cost)
    t: Tally = {"neuron_steps": n_steps, "leaks": leaks,
                "spikes": nc.spikes,
                "mem": [(n_steps * nc.state_bits / word, nc.neurons * nc.state_bits)] * 2}
    return t


def price(t: Tally | None, cost: CostModel) -> dict[str, float] | None:
    """Energy (pJ) of a tally, by category."""
    if t is None:
        return None
    out = dict.fromkeys(CATEGORIES, 0.0)
    out["mac"] = t.get("mac", 0.0) * cost.pj("mac")
    out["synaptic"] = (t.get("ac", 0.0) * cost.pj("ac") + t.get("ac_binary", 0.0) * cost.pj("ac_binary")
                       + t.get("bop", 0.0) * cost.pj("bop"))
    neuron = t.get("cmp", 0.0) * cost.pj("cmp")
    if "neuron_steps" in t:
        steps, spikes = t["neuron_steps"], t["spikes"]
        if cost.per_neuron_update:
            active = steps if spikes is None else spikes  # unknown spikes: all active (upper bound)
            neuron += active * cost.pj("neuron_update_active") \
                + (steps - active) * cost.pj("neuron_update_inactive")
        else:
            neuron += steps * (cost.pj("add") + cost.pj("cmp")) + t["leaks"] * cost.pj("mult") \
                + (spikes or 0.0) * cost.pj("reset")
        if cost.has("spike"):
            neuron += (spikes or 0.0) * cost.pj("spike")
    out["neuron"] = neuron
    if cost.memory:
        mem = sum(words * cost.ram_pj(size) for words, size in t["mem"])
        if cost.memory.get("addressing", True):
            mem += t.get("addr_mac", 0.0) * cost.pj("mac") + t.get("addr_ac", 0.0) * cost.pj("ac")
        out["memory"] = mem
    return out


def _account(tally: Tally | None, cost: CostModel, total: dict[str, float]
             ) -> tuple[float | None, dict[str, float] | None]:
    """Price ``tally``, add it to the variant's ``total`` by category; (energy, breakdown)."""
    b = price(tally, cost)
    if b is None:
        return None, None
    for k in CATEGORIES:
        total[k] += b[k]
    return float(sum(b.values())), b


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


# -- the report ---------------------------------------------------------------------------------

def _ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None or b <= 0 else float(a / b)


def _num(v: float | None) -> int | float | None:
    """JSON-friendly number: ints stay ints, integral floats become ints."""
    if v is None:
        return None
    v = float(v)
    return int(v) if v.is_integer() and abs(v) < 2**63 else v


def estimate_energy(graph: IRGraph, *, steps: int, values: Mapping[str, np.ndarray] | None = None,
                    firing_rates: Mapping[str, float] | None = None,
                    cost_model: str | CostModel = "45nm", ann_sparse: bool = False,
                    model_name: str | None = None) -> dict[str, Any]:
    """The ``energy`` report of ``graph`` over ``steps`` time steps, per sample.

    SOPs are exact from simulated ``values`` ({node: [T, B, *shape]}, e.g.
    ``simulate(graph, x, keep_values=True).values``), or analytic from ``firing_rates``
    (per layer / neuron / ``"*"``; no forward pass). With neither, only the ANN and BNN
    variants are filled.
    """
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 1:
        raise SnnCompileError(f"steps must be a positive integer (got {steps!r})", "e.g. steps=4", EXIT_USAGE)
    steps = int(steps)
    if values is not None and firing_rates is not None:
        raise SnnCompileError("both simulated spikes and firing rates were given",
                              "drop --firing-rates (exact SOPs from the simulation) or --input "
                              "(analytic SOPs from the rates)", EXIT_USAGE)
    cost = cost_model if isinstance(cost_model, CostModel) else load_cost_model(cost_model)
    live = liveness(graph)  # one structural sweep serves the static and the exact counts
    rows = static_counts(graph, live)
    neurons = neuron_counts(graph)
    notes: list[str] = []
    if values is not None:
        mode = "exact"
        first = values[graph.inputs(rows[0].name)[0]] if rows else None
        if first is not None and np.asarray(first).shape[0] != steps:
            raise SnnCompileError(f"the simulated values cover {np.asarray(first).shape[0]} steps, not {steps}",
                                  "pass steps equal to the simulated number of steps", EXIT_USAGE)
        dynamic_counts(graph, rows, values, neurons, live)
        notes.append("SOPs exact: Σ over steps and input spikes of each input's fan-out "
                     "(stored synapses into live neurons)")
    elif firing_rates is not None:
        mode = "analytic"
        analytic_counts(graph, rows, firing_rates, steps, neurons)
        notes.append("SOPs analytic: input firing rate · T · synapses (no forward pass)")
        unknown = [nc.name for nc in neurons if nc.spikes is None]
        if unknown:
            what = ("counted as firing in every step (upper bound)" if cost.per_neuron_update
                    else "resets not counted")
            notes.append(f"output firing rate unknown for {', '.join(unknown)}: {what}")
    else:
        mode = "static"
        notes.append("no spikes or firing rates given: SNN variants left empty "
                     "(simulate with inputs, or pass firing rates)")

    word = cost.memory["word_bits"] if cost.memory else DEFAULT_BITS
    have_snn = mode != "static"

    layers: list[dict[str, Any]] = []
    totals = {v: dict.fromkeys(CATEGORIES, 0.0) for v in VARIANTS}
    order = {n: i for i, n in enumerate(graph.topo())}
    entries: list[tuple[int, Any]] = [(order[r.name], r) for r in rows] + [(order[n.name], n) for n in neurons]
    entries.sort(key=lambda e: e[0])
    for _, item in entries:
        energies: dict[str, float | None] = {}
        breakdown: dict[str, dict[str, float] | None] = {}
        state_bits = _state_bits(graph, item.name) if isinstance(item, LayerCount) else 0
        for v in VARIANTS:
            if v in SPIKING and not have_snn:
                tally = None
            elif isinstance(item, LayerCount):
                tally = _synaptic_tally(item, v, steps, ann_sparse, word, state_bits)
            else:
                tally = _neuron_tally(item, v, steps, word)
            energies[v], breakdown[v] = _account(tally, cost, totals[v])
        if isinstance(item, LayerCount):
            layers.append(_synaptic_row(item, ann_sparse, energies, breakdown))
        else:
            layers.append(_neuron_row(item, steps, have_snn, energies, breakdown))

    products = product_counts(graph, values if mode == "exact" else None)
    for pc in products:
        energies, breakdown = {}, {}
        for v in VARIANTS:
            tally: Tally | None
            if v == "ann":
                tally = {"mac": pc.macs, "mem": []}
            elif v == "bnn":
                tally = {"bop": pc.macs, "mem": []}
            else:
                tally = None if pc.acs is None else {"ac": pc.acs, "mem": []}
            energies[v], breakdown[v] = _account(tally, cost, totals[v])
        layers.append({"name": pc.name, "op": pc.mode, "role": "", "input": "spikes", "neurons": 0,
                       "kind": "spike product (custom process, no synapses)", "binary_weights": False,
                       "out_shape": list(pc.shape), "macs": pc.macs, "sops": _num(pc.acs), "acs": _num(pc.acs),
                       "firing_rate_in": None, "synapses": 0, "synapses_dense": 0,
                       "energy_pj": energies, "breakdown_pj": breakdown})
    if products:
        notes.append("attention products (spike × spike) count as ACs on nonzero factor pairs in the SNN "
                     "variants, MACs in the ANN and bit-ops in the BNN; they run as custom processes")
    shortcuts = shortcut_counts(graph, live, values if mode == "exact" else None)
    for sc in shortcuts:
        energies, breakdown = {}, {}
        for v in VARIANTS:   # the ANN twins add the shortcut (uncounted, like every residual add)
            tally = None if v not in SPIKING or sc.sops is None else {"ac": sc.sops, "mem": []}
            energies[v], breakdown[v] = _account(tally, cost, totals[v])
        layers.append({"name": sc.name, "op": "shortcut", "role": "", "input": "spikes", "neurons": 0,
                       "kind": "direct synapses between populations (residual shortcut / relay), weight 1",
                       "binary_weights": False, "macs": 0, "sops": _num(sc.sops), "firing_rate_in": None,
                       "synapses": sc.synapses, "synapses_dense": sc.synapses,
                       "energy_pj": energies, "breakdown_pj": breakdown})
    variants = _variants(rows, neurons, steps, ann_sparse, have_snn, totals)
    for v in SPIKING:
        if variants[v] is not None and shortcuts:
            variants[v]["shortcut_sops"] = _num(sum(sc.sops or 0.0 for sc in shortcuts))
    if products:
        variants["ann"]["macs"] += sum(pc.macs for pc in products)
        variants["bnn"]["bops"] += sum(pc.macs for pc in products)
        for v in SPIKING:
            if variants[v] is not None:
                variants[v]["attention_acs"] = _num(sum(pc.acs or 0.0 for pc in products))
    e = {v: (variants[v] or {}).get("energy_pj") for v in VARIANTS}
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
    binary_layers = [r.name for r in rows if _binarized(r) and r.binary_weights]
    spiking_layers = [r.name for r in rows if _binarized(r)]
    if spiking_layers and len(binary_layers) == len(spiking_layers):
        model_variant = "snn_binary"
    elif binary_layers:
        model_variant = "mixed"
        notes.append(f"binary weights in {', '.join(binary_layers)} only: the compiled model lies "
                     "between the snn and snn_binary variants")
    else:
        model_variant = "snn"
    if any(r.role == "or" for r in rows):
        notes.append("max pooling of spikes runs as OR neurons: SOPs and neuron updates in the SNN "
                     "variants, an uncounted max-pool in the ANN variants")
    return {
        "model": model_name or graph.name,
        "cost_model": cost.name,
        "source": cost.source,
        "unverified": cost.describe()["unverified"],
        "cost": cost.describe(),
        "units": "pJ",
        "per": "sample",
        "mode": mode,
        "first_layer": "mac",
        "mac_layers": mac_layers,
        "steps": steps,
        "ann_sparse": bool(ann_sparse),
        "binary_weight_layers": binary_layers,
        "model_variant": model_variant,
        "variants": variants,
        "savings": {
            "snn_vs_ann": _ratio(e["ann"], e["snn"]),
            "snn_binary_vs_snn": _ratio(e["snn"], e["snn_binary"]),
            "snn_binary_vs_ann": _ratio(e["ann"], e["snn_binary"]),
            "bnn_vs_ann": _ratio(e["ann"], e["bnn"]),
        },
        "memory": _memory(rows, neurons, ann_sparse),
        "layers": layers,
        "notes": notes,
    }


def _synaptic_row(r: LayerCount, ann_sparse: bool, energies: dict, breakdown: dict) -> dict:
    fmts, bits = {}, {}
    for v in VARIANTS:
        b, alpha, fmt, _ = _layer_weights(r, v, ann_sparse)
        fmts[v] = fmt
        bits[v] = 0 if fmt == "none" else b + alpha + r.bias * DEFAULT_BITS
    return {
        "name": r.name, "op": r.op, "source": r.source, "role": r.role, "in_shape": list(r.in_shape),
        "out_shape": list(r.out_shape), "input": "spikes" if r.input_spiking else "real",
        "neurons": 0, "synapses": r.synapses, "synapses_dense": r.synapses_dense,
        "weights": r.weights, "weights_nnz": r.weights_nnz, "weight_bits": r.weight_bits,
        "binary_weights": r.binary_weights,
        "macs": r.macs if _in_ann(r) else 0, "macs_sparse": r.macs_sparse if _in_ann(r) else 0,
        "sops": _num(r.sops), "snn_macs": _num(r.snn_macs),
        "bops": r.macs if _binarized(r) else 0,
        "snn_weight_bits": _fp_bits(r),
        "firing_rate_in": r.firing_rate_in, "input_spikes": _num(r.input_spikes),
        "neuron_updates": 0,
        "weight_format": fmts, "memory_bits": bits,
        "energy_pj": energies, "breakdown_pj": breakdown,
    }


def _neuron_row(n: NeuronCount, steps: int, have_snn: bool, energies: dict, breakdown: dict) -> dict:
    return {
        "name": n.name, "op": "neuron", "model": n.model, "reset": n.reset, "source": n.source,
        "in_shape": list(n.shape), "out_shape": list(n.shape), "input": None,
        "neurons": n.neurons, "synapses": 0, "synapses_dense": 0, "macs": 0, "sops": None,
        "firing_rate_in": None, "firing_rate_out": n.firing_rate, "spikes": _num(n.spikes),
        "neuron_updates": n.neurons * steps if have_snn else 0,
        "role": n.role, "removed": n.size - n.neurons,
        "memory_bits": {"ann": n.size * DEFAULT_BITS if _in_ann(n) else 0,
                        "snn": n.neurons * (n.state_bits + 1),
                        "snn_binary": n.neurons * (n.state_bits + 1), "bnn": n.size if _in_ann(n) else 0},
        "energy_pj": energies, "breakdown_pj": breakdown,
    }


def _variants(rows: list[LayerCount], neurons: list[NeuronCount], steps: int, ann_sparse: bool,
              have_snn: bool, totals: dict) -> dict[str, dict | None]:
    def energy(v: str) -> dict[str, Any]:
        return {"energy_pj": float(sum(totals[v].values())),
                "breakdown_pj": {k: float(x) for k, x in totals[v].items()}}

    ann_rows = [r for r in rows if _in_ann(r)]
    ann_macs = sum(r.macs_sparse if ann_sparse else r.macs for r in ann_rows)
    bops = sum(r.macs for r in ann_rows if _binarized(r))
    bnn_macs = sum((r.macs_sparse if ann_sparse else r.macs) for r in ann_rows if not _binarized(r))
    ann_neurons = sum(n.size for n in neurons if _in_ann(n))
    n_neurons = sum(n.neurons for n in neurons)
    out: dict[str, dict | None] = {
        "ann": {"macs": int(ann_macs), "activations": ann_neurons, **energy("ann")},
        "bnn": {"bops": int(bops), "macs": int(bnn_macs), "ops": bops / 64 + bnn_macs,
                "activations": ann_neurons, **energy("bnn")},
        "snn": None, "snn_binary": None,
    }
    if have_snn:
        sops = _num(sum(r.sops or 0.0 for r in rows if r.input_spiking))
        macs = _num(sum(r.snn_macs or 0.0 for r in rows if not r.input_spiking))
        spikes = None if any(n.spikes is None for n in neurons) else _num(sum(n.spikes for n in neurons))
        common = {"sops": sops, "macs": macs, "neuron_updates": n_neurons * steps, "spikes": spikes}
        out["snn"] = {**common, **energy("snn")}
        out["snn_binary"] = {**common, **energy("snn_binary")}
    return {v: out[v] for v in VARIANTS}


def _memory(rows: list[LayerCount], neurons: list[NeuronCount], ann_sparse: bool) -> dict[str, dict]:
    """Storage in bits per variant at the real widths (not the runtime dtype)."""
    n = sum(nc.neurons for nc in neurons)
    n_ann = sum(nc.size for nc in neurons if _in_ann(nc))
    state = sum(nc.neurons * nc.state_bits for nc in neurons)
    out: dict[str, dict] = {}
    for v in VARIANTS:
        keep = rows if v in SPIKING else [r for r in rows if _in_ann(r)]
        w = sum(sum(_layer_weights(r, v, ann_sparse)[:2]) for r in keep)
        bias = sum(r.bias for r in keep) * DEFAULT_BITS
        d: dict[str, int] = {"weights_bits": int(w), "bias_bits": int(bias)}
        if v == "ann":
            d["activation_bits"] = n_ann * DEFAULT_BITS
        elif v == "bnn":
            d["activation_bits"] = n_ann
        else:
            d["state_bits"] = int(state)
            d["spike_bits"] = n
        d["total_bits"] = int(sum(d.values()))
        out[v] = d
    return out


def energy_summary(model_name: str, rows: list[LayerCount], cost: CostModel, steps: int) -> dict:
    """Legacy ``energy`` object (ANN vs SNN from filled ``rows``); prefer :func:`estimate_energy`."""
    e_mac, e_ac = cost.pj("mac"), cost.pj("ac")
    ann_macs = sum(r.macs for r in rows if _in_ann(r))  # OR synapses are a max-pool in the ANN
    have_spikes = all(r.sops is not None or r.snn_macs is not None for r in rows)
    out: dict = {"model": model_name, "cost_model": cost.name, "source": cost.source,
                 "first_layer": "mac", "steps": steps, "per": "sample",
                 "variants": {"ann": {"macs": ann_macs, "energy_pj": ann_macs * e_mac}},
                 "layers": []}
    for r in rows:
        d = asdict(r)
        d["in_shape"], d["out_shape"] = list(r.in_shape), list(r.out_shape)
        out["layers"].append(d)
    if have_spikes:
        sops = sum(r.sops or 0.0 for r in rows)
        macs = sum(r.snn_macs or 0.0 for r in rows)
        snn_pj = macs * e_mac + sops * e_ac
        out["variants"]["snn"] = {"sops": sops, "macs": macs, "energy_pj": snn_pj}
        out["savings"] = {"snn_vs_ann": (ann_macs * e_mac) / snn_pj if snn_pj else None}
    return out
