"""One time step of a neuron population in Loihi-style integer arithmetic.

The datapath of Lava's fixed_pt LIF (12-bit decay with truncation toward zero, 24-bit
saturating membrane) with spikingjelly's semantics on top: fire on ``v >= θ``, hard reset
to ``v_r`` or soft (subtractive) reset, per-neuron thresholds. Shared by the integer
reference simulator and the SJNeuron fixed_pt process model, so the two agree bit for bit.

    h = v - ((v - v_r)·dv ÷ 4096, truncated toward 0) + x      (dv = 0 for IF)
    h = clip(h, -2^23, 2^23 - 1);  s = h >= θ;  v' = s ? (soft ? h - ρ : v_r) : h

ρ is the integer soft-reset amount (``reset_by``; θ when None). A current-based neuron
(``cubalif``, Loihi's CUBA compartment) has a second state, the current u, updated first:

    u' = clip(u - (u·du ÷ 4096, truncated toward 0) + x);   h = v - leak(v) + u'   (u is not reset)

The input factor 1/τ of ``decay_input=True`` is folded into the quantized weights and bias.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

DECAY_BITS = 12
STATE_MAX = (1 << 23) - 1
STATE_MIN = -(1 << 23)


@dataclass(frozen=True)
class IntNeuronParams:
    dv: int                 # 12-bit membrane decay: round(4096/τ), round(4096·q), 0 for IF
    threshold: np.ndarray   # int per neuron (or scalar array)
    v_reset: int            # integer reset potential (0 for soft reset)
    soft: bool
    reset_by: np.ndarray | int | None = None   # integer soft-reset amount ρ (None: threshold)
    du: int | None = None   # 12-bit current decay round(4096·q_s) of a current-based neuron (state (v, u))


def leak(v: np.ndarray, v_reset: int, dv: int) -> np.ndarray:
    prod = (v - v_reset) * dv
    return np.sign(prod) * (np.abs(prod) >> DECAY_BITS)


def initial_state(p: IntNeuronParams, v0: np.ndarray) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """v0 (at v_reset), or (v0, 0) for a current-based neuron."""
    return v0 if p.du is None else (v0, np.zeros_like(v0))


def step(v, x: np.ndarray, p: IntNeuronParams):
    """``(spikes, state_next)`` for int64 arrays: ``v`` the membrane, or (membrane, current) when
    ``p.du`` is set, and ``x`` the input incl. bias."""
    if p.du is not None:
        v, u = v
        u = np.clip(u - leak(u, 0, p.du) + x, STATE_MIN, STATE_MAX)
        s, v_next = step(v, u, IntNeuronParams(p.dv, p.threshold, p.v_reset, p.soft, p.reset_by))
        return s, (v_next, u)
    h = v - leak(v, p.v_reset, p.dv) + x if p.dv else v + x
    h = np.clip(h, STATE_MIN, STATE_MAX)
    s = h >= p.threshold
    if p.soft:
        v_next = np.where(s, h - (p.threshold if p.reset_by is None else p.reset_by), h)
    else:
        v_next = np.where(s, p.v_reset, h)
    return s.astype(np.int64), v_next.astype(np.int64)
