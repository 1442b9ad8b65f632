"""Current-based LIF (NIR CubaLIF, snnTorch Synaptic, Loihi's CUBA compartment)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from snncompile.ir.dynamics.base import Firing
from snncompile.ir.dynamics.cuba import CurrentBased


@dataclass(frozen=True, kw_only=True, eq=False)
class CubaLIF(CurrentBased, Firing):
    """Current-based LIF: a synaptic current I (I[0] = 0, q_s = ``syn_decay`` ∈ [0, 1]) feeds
    the membrane (q = ``decay`` ∈ [0, 1]), which reads the new current:

        I[t] = I[t−1] − I[t−1]·q_s + X[t]
        H[t] = V[t−1] + (I[t] − (V[t−1] − V_r)) · q          (decay_input)
        H[t] = V[t−1] − (V[t−1] − V_r) · q + I[t]            (not decay_input)

    then fire and reset V as :class:`~snncompile.ir.dynamics.base.Firing`; I is never reset.
    """

    name: ClassVar[str] = "cubalif"
    title: ClassVar[str] = "CUBALIF"
