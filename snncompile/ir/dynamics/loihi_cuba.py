"""Lava's bit-accurate CUBA LIF in its own integer units (what a lava-dl netx file holds)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from snncompile.ir.dynamics.base import Firing

_SHIFT = 12                  # decays are 12-bit fractions of 4096
_ONE = 1 << _SHIFT
_LIMIT = 1 << 23             # u and v are 24-bit signed


def _decayed(x: Any, d: Any) -> Any:
    """sign(p)·(|p| >> 12) with p = x·(4096 − d): the decayed value truncated toward zero.
    Operators only (numpy arrays and torch tensors); exact on integer-valued float64."""
    p = x * (_ONE - d)
    q = p // _ONE
    return q + ((p < 0) & (p % _ONE != 0))


@dataclass(frozen=True, kw_only=True, eq=False)
class LoihiCuba(Firing):
    """Lava's ``LIF`` fixed_pt model (``PyLifModelBitAcc``) in membrane units, the units of a
    netx CUBA neuron after the synapse's shift by 6: the input X[t] (= 64·Σ W_file·s) and the
    bias (= 64·bias) are already shifted, V_th = 64·vThMant, du = iDecay − 1, dv = vDecay:

        I[t] = wrap24( sign(p)·(|p| >> 12) + X[t] ),   p = I[t−1]·(4096 − (du + 1))
        H[t] = clip( sign(q)·(|q| >> 12) + I[t],  ±(2^23 − 1) ),   q = V[t−1]·(4096 − dv)
        S[t] = H[t] > V_th;   V[t] = 0 where S[t]                (u is never reset)

    A bias enters with X (the current): equal to Lava's bias on the membrane when du = 4095
    (no current memory), which the netx importer requires of a biased layer.
    """

    du: int = _ONE - 1
    dv: int = 0
    strict: bool = True
    name: ClassVar[str] = "loihi_cuba"
    title: ClassVar[str] = "LOIHI-CUBA"
    current_based: ClassVar[bool] = True
    leaky: ClassVar[bool] = True

    def __post_init__(self) -> None:
        super().__post_init__()
        for k in ("du", "dv"):
            if not 0 <= int(getattr(self, k)) < _ONE:
                raise ValueError(f"loihi_cuba: {k}={getattr(self, k)} outside 12 bits (0..4095)")
        if self.v_reset != 0.0 or not self.strict or self.reset_by is not None:
            raise ValueError("loihi_cuba: Lava's LIF fires on v > vth and resets to 0 (v_reset=0, strict)")

    @property
    def syn_decay(self) -> float:
        """The fraction of I lost per step, (du + 1)/4096 (before truncation): for bounds."""
        return (self.du + 1) / _ONE

    def current(self, i: Any, x: Any) -> Any:
        u = _decayed(i, self.du + 1) + x
        return u - (u > _LIMIT) * (2 * _LIMIT) + (u <= -_LIMIT) * (2 * _LIMIT)

    def charge(self, v: Any, x: Any) -> Any:
        h = _decayed(v, self.dv) + x
        h = h - (h > _LIMIT - 1) * (h - (_LIMIT - 1))
        return h - (h < 1 - _LIMIT) * (h + _LIMIT - 1)

    def leak_text(self) -> str:
        return f" du={self.du} dv={self.dv}"
