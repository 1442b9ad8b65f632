"""One float time step of a neuron population, exactly as spikingjelly computes it.

Written with arithmetic operators only, so the same function runs on numpy arrays (Lava
process models) and torch tensors (reference simulator). The operation order follows
spikingjelly 2.0's torch reference kernels, so float64 results agree to the last bit.

The state of a population is its membrane V, or the pair (V, I) for the current-based
models (I is the synaptic current). Non-spiking models output their membrane V instead
of spikes and never reset. The charge is the model's own (``Dynamics.charge``).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from snncompile.ir.dynamics.base import Dynamics, Firing


def initial_state(p: Dynamics, v0: Any) -> Any:
    """The state at t = 0 from the membrane array ``v0`` (already V_init): V, or (V, 0)."""
    return (v0, v0 * 0.0) if p.current_based else v0


def step(v: Any, x: Any, p: Dynamics) -> tuple[Any, Any]:
    """Return ``(output, state_next)``; spikes are 0/1 in V's dtype.

    ``v`` is the state (see :func:`initial_state`). Fires on ``h >= v_th`` (spikingjelly's
    heaviside of ``h - v_th``; for finite floats the two comparisons are the same), or on
    ``h > v_th`` when ``p.strict`` (NIR). A non-spiking model outputs h and keeps it.
    Current-based: I' = I − I·q_s + x first, then h = charge(V, I') (the new current).
    """
    if p.current_based:
        v, i = v
        i = p.current(i, x)
        h = p.charge(v, i)
        if not p.spiking:
            return h, (h, i)
        s, v_next = fire(h, p)
        return s, (v_next, i)
    h = p.charge(v, x)
    if not p.spiking:
        return h, h
    return fire(h, p)


def fire(h: Any, p: Firing) -> tuple[Any, Any]:
    """(spikes, V after reset) from the charged membrane ``h``."""
    fired = h > p.v_threshold if p.strict else h >= p.v_threshold
    s = fired.astype(h.dtype) if isinstance(h, np.ndarray) else fired.to(h.dtype)
    if p.v_reset is None:
        v_next = h - s * (p.v_threshold if p.reset_by is None else p.reset_by)
    else:
        v_next = s * p.v_reset + (1.0 - s) * h
    return s, v_next
