"""The ``loihi`` emission's rules: which standard Lava process each population becomes.

The loihi emission builds a quantized netlist from Lava's own processes only — a
``RingBuffer`` source for the input, ``Dense``/``Sparse``/``DelaySparse`` synapses and
``LIFReset`` neurons (Lava's stock bit-accurate LIF that also zeroes u and v between samples)
— so every process has a Loihi 2 NeuroCore model in Intel's lava-loihi. This module decides,
without importing Lava, what each population becomes or why it cannot: the parent process
refuses a network by name before a worker starts, and the worker builds from the same specs.

Exact rewrites: an OR-pool neuron (an :class:`~snncompile.fixedpoint.neuron_int.ExtendedLIF`
firing on ``h ≥ θ`` with full decay) is fed only by non-negative synapses from spiking
sources and has no bias, so its membrane is 0 unless a spike reached it this step, and then at
least one synapse unit; Lava's LIF with du = 4095, dv = 0, vth = 0 fires on ``v > 0`` and
resets to 0, which is the same sequence of spikes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from snncompile.errors import EXIT_UNSUPPORTED, EXIT_USAGE, SnnCompileError
from snncompile.fixedpoint import neuron_int
from snncompile.fixedpoint.neuron_int import ExtendedLIF, LoihiLIF
from snncompile.fixedpoint.quantize import BIAS_EXP_MAX, BIAS_MANT_BITS
from snncompile.netlist import (
    DelayPopulation,
    FixedNetlist,
    HostPopulation,
    InputPopulation,
    Netlist,
    NeuronPopulation,
    OrPopulation,
    PopulationRegistry,
    ProductPopulation,
    host_refusal,
)

EMISSION = "loihi"
OTHERS = "use --emit stock (Lava's synapses with snncompile's SJNeuron) or --emit fused, which run it on CPU processes"


@dataclass(frozen=True)
class LifSpec:
    """The parameters of one ``LIFReset`` process (Lava's fixed_pt units)."""

    du: int
    dv: int
    vth: int
    bias_mant: np.ndarray
    bias_exp: np.ndarray
    rewrite: str = ""        # the exact rewrite that made it a stock LIF, if any


def _refuse(message: str, hint: str = OTHERS) -> SnnCompileError:
    return SnnCompileError(message, hint, EXIT_UNSUPPORTED)


def split_bias(bias: np.ndarray, name: str) -> tuple[np.ndarray, np.ndarray]:
    """Integer biases → (13-bit mantissa, 3-bit exponent) per neuron, ``mant << exp == bias``."""
    b = np.asarray(bias, dtype=np.int64)
    limit = 1 << (BIAS_MANT_BITS - 1)
    exp = np.zeros(b.shape, dtype=np.int64)
    mant = b.copy()
    for _ in range(BIAS_EXP_MAX):   # the smallest exponent that fits: halve while too large and even
        big = ((mant >= limit) | (mant < -limit)) & (mant % 2 == 0)
        if not big.any():
            break
        mant = np.where(big, mant >> 1, mant)
        exp = np.where(big, exp + 1, exp)
    if np.any((mant >= limit) | (mant < -limit)):
        raise _refuse(f"population `{name}`: a bias does not fit Lava's 13-bit mantissa and 3-bit exponent",
                      "this is a quantizer bug: report it with the model")
    return mant, exp


def _stock(name: str, params: LoihiLIF, bias: np.ndarray, rewrite: str = "") -> LifSpec:
    mant, exp = split_bias(bias, name)
    return LifSpec(int(params.du), int(params.dv), int(params.vth), mant, exp, rewrite)


def _extended(plan: FixedNetlist, name: str, params: ExtendedLIF) -> LifSpec:
    raise _refuse(f"population `{name}` is not a stock Loihi neuron ({'; '.join(params.reasons)}): the loihi "
                  "emission runs Lava's standard LIF only")


INT_NEURON: dict[type, Callable[..., LifSpec]] = {
    LoihiLIF: lambda plan, name, params: _stock(name, params, plan.fixed[name].bias),
    ExtendedLIF: _extended,
}


def _or_pool_rewrite(plan: FixedNetlist, name: str) -> str:
    """Why the OR-pool ``name`` is exactly a LIF with vth = 0, or '' if it is not: memoryless
    (no current memory, full decay to 0), no bias, and every synapse from a spiking source
    non-negative and alone enough to reach θ, so the reference fires iff a spike arrived."""
    fixed, p = plan.fixed[name], plan.fixed[name].params
    if (np.any(fixed.bias != 0) or p.du != neuron_int.DU_NONE or p.dv != neuron_int.DECAY_ONE or p.soft
            or p.v_reset != 0 or np.ndim(p.threshold) or not 0 < int(p.threshold)):
        return ""
    for proj in plan.into(name):
        if plan.populations[proj.src].graded or proj.delay:
            return ""
        data = proj.weights.tocsr().data
        data = data[data != 0]
        if not data.size:
            continue
        e = proj.weight_exp
        smallest = int(data.min()) << e if e >= 0 else int(data.min()) >> -e   # Lava's shift of one synapse
        strict = int(p.strict)
        if data.min() <= 0 or (smallest << neuron_int.ACT_SHIFT) < int(p.threshold) + strict:
            return ""
    return "OR-pool as LIF(du=4095, dv=0, vth=0): non-negative synapses from spikes, so v > 0 iff a spike arrived"


STANDARD = PopulationRegistry("standard Lava process (loihi emission)")   # (plan, name, pop) → spec / None


@STANDARD.register(InputPopulation)
def _ring_buffer(plan: FixedNetlist, name: str, pop: InputPopulation) -> None:
    """The input: a ``RingBuffer`` source of graded integers round(x·input_scale)."""
    return None


@STANDARD.register(NeuronPopulation)
def _lif(plan: FixedNetlist, name: str, pop: NeuronPopulation) -> LifSpec:
    params = plan.fixed[name].params
    return INT_NEURON[type(params)](plan, name, params)


@STANDARD.register(OrPopulation)
def _or_pool(plan: FixedNetlist, name: str, pop: OrPopulation) -> LifSpec:
    params = plan.fixed[name].params
    if isinstance(params, LoihiLIF):
        return _stock(name, params, plan.fixed[name].bias)
    why = _or_pool_rewrite(plan, name)
    if not why:
        raise _refuse(f"OR-pool `{name}` is fed by graded, delayed or negative synapses: no exact standard "
                      "LIF rewrite")
    return _stock(name, LoihiLIF(du=neuron_int.DU_NONE, dv=0, vth=0), plan.fixed[name].bias, why)


@STANDARD.register(ProductPopulation)
def _product(plan: FixedNetlist, name: str, pop: ProductPopulation) -> LifSpec:
    raise _refuse(f"population `{name}` is a spike·spike product (attention scores): Lava's standard processes "
                  "have no synapse whose weights change every step")


@STANDARD.register(DelayPopulation)
def _delay(plan: FixedNetlist, name: str, pop: DelayPopulation) -> LifSpec:
    raise _refuse(f"`{name}` is a delay population (a recurrent loop or a NIR Delay): the loihi emission has no "
                  "standard process for it", "use --emit fused")


@STANDARD.register(HostPopulation)
def _host(plan: FixedNetlist, name: str, pop: HostPopulation) -> LifSpec:
    raise _refuse(host_refusal(pop, "the loihi emission (Lava's standard processes)"),
                  "use --emit fused, which runs host partitions as graded CPU processes")


def standard_specs(plan: Netlist) -> dict[str, LifSpec | None]:
    """Each population's standard process, or the error naming the first one that has none."""
    if not isinstance(plan, FixedNetlist):
        raise SnnCompileError("the loihi emission runs Lava's bit-accurate fixed_pt models of a quantized network",
                              "add --fixed-point", EXIT_USAGE)
    return {name: STANDARD(pop)(plan, name, pop) for name, pop in plan.populations.items()}


def rewrites(plan: FixedNetlist) -> dict[str, str]:
    """The exact rewrites the loihi emission applies, per population (for the report)."""
    return {n: s.rewrite for n, s in standard_specs(plan).items() if s is not None and s.rewrite}
