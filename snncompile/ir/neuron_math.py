"""One time step of a spiking neuron population, exactly as spikingjelly computes it.

Written with arithmetic operators only, so the same function runs on numpy arrays (Lava
process models) and torch tensors (reference simulator). The operation order follows
spikingjelly 2.0's torch reference kernels, so float64 results agree to the last bit.

The state of a population is its membrane V, or the pair (V, I) for the current-based
models (``cubalif``, ``cubali``: I is the synaptic current). Non-spiking models (``li``,
``integrator``, ``cubali``) output their membrane V instead of spikes and never reset.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class NeuronParams:
    """Parameters of one neuron population (arrays broadcast against the state)."""

    model: str                   # "if" | "lif" | "plif" | "threshold" | "li" | "integrator" | "cubalif" | "cubali"
    v_threshold: Any             # float or per-neuron array
    v_reset: float | None        # None → soft (subtractive) reset
    tau: float | None = None     # lif: H = V + (X - (V - Vr)) / tau
    decay: float | None = None   # plif: 1/tau replaced by sigmoid(w)
    decay_input: bool = True
    strict: bool = False         # fire on h > v_th (NIR) instead of h >= v_th (spikingjelly)
    syn_decay: float | None = None  # cubalif, cubali: I = I - I*syn_decay + X
    reset_by: Any = None            # soft reset: V = H - S*reset_by (float or per-neuron; None: V_th)

    @property
    def v_init(self) -> float:
        return 0.0 if self.v_reset is None else float(self.v_reset)

    @property
    def spiking(self) -> bool:
        """Outputs 0/1 spikes (else its membrane V, a real value)."""
        return self.model not in NON_SPIKING

    @property
    def current_based(self) -> bool:
        """Has a synaptic current I besides V (state is the pair (V, I))."""
        return self.model in CURRENT_BASED


NON_SPIKING = ("li", "integrator", "cubali")   # output V, no threshold, no reset
CURRENT_BASED = ("cubalif", "cubali")          # state (V, I)
LEAKY = ("lif", "plif", "li", "cubalif", "cubali")


def initial_state(p: NeuronParams, v0: Any) -> Any:
    """The state at t = 0 from the membrane array ``v0`` (already V_init): V, or (V, 0)."""
    return (v0, v0 * 0.0) if p.current_based else v0


def charge(v: Any, x: Any, p: NeuronParams) -> Any:
    """Membrane potential after integrating input ``x`` (before firing)."""
    vr = p.v_init
    if p.model in ("if", "integrator"):
        return v + x
    if p.model == "threshold":  # stateless: H = X (NIR Threshold)
        return x + 0.0 * v
    if p.model == "lif":
        if p.decay_input:
            return v + (x - (v - vr)) / p.tau
        return v - (v - vr) / p.tau + x
    if p.model in ("plif", "li", "cubalif", "cubali"):  # cuba models: x is the current I
        if p.decay_input:
            return v + (x - (v - vr)) * p.decay
        return v - (v - vr) * p.decay + x
    raise ValueError(f"unknown neuron model {p.model!r}")


def step(v: Any, x: Any, p: NeuronParams) -> tuple[Any, Any]:
    """Return ``(output, state_next)``; spikes are 0/1 in V's dtype.

    ``v`` is the state (see :func:`initial_state`). Fires on ``h >= v_th`` (spikingjelly's
    heaviside of ``h - v_th``; for finite floats the two comparisons are the same), or on
    ``h > v_th`` when ``p.strict`` (NIR). A non-spiking model outputs h and keeps it.
    Current-based: I' = I − I·q_s + x first, then h = charge(V, I') (the new current).
    """
    if p.current_based:
        v, i = v
        i = i - i * p.syn_decay + x
        h = charge(v, i, p)
        if not p.spiking:
            return h, (h, i)
        s, v_next = _fire(h, p)
        return s, (v_next, i)
    h = charge(v, x, p)
    if not p.spiking:
        return h, h
    return _fire(h, p)


def _fire(h: Any, p: NeuronParams) -> tuple[Any, Any]:
    fired = h > p.v_threshold if p.strict else h >= p.v_threshold
    s = fired.astype(h.dtype) if isinstance(h, np.ndarray) else fired.to(h.dtype)
    if p.v_reset is None:
        v_next = h - s * (p.v_threshold if p.reset_by is None else p.reset_by)
    else:
        v_next = s * p.v_reset + (1.0 - s) * h
    return s, v_next
