"""A perfect integrator (NIR I / Integrator): a non-spiking readout."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from snncompile.ir.dynamics.base import Dynamics


@dataclass(frozen=True, kw_only=True, eq=False)
class Integrator(Dynamics):
    """Integrator, V[0] = V_r = ``v_reset``:

        H[t] = V[t−1] + X[t]
        V[t] = H[t],  y[t] = V[t]          (no threshold, no reset; outputs the membrane)
    """

    name: ClassVar[str] = "integrator"
    title: ClassVar[str] = "INTEGRATOR"
    spiking: ClassVar[bool] = False

    def charge(self, v: Any, x: Any) -> Any:
        return v + x
