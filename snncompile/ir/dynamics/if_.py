"""Integrate-and-fire (spikingjelly IFNode, NIR IF with r = 1)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from snncompile.ir.dynamics.base import Firing


@dataclass(frozen=True, kw_only=True, eq=False)
class IF(Firing):
    """Integrate-and-fire, no leak:

        H[t] = V[t−1] + X[t]

    then fire and reset as :class:`~snncompile.ir.dynamics.base.Firing`; V[0] = V_r.
    """

    name: ClassVar[str] = "if"
    title: ClassVar[str] = "IF"

    def charge(self, v: Any, x: Any) -> Any:
        return v + x
