"""Leaky integrator without threshold (NIR LI): a non-spiking readout."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from snncompile.ir.dynamics.base import Dynamics, charge_mul, check_fraction


@dataclass(frozen=True, kw_only=True, eq=False)
class LI(Dynamics):
    """Leaky integrator, q = ``decay`` ∈ [0, 1], V_r = ``v_reset`` (rest and start value):

        decay_input:      H[t] = V[t−1] + (X[t] − (V[t−1] − V_r)) · q
        not decay_input:  H[t] = V[t−1] − (V[t−1] − V_r) · q + X[t]
        V[t] = H[t],  y[t] = V[t]          (no threshold, no reset; outputs the membrane)
    """

    decay: float = 0.5
    decay_input: bool = True
    name: ClassVar[str] = "li"
    title: ClassVar[str] = "LI"
    spiking: ClassVar[bool] = False
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
