"""Current-based leaky integrator (NIR CubaLI): a non-spiking readout."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from snncompile.ir.dynamics.cuba import CurrentBased


@dataclass(frozen=True, kw_only=True, eq=False)
class CubaLI(CurrentBased):
    """Current-based leaky integrator, I[0] = 0, q_s = ``syn_decay``, q = ``decay`` (both in [0, 1]):

        I[t] = I[t−1] − I[t−1]·q_s + X[t]
        H[t] = V[t−1] + (I[t] − (V[t−1] − V_r)) · q          (decay_input)
        H[t] = V[t−1] − (V[t−1] − V_r) · q + I[t]            (not decay_input)
        V[t] = H[t],  y[t] = V[t]          (no threshold, no reset; outputs the membrane)
    """

    name: ClassVar[str] = "cubali"
    title: ClassVar[str] = "CUBALI"
    spiking: ClassVar[bool] = False
