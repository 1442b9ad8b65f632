"""What each neuron dynamics becomes on the integer datapath (Loihi-style, 12-bit decays).

One entry per dynamics type: the factor folded into the incoming weights and bias
(1/τ or q for ``decay_input``), the membrane decay dv (v·(4096 − dv) >> 12) and the current
decay du in Lava's convention (u·(4096 − (du + 1)) >> 12; 4095: no current memory, u is this
step's input). The non-spiking NIR readouts are refused by name.
"""

from __future__ import annotations

from dataclasses import dataclass

from snncompile.fixedpoint.neuron_int import DECAY_ONE, DU_NONE
from snncompile.ir.dynamics import (
    IF,
    LI,
    LIF,
    PLIF,
    CubaLI,
    CubaLIF,
    DynamicsRegistry,
    Integrator,
    LoihiCuba,
    OrPool,
    Threshold,
)
from snncompile.netlist.netlist import refusal


@dataclass(frozen=True)
class IntDecay:
    input_factor: float      # folded into the weights and bias (decay_input)
    dv: int                  # 12-bit membrane decay (0: no leak; 4096: full decay, not stock)
    du: int = DU_NONE        # Lava's current decay (DU_NONE: no current memory)
    scale: float | None = None   # membrane units per float unit fixed by the model (None: the quantizer's choice)


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
    # Lava decays u by (du + 1)/4096 (its ds_offset): du = 4096·q_s − 1
    return IntDecay(float(p.decay) if p.decay_input else 1.0, int(round(4096 * p.decay)),
                    int(round(4096 * p.syn_decay)) - 1)


@INT_DECAY.register(LoihiCuba)
def _loihi(p: LoihiCuba) -> IntDecay:
    # already in Lava's integer membrane units (a netx import): quantization is the identity
    return IntDecay(1.0, int(p.dv), int(p.du), scale=1.0)
