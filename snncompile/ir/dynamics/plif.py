"""Parametric LIF: the leak is a decay q (spikingjelly ParametricLIFNode, NIR LIF)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from snncompile.ir.dynamics.base import Firing, charge_mul, check_fraction


@dataclass(frozen=True, kw_only=True, eq=False)
class PLIF(Firing):
    """Parametric leaky integrate-and-fire, q = ``decay`` ∈ [0, 1] (sigmoid(w) in spikingjelly,
    dt/τ for NIR's LIF under forward Euler):

        decay_input:      H[t] = V[t−1] + (X[t] − (V[t−1] − V_r)) · q
        not decay_input:  H[t] = V[t−1] − (V[t−1] − V_r) · q + X[t]

    then fire and reset as :class:`~snncompile.ir.dynamics.base.Firing`; V[0] = V_r.
    """

    decay: float = 0.5
    decay_input: bool = True
    name: ClassVar[str] = "plif"
    title: ClassVar[str] = "PLIF"
    leaky: ClassVar[bool] = True

    def __post_init__(self) -> None:
        super().__post_init__()
        check_fraction(self.name, "decay", self.decay)

    def charge(self, v: Any, x: Any) -> Any:
        return charge_mul(v, x, self.v_init, self.decay, self.decay_input)

    def leak_text(self) -> str:
        return f" q={self.decay:.4g}"

    def input_text(self) -> str:
        return f" decay_input={self.decay_input}"
