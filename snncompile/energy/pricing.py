"""Operation tallies of one row in one variant, and their price under a cost model.

A tally maps operations (``mac``, ``ac``, ``ac_binary``, ``bop``, ``cmp``, neuron steps,
leaks, spikes, address arithmetic) to counts, plus ``"mem"``: a list of (words accessed,
size in bits of the memory accessed). Weights are stored at their real widths
(:func:`weight_storage`).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from snncompile.energy.costs import CostModel
from snncompile.energy.counts import DEFAULT_BITS, LayerCount, NeuronCount
from snncompile.energy.dynamics_cost import leaks_per_update
from snncompile.energy.report import Breakdown

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


def binarized(row: LayerCount) -> bool:
    """Layers the binary variants binarize: those whose SNN input is spikes."""
    return row.input_spiking and row.role != "or"


def fp_bits(row: LayerCount) -> int:
    """Width of the full-precision twin: the node's own, or 32 bits for a binarized node."""
    return DEFAULT_BITS if row.weight_bits == 1 and row.role != "or" else row.weight_bits


def in_ann(row: LayerCount | NeuronCount) -> bool:
    """OR synapses and neurons are a max-pool: the ANN twins max-pool instead (not counted)."""
    return row.role != "or"


def layer_weights(row: LayerCount, variant: str, ann_sparse: bool) -> tuple[int, int, str, int]:
    """(weight bits, α bits, format, weights stored) of a layer in a variant."""
    alpha = 0
    if variant in ("ann", "bnn") and not in_ann(row):
        return 0, 0, "none", 1
    if variant == "ann":
        bits, fmt = weight_storage(row, fp_bits(row), ann_sparse)
        used = row.weights_nnz if ann_sparse else row.weights
    elif variant == "bnn":
        if binarized(row):  # the binarized dense twin: 1 bit per weight, mask ignored
            bits, fmt, alpha = row.weights, "dense", ALPHA_BITS * row.alphas
        else:
            bits, fmt = weight_storage(row, fp_bits(row), ann_sparse)
        used = row.weights if binarized(row) or not ann_sparse else row.weights_nnz
    else:
        binary = variant == "snn_binary" and binarized(row)
        vb = 1 if binary or row.role == "or" else fp_bits(row)
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
        (repeat * row.kept_out * DEFAULT_BITS / word, row.kept_out * DEFAULT_BITS),  # output writes
    ]}
    if row.bias:
        t["mem"].append((repeat * row.kept_out * DEFAULT_BITS / word, wmem))      # bias reads
    return t


def synaptic_tally(row: LayerCount, variant: str, steps: int, ann_sparse: bool, word: int,
                    state_bits: int, w: tuple[int, int, str, int] | None = None) -> Tally | None:
    """``w``: ``layer_weights(row, variant, ann_sparse)``, when the caller has it."""
    w = layer_weights(row, variant, ann_sparse) if w is None else w
    wbits, alpha, _, wused = w
    if variant in ("ann", "bnn") and not in_ann(row):
        return {"mem": []}
    if variant == "ann":
        uses = row.macs_sparse if ann_sparse else row.macs
        return _dense_layer(row, uses, w, DEFAULT_BITS, 1, word, "mac")
    if variant == "bnn":
        if binarized(row):
            return _dense_layer(row, row.macs, w, 1, 1, word, "bop")
        uses = row.macs_sparse if ann_sparse else row.macs
        return _dense_layer(row, uses, w, DEFAULT_BITS, 1, word, "mac")
    if not row.input_spiking:  # real-valued input: MACs with the kept weights, every step
        if row.snn_macs is None:
            return None
        return _dense_layer(row, row.snn_macs, w, DEFAULT_BITS, row.evaluations(steps), word, "mac")
    if row.sops is None:
        return None
    op = "ac_binary" if variant == "snn_binary" or row.role == "or" else "ac"
    sops, theta = row.sops, row.input_spikes or 0.0
    wmem = wbits + alpha + row.bias * DEFAULT_BITS
    vmem = row.kept_out * state_bits
    t: Tally = {op: sops, "mem": [
        (sops * (wbits / wused) / word, wmem),        # one (packed) weight per event
        (sops * state_bits / word, vmem),             # membrane read ...
        (sops * state_bits / word, vmem),             # ... and write per event
    ]}
    if row.bias:
        t["mem"].append((steps * row.kept_out * DEFAULT_BITS / word, wmem))
    if row.kernel_taps:  # event-driven conv: locate the spike's outputs (Lemaire)
        t["addr_mac"] = 2 * theta
        t["addr_ac"] = row.kernel_taps * theta
    return t


def neuron_tally(nc: NeuronCount, variant: str, steps: int, word: int) -> Tally:
    if variant in ("ann", "bnn"):  # ReLU / sign: one compare per neuron, one pass
        return {"cmp": nc.neurons if in_ann(nc) else 0, "mem": []}   # removed neurons: absent
    n_steps = nc.neurons * steps
    leaks = n_steps * leaks_per_update(nc.model)   # per dynamics type (snncompile.energy.dynamics_cost)
    t: Tally = {"neuron_steps": n_steps, "leaks": leaks,
                "spikes": nc.spikes,
                "mem": [(n_steps * nc.state_bits / word, nc.neurons * nc.state_bits)] * 2}
    return t


def _neuron_pj(t: Tally, cost: CostModel) -> float:
    """Neuron updates (integrate, leak, compare, reset, or per-update figures) and spikes."""
    neuron = t.get("cmp", 0.0) * cost.pj("cmp")
    if "neuron_steps" not in t:
        return neuron
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
    return neuron


def price(t: Tally | None, cost: CostModel) -> Breakdown | None:
    """Energy (pJ) of a tally, by category."""
    if t is None:
        return None
    out = Breakdown()
    out.mac = t.get("mac", 0.0) * cost.pj("mac")
    out.synaptic = (t.get("ac", 0.0) * cost.pj("ac") + t.get("ac_binary", 0.0) * cost.pj("ac_binary")
                    + t.get("bop", 0.0) * cost.pj("bop"))
    out.neuron = _neuron_pj(t, cost)
    if cost.memory:
        mem = sum(words * cost.ram_pj(size) for words, size in t["mem"])
        if cost.memory.get("addressing", True):
            mem += t.get("addr_mac", 0.0) * cost.pj("mac") + t.get("addr_ac", 0.0) * cost.pj("ac")
        out.memory = mem
    return out
