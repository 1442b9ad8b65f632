"""Fixed point under lava-dl netx's rules: what a netx HDF5 file can hold, quantized so that
the integer reference predicts netx's Lava run bit for bit.

netx fixes what :mod:`snncompile.fixedpoint.quantize` chooses per projection: a file weight w
is an integer in [−254, 254] that the synapse delivers exactly (netx's
``optimize_weight_bits`` rescales it losslessly), the neuron shifts it by 6, so it is w·64
membrane units (weight exponent 0); a bias is ``bias_mant << 6`` (bias exponent 6, 13-bit
signed mantissa); a threshold is ``vThMant << 6`` (17 bits) with strict firing; reset is to 0.
Per population p the scale s_p maps the largest incoming weight to 254 (binary ±α layers
quantize exactly), lowered where vth would exceed 17 bits.

netx has no way to drop neurons from a convolution, so the netlist is first made whole again:
neurons the dead-neuron pass removed come back with their bias (they never reach a kept
neuron: that is why they were removed), and the integer reference steps exactly the network
the file holds. An OR-pool (max-pool of spikes) becomes a LIF with vth = 0 fed by its all-ones
grouped convolution with weight 1: it fires iff a spike arrived, then holds v = 0.
"""

from __future__ import annotations

import copy
from dataclasses import fields

import numpy as np
import scipy.sparse as sp

from snncompile.errors import EXIT_UNSUPPORTED, SnnCompileError
from snncompile.fixedpoint import neuron_int
from snncompile.fixedpoint.dynamics_int import INT_DECAY
from snncompile.fixedpoint.quantize import WARN_REL_ERROR, LayerError, QuantInfo, input_scale
from snncompile.netlist import (
    FixedNetlist,
    FixedPoint,
    InputPopulation,
    Netlist,
    NeuronPopulation,
    OrPopulation,
)
from snncompile.netlist.netlist import Projection, refuse_dynamics
from snncompile.netlist.populations import BiasMap, bias_map

WEIGHT_MAX = 254                  # netx: mixed-sign weights clip to [−256, 254]; symmetric here
BIAS_MANT_MAX = (1 << 12) - 1     # 13-bit signed bias mantissa
BIAS_EXP = 6                      # netx fixes bias_exp = 6
UNIT = 1 << neuron_int.ACT_SHIFT  # membrane units per weight unit (a_in << 6)
A_IN_MAX = (1 << 15) - 1          # Lava's LIF receives a_in as int16
HINT = "use --target lava --fixed-point (its fused emission runs every population kind and neuron model)"


def _refuse(message: str, hint: str = HINT) -> SnnCompileError:
    return SnnCompileError(message, hint, EXIT_UNSUPPORTED)


def whole(net: Netlist) -> Netlist:
    """A copy of ``net`` with every removed neuron back (index None, full biases and synapses)."""
    out = copy.copy(net)
    out.populations = {n: copy.copy(p) for n, p in net.populations.items()}
    out.projections = [copy.copy(p) for p in net.projections]
    for name, pop in out.populations.items():
        if pop.index is None:
            continue
        lazy = bias_map(pop)
        if lazy is None:
            raise _refuse(f"`{name}` lost neurons to the dead-neuron pass and its full bias is no longer known",
                          "rerun without that pass: --passes with every pass but dead_neurons")
        per_neuron = [k for k in ("v_threshold", "reset_by") if isinstance(getattr(pop.params, k, None), np.ndarray)]
        if per_neuron:
            raise _refuse(f"`{name}` has per-neuron {per_neuron[0]}, which a netx CUBA neuron cannot hold "
                          "(one vThMant per layer)")
        pop.bias = BiasMap(lazy.compact, lazy.shape)
        pop.index, pop.size = None, pop.logical_size
    for proj in out.projections:
        proj.rows = proj.cols = proj.explicit = None
    return out


def _drive_factor(pop: NeuronPopulation) -> float:
    return INT_DECAY(pop.params)(pop.params).input_factor


def _scale(pop: NeuronPopulation, proj: Projection, src_scale: float, th: float) -> float:
    """s_p: the largest incoming weight becomes 254 weight units, lower where vth would exceed
    17 bits or a bias netx's 13-bit mantissa."""
    if isinstance(pop, OrPopulation):
        return float(UNIT)          # weight 1 → 64 membrane units; fires on v > 0
    w = proj.weights
    peak = float(np.max(np.abs(w.data))) * _drive_factor(pop) / src_scale if w.nnz else 0.0
    s_p = WEIGHT_MAX * UNIT / peak if peak > 0 else UNIT * 1024.0 / max(th, 1e-300)
    if th * s_p > neuron_int.VTH_MAX * UNIT:
        s_p = neuron_int.VTH_MAX * UNIT / th
    bias = float(np.max(np.abs(pop.bias), initial=0.0)) * _drive_factor(pop) if pop.bias is not None else 0.0
    if bias * s_p > BIAS_MANT_MAX * (1 << BIAS_EXP):   # the bias mantissa is 13-bit signed
        s_p = BIAS_MANT_MAX * (1 << BIAS_EXP) / bias
    return s_p


def _weights(proj: Projection, factor: float, label: str) -> tuple[sp.csr_matrix, LayerError]:
    """Integer weights round(W·factor) with exponent 0, and the per-layer error row."""
    w = proj.weights.tocsr().astype(np.float64) * factor
    q = np.round(w.data)
    clipped = np.clip(q, -WEIGHT_MAX, WEIGHT_MAX)
    saturated = int(np.count_nonzero(clipped != q))
    denom = float(np.linalg.norm(w.data)) or 1.0
    rel = float(np.linalg.norm(clipped - w.data) / denom)
    lsb = float(np.max(np.abs(clipped - w.data))) if w.nnz else 0.0
    warn = ""
    if rel > WARN_REL_ERROR or saturated:
        warn = (f"{label}: weights lose precision in netx's 8 bits (relative error {rel:.2%}"
                + (f", {saturated} saturated" if saturated else "") + ")")
    q = sp.csr_matrix((clipped.astype(np.int64), w.indices.copy(), w.indptr.copy()), shape=w.shape)
    return q, LayerError(label, 0, rel, lsb, saturated, warn)


def worst_a_in(w: sp.csr_matrix, peak: float, signed: bool) -> float:
    """The largest |synapse sum| any input could deliver in one step: sources up to ``peak``
    (non-negative unless ``signed``)."""
    w = w.tocsr().astype(np.float64)
    if signed:
        return float(np.max(abs(w) @ np.full(w.shape[1], peak), initial=0.0))
    pos = w.maximum(0) @ np.full(w.shape[1], peak)
    neg = (-w).maximum(0) @ np.full(w.shape[1], peak)
    return float(max(np.max(pos, initial=0.0), np.max(neg, initial=0.0)))


def _fit_a_in(proj: Projection, pop: NeuronPopulation, s_p: float, src: tuple[float, float, bool],
              label: str) -> tuple[float, sp.csr_matrix, LayerError]:
    """Lower s_p until no input can overflow Lava's 16-bit synaptic input (a_in is received
    as int16 and would wrap): the scale, the integer weights and their error row."""
    src_scale, peak, signed = src
    for _ in range(16):
        qw, err = _weights(proj, _drive_factor(pop) * s_p / (UNIT * src_scale), label)
        worst = worst_a_in(qw, peak, signed)
        if worst <= A_IN_MAX:
            return s_p, qw, err
        s_p *= 0.98 * A_IN_MAX / worst
    raise ValueError(f"{label}: no scale keeps the synaptic input within 16 bits")  # pragma: no cover


def _neuron(name: str, pop: NeuronPopulation, s_p: float) -> neuron_int.LoihiLIF:
    """Lava's stock LIF for ``pop`` at scale s_p, or a refusal naming what netx lacks."""
    if isinstance(pop, OrPopulation):
        return neuron_int.LoihiLIF(du=neuron_int.DU_NONE, dv=0, vth=0)
    p = pop.params
    decay = INT_DECAY(p)(p)
    th = float(np.max(p.v_threshold))
    theta = int(round(th * s_p)) - (0 if p.strict else 1)      # h ≥ θ ⟺ h > θ − 1 on integers
    v_reset = 0 if p.v_reset is None else int(round(p.v_reset * s_p))
    cand = neuron_int.make(du=decay.du, dv=decay.dv, threshold=(max(theta, 0) >> neuron_int.VTH_SHIFT)
                           << neuron_int.VTH_SHIFT, strict=True, v_reset=v_reset, soft=p.v_reset is None)
    if not cand.stock or theta < 0:
        why = "; ".join(cand.reasons) or f"a negative threshold {th}"
        raise _refuse(f"`{name}` is a {p.name} neuron netx's CUBA neuron cannot express ({why}); "
                      "netx neurons are Lava's stock LIF: hard reset to 0, one threshold, strict >")
    return cand


def quantize_netx(plan: Netlist, x_sample: np.ndarray) -> tuple[FixedNetlist, QuantInfo]:
    """The whole network (removed neurons back) in integers under netx's rules: every
    projection with exponent 0 and weights in [−254, 254], biases ``mant << 6``, stock LIF."""
    refuse_dynamics(plan, INT_DECAY)
    net = whole(plan)
    q = FixedNetlist(**{f.name: getattr(net, f.name) for f in fields(Netlist)})
    s_in = input_scale(x_sample)
    xr = np.asarray(x_sample, dtype=np.float64)
    in_err = float(np.linalg.norm(np.round(xr * s_in) / s_in - xr) / max(np.linalg.norm(xr), 1e-300))
    info = QuantInfo(input_scale=s_in, input_rel_error=in_err, labels=dict(plan.labels))
    peak_in = float(np.max(np.abs(np.round(xr * s_in)), initial=1.0))
    # (scale of a source's values, their largest magnitude, whether they can be negative)
    sources = {n: ((s_in, peak_in, bool(np.min(xr, initial=0.0) < 0)) if isinstance(p, InputPopulation)
                   else (1.0, 1.0, False)) for n, p in q.populations.items()}
    for name, pop in sorted(q.populations.items(), key=lambda kv: kv[1].depth):
        if not isinstance(pop, NeuronPopulation):
            continue
        incoming = q.into(name)
        if len(incoming) != 1:
            continue   # the netx layout refuses it by name (a join of several sources)
        proj = incoming[0]
        th = float(np.max(pop.params.v_threshold))
        s_p = _scale(pop, proj, sources[proj.src][0], th)
        label = f"{q.label(proj.src)}→{q.label(proj.dst)}"   # messages name the user's module paths
        if isinstance(pop, OrPopulation):
            proj.weights, err = _or_weights(name, proj), LayerError(label, 0, 0.0, 0.0, 0)
        else:
            s_p, proj.weights, err = _fit_a_in(proj, pop, s_p, sources[proj.src], label)
        err.projection, err.layer = f"{proj.src}→{proj.dst}", label
        info.errors.append(err)
        info.scales[name] = s_p
        proj.weight_exp = 0
        params = _neuron(name, pop, s_p)
        info.stock.append(name)
        q.fixed[name] = FixedPoint(scale=s_p, bias=_bias(name, pop, s_p, info), params=params)
    q.input_scale = s_in
    return q, info


def _or_weights(name: str, proj: Projection) -> sp.csr_matrix:
    w = proj.weights.tocsr()
    if w.nnz and np.any(w.data <= 0):
        raise _refuse(f"`{name}` is an OR-pool fed by non-positive weights", HINT)
    return sp.csr_matrix((np.ones(w.nnz, dtype=np.int64), w.indices.copy(), w.indptr.copy()), shape=w.shape)


def _bias(name: str, pop: NeuronPopulation, s_p: float, info: QuantInfo) -> np.ndarray:
    """``mant << 6`` per neuron, mantissas 13-bit signed (saturation noted in the warnings)."""
    if isinstance(pop, OrPopulation) or pop.bias is None:
        return np.zeros(pop.size, dtype=np.int64)
    exact = np.asarray(pop.bias, dtype=np.float64) * _drive_factor(pop) * s_p / (1 << BIAS_EXP)
    mant = np.round(exact)
    clipped = np.clip(mant, -BIAS_MANT_MAX - 1, BIAS_MANT_MAX)
    if np.any(clipped != mant):
        worst = float(np.max(np.abs(exact)))
        info.notes.append(f"{name}: bias saturates netx's 13-bit mantissa ({worst:.0f} > {BIAS_MANT_MAX})")
    return (clipped.astype(np.int64) << BIAS_EXP)
