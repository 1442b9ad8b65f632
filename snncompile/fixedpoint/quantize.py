"""Fixed-point quantization of a lowered network for Loihi-class integer hardware.

Works on the Netlist, where each synapse is an entry of a projection matrix: that is
what the chip stores. Per target population p a scale s_p maps its membrane potential to
integers. The neuron follows Lava's bit-accurate LIF (:mod:`snncompile.fixedpoint.neuron_int`):
the synapse sum is shifted left by 6 bits into the current, so a synapse delivers membrane
units / 64. Each projection's weights become 8-bit mantissas (even integers in [-254, 254],
as Lava's mixed-sign synapses store them) with a shared exponent: W·s_p/(64·s_src) ≈ w·2^e.
The largest weight of the first projection into p maps exactly to 254·2^e, so ±α binary
layers quantize without error; s_p is halved until every other projection's largest weight
fits an exponent ≤ 7 (a recurrent projection may be much larger). Thresholds become integers
θ = θ_f·s_p around 2^14 (higher when the weights would need an exponent below −8); a neuron
Lava's stock LIF can express (hard reset to 0, one threshold) gets vth with θ' = vth << 6:
fire on h > θ' where θ' = 64·⌊θ/64⌋ (strict) or 64·⌊(θ − 1)/64⌋ (``>=``: h ≥ θ ⟺ h > θ − 1),
exact on membranes that are multiples of 64 (integrate-and-fire), a threshold rounding of
< 64/2^14 otherwise. Other neurons (soft reset, v_r ≠ 0, per-neuron thresholds, full decay)
keep their exact integer rule as :class:`~snncompile.fixedpoint.neuron_int.ExtendedLIF`,
named in the report as not stock Loihi neurons. Soft-reset amounts become integers (one that
is not an integer at the scale is rounded and named in the warnings), biases 13-bit
mantissas with a 3-bit exponent, decays 12-bit (4096/τ). Inputs become 8-bit integers (a
power-of-two scale). The 1/τ input factor of decay_input=True is folded into the weights first.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field, fields

import numpy as np
import scipy.sparse as sp

from snncompile.fixedpoint import neuron_int
from snncompile.fixedpoint.dynamics_int import INT_DECAY, IntDecay
from snncompile.netlist import (
    OUTPUT,
    DelayPopulation,
    FixedNetlist,
    FixedPoint,
    HostPopulation,
    InputPopulation,
    Netlist,
    NeuronPopulation,
    OrPopulation,
    OutputKind,
    Population,
    PopulationRegistry,
    ProductPopulation,
)
from snncompile.netlist.netlist import refuse_delays, refuse_dynamics, refuse_host

MANTISSA = 254            # largest even 8-bit mixed-sign weight mantissa
THRESHOLD_TARGET = 1 << 14
EXP_RANGE = (-8, 7)       # Loihi weight exponent range
EXACT_EXP = -1            # the lowest weight exponent that keeps a sum of even mantissas exact
BIAS_MANT_BITS = 13
BIAS_EXP_MAX = 7          # 3-bit bias exponent
SYN = 1 << neuron_int.ACT_SHIFT   # membrane units per synapse unit (Lava shifts a_in by 6)
WARN_REL_ERROR = 0.01


@dataclass
class LayerError:
    projection: str        # IR names, ``src→dst``
    weight_exp: int
    rel_weight_error: float
    max_abs_error_lsb: float
    saturated: int
    warning: str = ""
    layer: str = ""        # the same by the user's module paths (``Netlist.label``)


@dataclass
class QuantInfo:
    input_scale: float
    input_rel_error: float
    scales: dict[str, float] = field(default_factory=dict)
    errors: list[LayerError] = field(default_factory=list)
    output_scale: float | None = None
    notes: list[str] = field(default_factory=list)   # neuron parameters rounded (soft-reset amounts)
    extended: dict[str, list[str]] = field(default_factory=dict)   # not a stock Loihi neuron: why
    stock: list[str] = field(default_factory=list)                 # populations of Lava's stock LIF
    labels: dict[str, str] = field(default_factory=dict)           # population → module path

    def to_dict(self) -> dict:
        return {"input_scale": self.input_scale, "input_rel_error": self.input_rel_error,
                "population_scales": self.scales, "output_scale": self.output_scale,
                "layers": [e.__dict__ for e in self.errors],
                "stock_loihi": not self.extended,
                "neurons": {**{n: {"layer": self.labels.get(n, n), "stock_loihi": True, "dynamics": "LoihiLIF"}
                               for n in self.stock},
                            **{n: {"layer": self.labels.get(n, n), "stock_loihi": False, "dynamics": "ExtendedLIF",
                                   "note": "not a stock Loihi neuron", "reasons": r}
                               for n, r in self.extended.items()}},
                "warnings": [e.warning for e in self.errors if e.warning] + self.notes}


def input_scale(x: np.ndarray) -> float:
    """Power-of-two scale that maps the inputs into 8 bits (7 + sign if negative)."""
    peak = float(np.max(np.abs(x))) if np.size(x) else 1.0
    limit = 127 if np.min(x) < 0 else 255
    return 2.0 ** math.floor(math.log2(limit / peak)) if peak > 0 else 1.0


def _exp_for(peak: float) -> int:
    if peak <= 0:
        return 0
    return int(min(max(math.ceil(math.log2(peak / MANTISSA)), EXP_RANGE[0]), EXP_RANGE[1]))


def _quantize_matrix(w: sp.csr_matrix, exp: int) -> tuple[sp.csr_matrix, int]:
    data = np.round(w.data / 2.0 ** exp / 2.0) * 2.0          # even mantissas
    clipped = np.clip(data, -MANTISSA - 2, MANTISSA)           # [-256, 254]
    q = sp.csr_matrix((clipped, w.indices.copy(), w.indptr.copy()), shape=w.shape)
    return q, int(np.count_nonzero(clipped != data))


def _bias_int(b: np.ndarray) -> np.ndarray:
    """13-bit mantissa << exponent, as Loihi stores biases."""
    limit = (1 << (BIAS_MANT_BITS - 1)) - 1
    peak = float(np.max(np.abs(b))) if b.size else 0.0
    exp = min(max(0, math.ceil(math.log2(peak / limit))), BIAS_EXP_MAX) if peak > limit else 0
    mant = np.clip(np.round(b / 2 ** exp), -limit - 1, limit).astype(np.int64)
    return (mant << exp).astype(np.int64)


QUANTIZE = PopulationRegistry("fixed-point quantization")   # (name, pop, _Quant) → its FixedPoint or None


@dataclass
class _Quant:
    """What quantizing one population reads: the integer netlist so far and the integer
    scale of each source's values."""

    q: FixedNetlist
    src_scale: dict[str, float]
    info: QuantInfo


def quantize_plan(plan: Netlist, x_sample: np.ndarray) -> tuple[FixedNetlist, QuantInfo]:
    """Return an integer copy of ``plan`` (a :class:`FixedNetlist`): every projection unrolled
    (one at a time) to explicit integer mantissas (``proj.explicit``) with ``proj.weight_exp``;
    every neuron and delay population's integer parameters in ``fixed``."""
    refuse_dynamics(plan, INT_DECAY)
    refuse_host(plan, "the fixed-point datapath (host partitions stay float: GELU, softmax and their like have "
                "no exact integer form)", "drop --fixed-point: the float reference runs host partitions exactly")
    refuse_delays(plan, "the fixed-point datapath (a delay of real values, not of spikes)",
                  "drop --fixed-point: a loop with no neuron on it runs in float", graded_only=True)
    # shares the chains' IR nodes: only explicit matrices are new
    q = FixedNetlist(**{f.name: getattr(plan, f.name) for f in fields(Netlist)})
    q.populations = {n: copy.copy(p) for n, p in plan.populations.items()}
    q.projections = [copy.copy(p) for p in plan.projections]
    for proj in q.projections:  # the chip stores explicit synapses: unroll one projection at a time
        proj.explicit = proj.matrix()
    s_in = input_scale(x_sample)
    xr = np.asarray(x_sample, dtype=np.float64)
    in_err = float(np.linalg.norm(np.round(xr * s_in) / s_in - xr) / max(np.linalg.norm(xr), 1e-300))
    info = QuantInfo(input_scale=s_in, input_rel_error=in_err, labels=dict(q.labels))
    src_scale: dict[str, float] = {n: 1.0 for n in q.populations}  # spikes are 0/1 integers
    for name, pop in sorted(q.populations.items(), key=lambda kv: kv[1].depth):
        if isinstance(pop, InputPopulation):
            src_scale[name] = s_in
        elif isinstance(pop, ProductPopulation):  # products of spike counts: integers already
            src_scale[name] = math.prod(src_scale[o.src] / o.scale for o in pop.operands)
    ctx = _Quant(q, src_scale, info)
    for name, pop in sorted(q.populations.items(), key=lambda kv: kv[1].depth):
        fixed = QUANTIZE(pop)(name, pop, ctx)
        if fixed is not None:
            q.fixed[name] = fixed
    outs = q.into(OUTPUT)
    if outs or q.output_kind is OutputKind.VALUES:
        peaks = [float(np.max(np.abs(p.weights.data))) / src_scale[p.src] for p in outs if p.weights.nnz]
        # with no synapse into the readout (all pruned) the bias alone sets the scale
        bias_peak = float(np.max(np.abs(q.output_bias), initial=0.0)) if q.output_bias is not None else 0.0
        s_out = MANTISSA * 2.0 ** 6 / (max(peaks) if peaks else (bias_peak or 1.0))
        for proj in outs:
            _quantize_projection(proj, s_out / src_scale[proj.src], info, q)
        q.output_qbias = _bias_int(np.asarray(q.output_bias) * s_out)
        info.output_scale = s_out
        q.output_scale = s_out
    q.input_scale = s_in
    return q, info


def _membrane_scale(pop: Population, incoming: list, f: float, th: np.ndarray,
                    src_scale: dict[str, float]) -> float:
    """s_p: the first projection's largest weight is 254·2^e synapse units (exact), θ near
    2^14, every exponent within [−8, 7] where the threshold range allows."""
    first = next((p for p in incoming if p.weights.nnz), None)
    if first is None:
        return THRESHOLD_TARGET / float(th.max())
    peak = float(np.max(np.abs(first.weights.data))) * f / src_scale[first.src]
    e = round(math.log2(THRESHOLD_TARGET * peak / (MANTISSA * float(th.max()))))
    # small weights against the threshold: raise θ (up to vth's 17 bits) rather than give the
    # weights an exponent below −1: the synapse sum is shifted right by −exp before it enters
    # u << 6, so its low bits would be lost (even mantissas make a shift by 1 exact)
    ceiling = math.floor(math.log2(neuron_int.VTH_MAX * SYN * peak / (MANTISSA * float(th.max()))))
    e = max(e, min(EXACT_EXP + neuron_int.ACT_SHIFT, ceiling))
    s_p = MANTISSA * 2.0 ** e / peak
    # another projection's largest weight must fit 254·2^7 too (a recurrent one, say):
    # halve the scale until it does (the first projection stays exact)
    largest = max(float(np.max(np.abs(p.weights.data))) * f / src_scale[p.src] for p in incoming if p.weights.nnz)
    while largest * s_p / SYN > MANTISSA * 2.0 ** EXP_RANGE[1]:
        s_p /= 2.0
    return s_p


@QUANTIZE.register(InputPopulation, ProductPopulation)
def _integers_already(name: str, pop: Population, ctx: _Quant) -> None:
    """The input (scaled by ``input_scale``) and products of integers need no parameters."""
    return None


@QUANTIZE.register(HostPopulation)
def _host(name: str, pop: HostPopulation, ctx: _Quant) -> None:
    """Never reached: quantize_plan refuses host partitions first (they stay float)."""
    raise ValueError(f"`{name}` is a host partition: quantize_plan refuses it (refuse_host)")


@QUANTIZE.register(NeuronPopulation, OrPopulation)
def _neurons(name: str, pop: NeuronPopulation, ctx: _Quant) -> FixedPoint:
    """Scale, weights, bias and the integer dynamics of one neuron population."""
    q, src_scale, info = ctx.q, ctx.src_scale, ctx.info
    incoming = q.into(name)
    decay = INT_DECAY(pop.params)(pop.params)
    f = decay.input_factor
    th = np.broadcast_to(np.asarray(pop.params.v_threshold, dtype=np.float64).reshape(-1), (pop.size,))
    s_p = decay.scale or _membrane_scale(pop, incoming, f, th, src_scale)
    info.scales[name] = s_p
    for proj in incoming:
        _quantize_projection(proj, f * s_p / (SYN * src_scale[proj.src]), info, q)
    bias = _bias_int(np.asarray(pop.bias, dtype=np.float64) * f * s_p)
    # a current-based neuron's bias feeds its current (I accumulates it); Lava adds a bias to v
    in_current = decay.du != neuron_int.DU_NONE and bool(np.any(bias))
    params = _int_neuron(name, pop, decay, th, s_p, in_current, info)
    if params.stock:
        info.stock.append(name)
    else:
        info.extended[name] = list(params.reasons)
    return FixedPoint(scale=s_p, bias=bias, params=params)


def _int_neuron(name: str, pop: Population, decay: IntDecay, th: np.ndarray, s_p: float, bias_current: bool,
                info: QuantInfo) -> neuron_int.IntNeuron:
    """Lava's stock LIF when the neuron is one up to the threshold rounding (hard reset to 0,
    one threshold), else the exact :class:`~snncompile.fixedpoint.neuron_int.ExtendedLIF`."""
    p = pop.params
    vr = p.v_reset
    theta = np.round(th * s_p).astype(np.int64)
    t = int(theta[0]) - (0 if p.strict else 1)          # h ≥ θ ⟺ h > θ − 1 on integers
    if vr is not None and round(vr * s_p) == 0 and np.all(theta == theta[0]) and t >= 0 and not bias_current:
        vth = t >> neuron_int.VTH_SHIFT
        cand = neuron_int.make(du=decay.du, dv=decay.dv, threshold=vth << neuron_int.VTH_SHIFT, strict=True)
        if cand.stock:
            return cand
    one = theta[0] if np.all(theta == theta[0]) else theta
    return neuron_int.make(du=decay.du, dv=decay.dv, threshold=one, strict=bool(p.strict),
                           v_reset=0 if vr is None else int(round(vr * s_p)), soft=vr is None,
                           reset_by=None if vr is not None else _reset_by_int(name, pop, th, s_p, info),
                           bias_current=bias_current)


@QUANTIZE.register(DelayPopulation)
def _relay(name: str, pop: DelayPopulation, ctx: _Quant) -> FixedPoint:
    """A relay of spikes (graded delays were refused): its one-to-one weight-1 synapses stay 0/1 integers."""
    for proj in ctx.q.into(name):
        w = proj.weights.tocsr()
        if not np.all(w.data == 1.0):   # pragma: no cover - a relay's drive is a population's spikes
            raise ValueError(f"delay `{name}` relays spikes through weights other than 1")
        proj.weights = sp.csr_matrix((w.data.astype(np.int64), w.indices, w.indptr), shape=w.shape)
        proj.weight_exp = 0
    ctx.info.scales[name] = 1.0
    return FixedPoint(scale=1.0, params=None, bias=np.zeros(pop.size, dtype=np.int64))


def _reset_by_int(name: str, pop: Population, th: np.ndarray, s_p: float, info: QuantInfo) -> np.ndarray:
    """The integer soft-reset amount round(ρ·s_p) (ρ = ``reset_by``, else θ: without the +1 of
    a strict threshold); a rounded ``reset_by`` is noted in ``info.notes``."""
    rho = pop.params.reset_by
    if rho is None:
        return np.round(th * s_p).astype(np.int64)
    exact = np.broadcast_to(np.asarray(rho, dtype=np.float64).reshape(-1), th.shape) * s_p
    q = np.round(exact).astype(np.int64)
    off = q != exact
    if off.any():
        i = int(np.argmax(np.abs(q - exact) / np.maximum(np.abs(exact), 1e-300)))
        what = f"{float(exact[i] / s_p):.6g}" if np.ndim(rho) == 0 else f"of {int(off.sum())} neurons (worst {float(exact[i] / s_p):.6g})"
        info.notes.append(f"{name}: soft-reset amount {what} is {exact[i]:.6g} at scale {s_p:.6g}, "
                          f"rounded to {q[i]} (relative error {abs(q[i] - exact[i]) / abs(exact[i]):.2e})")
    return q


def _quantize_projection(proj, factor: float, info: QuantInfo, net: Netlist) -> None:
    w = proj.weights.tocsr().astype(np.float64) * factor
    exp = _exp_for(float(np.max(np.abs(w.data))) if w.nnz else 0.0)
    qw, saturated = _quantize_matrix(w, exp)
    approx = qw.data * 2.0 ** exp
    denom = float(np.linalg.norm(w.data)) or 1.0
    rel = float(np.linalg.norm(approx - w.data) / denom)
    lsb = float(np.max(np.abs(approx - w.data)) / 2.0 ** exp) if w.nnz else 0.0
    layer = f"{net.label(proj.src)}→{net.label(proj.dst)}"
    warn = ""
    if rel > WARN_REL_ERROR or saturated:
        warn = (f"{layer}: weights lose precision in 8 bits (relative error {rel:.2%}"
                + (f", {saturated} saturated" if saturated else "") + ")")
    info.errors.append(LayerError(f"{proj.src}→{proj.dst}", exp, rel, lsb, saturated, warn, layer))
    proj.weights = qw
    proj.weight_exp = exp
