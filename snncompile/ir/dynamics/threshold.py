"""A stateless threshold unit (NIR Threshold)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from snncompile.ir.dynamics.base import Firing


@dataclass(frozen=True, kw_only=True, eq=False)
class Threshold(Firing):
    """Stateless: the membrane is the input of this step,

        H[t] = X[t]          (computed as X[t] + 0·V[t−1])

    then fire and reset as :class:`~snncompile.ir.dynamics.base.Firing` (the reset does not
    matter: the next H ignores V). NIR Threshold fires on H > V_th (``strict``).
    """

    name: ClassVar[str] = "threshold"
    title: ClassVar[str] = "THRESHOLD"

    def charge(self, v: Any, x: Any) -> Any:
        return x + 0.0 * v

    def input_text(self) -> str:
        return " decay_input=False"
