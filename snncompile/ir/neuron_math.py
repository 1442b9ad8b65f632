"""One time step of a spiking neuron population, exactly as spikingjelly computes it.

Written with arithmetic operators only, so the same function runs on numpy arrays (Lava
process models) and torch tensors (reference simulator). The operation order follows
spikingjelly 2.0's torch reference kernels, so float64 results agree to the last bit.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class NeuronParams:
    """Parameters of one neuron population (arrays broadcast against the state)."""

    model: str                   # "if" | "lif" | "plif"
    v_threshold: Any             # float or per-neuron array
    v_reset: float | None        # None → soft (subtractive) reset
    tau: float | None = None     # lif: H = V + (X - (V - Vr)) / tau
    decay: float | None = None   # plif: 1/tau replaced by sigmoid(w)
    decay_input: bool = True

    @property
    def v_init(self) -> float:
        return 0.0 if self.v_reset is None else float(self.v_reset)


def charge(v: Any, x: Any, p: NeuronParams) -> Any:
    """Membrane potential after integrating input ``x`` (before firing)."""
    vr = p.v_init
    if p.model == "if":
        return v + x
    if p.model == "lif":
        if p.decay_input:
            return v + (x - (v - vr)) / p.tau
        return v - (v - vr) / p.tau + x
    if p.model == "plif":
        if p.decay_input:
            return v + (x - (v - vr)) * p.decay
        return v - (v - vr) * p.decay + x
    raise ValueError(f"unknown neuron model {p.model!r}")


def step(v: Any, x: Any, p: NeuronParams) -> tuple[Any, Any]:
    """Return ``(spikes, v_next)``; spikes are 0/1 in ``v``'s dtype.

    Fires on ``h >= v_th`` (spikingjelly's heaviside of ``h - v_th``; for finite floats
    the two comparisons are the same).
    """
    h = charge(v, x, p)
    fired = h >= p.v_threshold
    s = fired.astype(h.dtype) if isinstance(h, np.ndarray) else fired.to(h.dtype)
    if p.v_reset is None:
        v_next = h - s * p.v_threshold
    else:
        v_next = s * p.v_reset + (1.0 - s) * h
    return s, v_next
