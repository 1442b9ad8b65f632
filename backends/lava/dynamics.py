"""The parameters of Lava's SJNeuron process per neuron dynamics (stock emission).

SJNeuron carries one model code and one leak value: IF, LIF (leak τ), parametric LIF
(leak q) and threshold units. The fused emission runs every model through the shared
kernels; the stock one refuses the NIR-only models by name. Free of Lava imports, so the
coverage test reads it without Lava.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from snncompile.ir.dynamics import (
    IF,
    LI,
    LIF,
    PLIF,
    CubaLI,
    CubaLIF,
    Dynamics,
    DynamicsRegistry,
    Integrator,
    LoihiCuba,
    OrPool,
    Threshold,
    refused,
)
from snncompile.netlist.netlist import refusal


@dataclass(frozen=True)
class SJParams:
    code: int                # SJNeuron's model_code
    leak: float = 1.0        # τ (LIF) or q (parametric LIF); unused otherwise
    decay_input: bool = True


SJ_PARAMS = DynamicsRegistry("Lava SJNeuron parameters")

_WHERE = "the stock Lava emission (Lava's LIF-style SJNeuron)"
_HINT = "use --emit fused"
SJ_PARAMS.register(LI)(refusal("LI", _WHERE, _HINT))
SJ_PARAMS.register(Integrator)(refusal("I", _WHERE, _HINT))
SJ_PARAMS.register(CubaLI)(refusal("CubaLI", _WHERE, _HINT))
SJ_PARAMS.register(CubaLIF)(refusal("CubaLIF", _WHERE, _HINT))
SJ_PARAMS.register(LoihiCuba)(refused(
    "population `{name}` is a {model} neuron (Lava's integer CUBA LIF, from a netx file), which " + _WHERE + " cannot run",
    "use --emit fused, or --fixed-point --emit loihi (Lava's own LIF)"))


@SJ_PARAMS.register(IF)
def _if(p: IF) -> SJParams:
    return SJParams(0)


@SJ_PARAMS.register(LIF, OrPool)
def _lif(p: LIF | OrPool) -> SJParams:
    return SJParams(1, p.tau, p.decay_input)


@SJ_PARAMS.register(PLIF)
def _plif(p: PLIF) -> SJParams:
    return SJParams(2, p.decay, p.decay_input)


@SJ_PARAMS.register(Threshold)
def _threshold(p: Threshold) -> SJParams:
    return SJParams(3, 1.0, False)


# model_code → the dynamics the float process model steps with (the inverse of SJ_PARAMS)
FROM_CODE: dict[int, Callable[..., Dynamics]] = {
    0: lambda leak, decay_input, **firing: IF(**firing),
    1: lambda leak, decay_input, **firing: LIF(tau=leak, decay_input=decay_input, **firing),
    2: lambda leak, decay_input, **firing: PLIF(decay=leak, decay_input=decay_input, **firing),
    3: lambda leak, decay_input, **firing: Threshold(**firing),
}


def from_code(code: int, leak: float, decay_input: bool, **firing: Any) -> Dynamics:
    """The dynamics of an SJNeuron with ``model_code`` ``code`` (``firing``: v_threshold,
    v_reset, strict, reset_by)."""
    return FROM_CODE[code](leak, decay_input, **firing)
