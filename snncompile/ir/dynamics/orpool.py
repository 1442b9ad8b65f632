"""The OR neuron of a max-pool of spikes."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from snncompile.ir.dynamics.base import Firing, charge_div


@dataclass(frozen=True, kw_only=True, eq=False)
class OrPool(Firing):
    """OR of the spikes in a pooling window (a max-pool of spikes, fed by an all-ones conv):
    a LIF with τ = 1, V_r = 0, V_th = 1, so

        H[t] = V[t−1] + (X[t] − (V[t−1] − 0)) / 1 = X[t]   (spikes in the window)
        S[t] = Θ(H[t] − 1)                                  (1 iff one of them spiked)
        V[t] = (1 − S[t])·H[t] = 0                          (memoryless)

    Its parameters are fixed; computed with LIF's operations, so results are bit-equal.
    """

    name: ClassVar[str] = "or"
    title: ClassVar[str] = "OR"
    role: ClassVar[str] = "or"
    population_kind: ClassVar[str] = "or"
    stored: ClassVar[tuple[str, ...]] = ()          # fixed parameters: nothing to store
    tau: ClassVar[float] = 1.0
    decay_input: ClassVar[bool] = True

    def __post_init__(self) -> None:
        super().__post_init__()
        if not (self.v_reset == 0.0 and self.reset_by is None and not self.strict
                and (not isinstance(self.v_threshold, float | int) or self.v_threshold == 1.0)):
            raise ValueError("or: an OR-pool neuron has v_threshold=1, v_reset=0, no strict firing")

    def charge(self, v: Any, x: Any) -> Any:
        return charge_div(v, x, 0.0, 1.0, True)

    def leak_text(self) -> str:
        return " tau=1"

    def describe(self) -> str:
        return "OR (max-pool of spikes)"
