"""Leaky integrate-and-fire with time constant τ (spikingjelly LIFNode, snnTorch Leaky)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from snncompile.ir.dynamics.base import Firing, charge_div, check_positive


@dataclass(frozen=True, kw_only=True, eq=False)
class LIF(Firing):
    """Leaky integrate-and-fire, τ = ``tau`` (> 0), V_r = ``v_reset`` (0 for soft reset):

        decay_input:      H[t] = V[t−1] + (X[t] − (V[t−1] − V_r)) / τ
        not decay_input:  H[t] = V[t−1] − (V[t−1] − V_r) / τ + X[t]

    then fire and reset as :class:`~snncompile.ir.dynamics.base.Firing`; V[0] = V_r.
    """

    tau: float = 2.0
    decay_input: bool = True
    name: ClassVar[str] = "lif"
    title: ClassVar[str] = "LIF"
    leaky: ClassVar[bool] = True

    def __post_init__(self) -> None:
        super().__post_init__()
        check_positive(self.name, "tau", self.tau)

    def charge(self, v: Any, x: Any) -> Any:
        return charge_div(v, x, self.v_init, self.tau, self.decay_input)

    def leak_text(self) -> str:
        return f" tau={self.tau:g}"

    def input_text(self) -> str:
        return f" decay_input={self.decay_input}"
