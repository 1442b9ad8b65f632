"""What each neuron dynamics becomes on the integer datapath (Loihi-style, 12-bit decays).

One entry per dynamics type: the factor folded into the incoming weights and bias
(1/τ or q for ``decay_input``), the 12-bit membrane decay dv and the 12-bit current decay
du (None: no current). The non-spiking NIR readouts are refused by name.
"""

from __future__ import annotations

from dataclasses import dataclass

from snncompile.ir.dynamics import (
    IF,
    LI,
    LIF,
    PLIF,
    CubaLI,
    CubaLIF,
    DynamicsRegistry,
    Integrator,
    OrPool,
    Threshold,
)
from snncompile.netlist.netlist import refusal

DECAY_ONE = 1 << 12   # a decay of 1 in 12 bits (full decay)


@dataclass(frozen=True)
class IntDecay:
    input_factor: float      # folded into the weights and bias (decay_input)
    dv: int                  # 12-bit membrane decay (0: no leak)
    du: int | None = None    # 12-bit current decay of a current-based model


INT_DECAY = DynamicsRegistry("fixed-point decay")

_WHERE = "the fixed-point datapath (24-bit membrane and current, spikes only)"
_HINT = "drop --fixed-point: non-spiking NIR neurons (LI, I, CubaLI) run in float"
INT_DECAY.register(LI)(refusal("LI", _WHERE, _HINT))
INT_DECAY.register(Integrator)(refusal("I", _WHERE, _HINT))
INT_DECAY.register(CubaLI)(refusal("CubaLI", _WHERE, _HINT))


@INT_DECAY.register(IF)
def _if(p: IF) -> IntDecay:
    return IntDecay(1.0, 0)


@INT_DECAY.register(Threshold)
def _threshold(p: Threshold) -> IntDecay:
    return IntDecay(1.0, DECAY_ONE)   # full decay: h = v_r + x, i.e. x (threshold neurons reset to 0)


@INT_DECAY.register(LIF, OrPool)
def _lif(p: LIF | OrPool) -> IntDecay:
    return IntDecay(1.0 / p.tau if p.decay_input else 1.0, int(round(4096 / p.tau)))


@INT_DECAY.register(PLIF)
def _plif(p: PLIF) -> IntDecay:
    return IntDecay(float(p.decay) if p.decay_input else 1.0, int(round(4096 * p.decay)))


@INT_DECAY.register(CubaLIF)
def _cubalif(p: CubaLIF) -> IntDecay:
    return IntDecay(float(p.decay) if p.decay_input else 1.0, int(round(4096 * p.decay)),
                    int(round(4096 * p.syn_decay)))
