"""The current-based models' shared part (CubaLI, CubaLIF): the synaptic current and its step."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from snncompile.ir.dynamics.base import Dynamics, charge_mul, check_fraction


@dataclass(frozen=True, kw_only=True, eq=False)
class CurrentBased(Dynamics):
    """A synaptic current I (I[0] = 0, q_s = ``syn_decay`` ∈ [0, 1]) feeds the membrane
    (q = ``decay`` ∈ [0, 1]), which reads the new current:

        I[t] = I[t−1] − I[t−1]·q_s + X[t]
        H[t] = V[t−1] + (I[t] − (V[t−1] − V_r)) · q          (decay_input)
        H[t] = V[t−1] − (V[t−1] − V_r) · q + I[t]            (not decay_input)
    """

    decay: float = 0.5
    syn_decay: float = 0.5
    decay_input: bool = True
    current_based: ClassVar[bool] = True
    leaky: ClassVar[bool] = True

    def __post_init__(self) -> None:
        super().__post_init__()
        check_fraction(self.name, "decay", self.decay)
        check_fraction(self.name, "syn_decay", self.syn_decay)

    def current(self, i: Any, x: Any) -> Any:
        """I[t] from I[t−1] and the input X[t]."""
        return i - i * self.syn_decay + x

    def charge(self, v: Any, x: Any) -> Any:
        return charge_mul(v, x, self.v_init, self.decay, self.decay_input)

    def leak_text(self) -> str:
        return f" q={self.decay:.4g} q_syn={self.syn_decay:.4g}"

    def input_text(self) -> str:
        return f" decay_input={self.decay_input}"
