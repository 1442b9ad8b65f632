"""The integer neuron arithmetic: one time step of a population, as Lava's bit-accurate LIF.

The one copy of the integer neuron step: the integer reference simulator and the fused
Lava processes reach it through :mod:`snncompile.sim.kernels`, the SJNeuron fixed_pt
process model calls it directly. It follows ``lava.proc.lif.models.PyLifModelBitAcc``
(lava-nc 0.10.0) step for step, with a_in the synapse sum and b the bias (``mant << exp``):

    u = wrap24( sign(p)·(|p| >> 12) + (a_in << 6) ),   p = u·(4096 − (du + 1))
    v = clip( sign(q)·(|q| >> 12) + u + b,  ±(2^23 − 1) ),   q = v·(4096 − dv)
    s = v > (vth << 6);   v = 0 where s          (u is never reset)

The decayed value (not the decrement) is truncated toward zero; the current wraps at 24 bits
and the membrane saturates. du = 4095 makes u this step's input (a plain LIF or IF).

Two integer dynamics types carry the parameters:

- :class:`LoihiLIF`: exactly Lava's stock ``LIF`` (hard reset to 0, strict ``>``, one
  threshold ``vth << 6``, 12-bit du and dv);
- :class:`ExtendedLIF`: the same datapath with what stock Loihi lacks (fire on ``>=``, any
  integer or per-neuron threshold, reset to v_r ≠ 0 with the leak toward v_r, soft
  (subtractive) reset, a full decay dv = 4096, a bias that enters the current as in NIR's
  CubaLIF rather than the membrane). Not a stock Loihi neuron: its ``reasons`` say why, and
  the fixed-point report names it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

DECAY_BITS = 12
DECAY_ONE = 1 << DECAY_BITS        # a decay of 1: the value is forgotten
ACT_SHIFT = 6                      # synaptic input is MSB-aligned by 6 bits
VTH_SHIFT = 6                      # so is the threshold
UV_LIMIT = 1 << 23                 # u and v are 24-bit signed
V_MAX = UV_LIMIT - 1               # v saturates at ±(2^23 − 1)
VTH_MAX = (1 << 17) - 1            # vth is unsigned 17-bit
DU_NONE = DECAY_ONE - 1            # du = 4095 (+1 offset): u = this step's input, no current memory
DECAY_MAX = DECAY_ONE - 1          # du and dv are unsigned 12-bit


def decayed(x: np.ndarray, d: int | np.ndarray) -> np.ndarray:
    """``sign(x·(4096 − d))·(|x·(4096 − d)| >> 12)``: the decayed value truncated toward zero."""
    x = np.asarray(x, dtype=np.int64)
    if np.ndim(d) == 0 and int(d) == 0:           # no decay: the product is x << 12, exactly undone
        return x
    if np.ndim(d) == 0 and int(d) == DECAY_ONE:   # the value is forgotten
        return np.zeros_like(x)
    p = x * (DECAY_ONE - np.asarray(d, dtype=np.int64))
    # truncation toward zero: an arithmetic shift floors, so a negative p first gets 4095 added
    return (p + ((p >> 63) & (DECAY_ONE - 1))) >> DECAY_BITS


def wrap_current(u: np.ndarray) -> np.ndarray:
    """Lava's 24-bit wrap of u: above 2^23 subtract 2^24, at or below −2^23 add 2^24
    (exactly +2^23 is kept, as in ``AbstractPyLifModelFixed``)."""
    if u.size == 0 or (u.max() <= UV_LIMIT and u.min() > -UV_LIMIT):   # nothing to wrap (the usual case)
        return u
    u = np.where(u > UV_LIMIT, u - 2 * UV_LIMIT, u)
    return np.where(u <= -UV_LIMIT, u + 2 * UV_LIMIT, u)


def current(u: np.ndarray, a_in: np.ndarray, du: int, bias: np.ndarray | int = 0) -> np.ndarray:
    """The new current from the old one and this step's synaptic input ``a_in`` (``bias``:
    an extended neuron's bias in membrane units, added to the current)."""
    return wrap_current(decayed(u, du + 1) + (np.asarray(a_in, dtype=np.int64) << ACT_SHIFT) + bias)


def charge(v: np.ndarray, u: np.ndarray, bias: np.ndarray | int, dv: int, v_rest: int = 0) -> np.ndarray:
    """The membrane before firing: v decays toward ``v_rest`` (0 on Loihi), adds u and the bias."""
    h = decayed(v - v_rest, dv) + v_rest if v_rest else decayed(v, dv)
    return np.clip(h + u + bias, -V_MAX, V_MAX)


@dataclass(frozen=True)
class LoihiLIF:
    """Lava's stock ``LIF`` (``PyLifModelBitAcc``): du, dv 12-bit, fires on v > vth << 6, resets to 0."""

    du: int = DU_NONE
    dv: int = 0
    vth: int = 0
    stock: ClassVar[bool] = True
    strict: ClassVar[bool] = True
    soft: ClassVar[bool] = False
    v_reset: ClassVar[int] = 0
    reset_by: ClassVar[None] = None
    bias_current: ClassVar[bool] = False
    reasons: ClassVar[tuple[str, ...]] = ()

    def __post_init__(self) -> None:
        bad = [f"{k}={getattr(self, k)}" for k, hi in (("du", DECAY_MAX), ("dv", DECAY_MAX), ("vth", VTH_MAX))
               if not 0 <= int(getattr(self, k)) <= hi]
        if bad:
            raise ValueError(f"LoihiLIF: {', '.join(bad)} outside Lava's LIF ranges (du, dv 12-bit, vth 17-bit)")

    @property
    def threshold(self) -> int:
        """θ in membrane units: vth << 6."""
        return int(self.vth) << VTH_SHIFT

    def fire(self, h: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        s = h > self.threshold
        return s, np.where(s, 0, h)


@dataclass(frozen=True)
class ExtendedLIF:
    """Lava's datapath (current, decays, wrap, saturation) with snncompile's extensions; not a
    stock Loihi neuron. θ is any integer (per neuron); fires on h ≥ θ, or h > θ when ``strict``;
    hard reset to ``v_reset`` (v also leaks toward it) or, when ``soft``, v −= ρ (``reset_by``,
    θ when None). dv = 4096 (full decay) is allowed."""

    du: int = DU_NONE
    dv: int = 0
    threshold: Any = 0                  # int or per-neuron int array, membrane units
    strict: bool = False
    v_reset: int = 0
    soft: bool = False
    reset_by: Any = None
    bias_current: bool = False          # the bias enters the current (NIR CubaLIF), not v
    reasons: tuple[str, ...] = field(default=())   # what makes it not a stock Loihi neuron
    stock: ClassVar[bool] = False

    def fire(self, h: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        s = h > self.threshold if self.strict else h >= self.threshold
        if self.soft:
            return s, np.where(s, h - (self.threshold if self.reset_by is None else self.reset_by), h)
        return s, np.where(s, self.v_reset, h)


IntNeuron = LoihiLIF | ExtendedLIF


def make(*, du: int, dv: int, threshold: Any, strict: bool, v_reset: int = 0, soft: bool = False,
         reset_by: Any = None, bias_current: bool = False) -> IntNeuron:
    """The stock :class:`LoihiLIF` when the integer parameters are one (strict, hard reset to 0,
    one threshold that is a multiple of 64 within 17 bits, du and dv 12-bit), else an
    :class:`ExtendedLIF` that lists why not."""
    th = np.asarray(threshold, dtype=np.int64).reshape(-1)
    reasons = []
    if soft:
        reasons.append("soft (subtractive) reset")
    elif v_reset != 0:
        reasons.append(f"reset to {v_reset} (stock: 0)")
    if not strict:
        reasons.append("fires on >= (stock: >)")
    if th.size and np.any(th != th[0]):
        reasons.append("per-neuron thresholds (stock: one vth)")
    elif th.size and (th[0] % (1 << VTH_SHIFT) or not 0 <= th[0] >> VTH_SHIFT <= VTH_MAX):
        reasons.append(f"threshold {int(th[0])} is not vth << 6 with a 17-bit vth")
    if bias_current:
        reasons.append("bias enters the current (stock: the membrane)")
    for name, d in (("du", du), ("dv", dv)):
        if not 0 <= d <= DECAY_MAX:
            reasons.append(f"{name}={d} outside 12 bits")
    if not reasons:
        return LoihiLIF(du=int(du), dv=int(dv), vth=int(th[0]) >> VTH_SHIFT if th.size else 0)
    return ExtendedLIF(du=int(du), dv=int(dv), threshold=threshold, strict=bool(strict), v_reset=int(v_reset),
                       soft=bool(soft), reset_by=reset_by, bias_current=bool(bias_current),
                       reasons=tuple(reasons))


def initial_state(p: IntNeuron, batch: int, size: int) -> tuple[np.ndarray, np.ndarray]:
    """(v, u) at t = 0: v at the reset value, no current."""
    return np.full((batch, size), p.v_reset, dtype=np.int64), np.zeros((batch, size), dtype=np.int64)


def step(state: tuple[np.ndarray, np.ndarray], a_in: np.ndarray, bias: np.ndarray | int,
         p: IntNeuron) -> tuple[np.ndarray, tuple[np.ndarray, np.ndarray]]:
    """``(spikes, (v, u))`` after one step from ``state`` = (v, u) and the synapse sum ``a_in``
    (integers; the bias is added to v, not shifted)."""
    v, u = state
    u = current(u, a_in, p.du, bias if p.bias_current else 0)
    h = charge(v, u, 0 if p.bias_current else bias, p.dv, p.v_reset)
    s, v = p.fire(h)
    return s.astype(np.int64), (v.astype(np.int64), u)
