"""The NIR primitive each neuron dynamics is written as (``backends.nir.export``).

An entry receives the dynamics, ``full`` (ones of the written shape), the per-neuron
threshold ``th`` and reset ``vr`` arrays and the node metadata, and returns the NIR node.
Leaky models are written for the time step ``DT`` (q = DT/τ_NIR, forward Euler).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from snncompile.ir.dynamics import (
    IF,
    LI,
    LIF,
    PLIF,
    CubaLI,
    CubaLIF,
    DynamicsRegistry,
    Integrator,
    LoihiCuba,
    OrPool,
    Threshold,
    refused,
)

DT = 1e-4  # time step the exported τ are written for (graph metadata "snncompile.dt"); snnTorch reads 1e-4

NIR_NODE = DynamicsRegistry("NIR mapping")
# NIR's CubaLIF is continuous-time float: Lava's truncating integer decays have no NIR form
NIR_NODE.register(LoihiCuba)(refused(
    "population `{name}` is a {model} neuron (Lava's integer CUBA LIF, from a netx file), which NIR cannot describe",
    "export it with --target lava --emit loihi --fixed-point, or as netx (snncompile export --format netx)"))


@NIR_NODE.register(IF)
def _if(p: IF, full: np.ndarray, th: np.ndarray, vr: np.ndarray, meta: dict) -> Any:
    import nir
    return nir.IF(r=full, v_threshold=th, v_reset=vr, metadata=meta)


@NIR_NODE.register(Integrator)
def _integrator(p: Integrator, full: np.ndarray, th: np.ndarray, vr: np.ndarray, meta: dict) -> Any:
    import nir
    return nir.I(r=full, metadata=meta)


@NIR_NODE.register(Threshold)
def _threshold(p: Threshold, full: np.ndarray, th: np.ndarray, vr: np.ndarray, meta: dict) -> Any:
    import nir
    return nir.Threshold(threshold=th, metadata=meta)


def _lif(tau: float, decay_input: bool, full: np.ndarray, th: np.ndarray, vr: np.ndarray, meta: dict) -> Any:
    import nir
    r = full if decay_input else full * tau
    # v_leak = v_reset: spikingjelly's LIF leaks toward its reset potential
    return nir.LIF(tau=full * tau * DT, r=r, v_leak=vr, v_threshold=th, v_reset=vr, metadata=meta)


@NIR_NODE.register(LIF)
def _lif_tau(p: LIF, full: np.ndarray, th: np.ndarray, vr: np.ndarray, meta: dict) -> Any:
    return _lif(float(p.tau), p.decay_input, full, th, vr, meta)


@NIR_NODE.register(PLIF)
def _plif(p: PLIF, full: np.ndarray, th: np.ndarray, vr: np.ndarray, meta: dict) -> Any:
    return _lif(1.0 / float(p.decay), p.decay_input, full, th, vr, meta)


@NIR_NODE.register(OrPool)
def _or(p: OrPool, full: np.ndarray, th: np.ndarray, vr: np.ndarray, meta: dict) -> Any:
    # x > ½ ⟺ x ≥ 1 for spike counts: the same OR under NIR's strict threshold
    return _lif(float(p.tau), p.decay_input, full, np.full_like(th, 0.5), vr, meta)


@NIR_NODE.register(LI)
def _li(p: LI, full: np.ndarray, th: np.ndarray, vr: np.ndarray, meta: dict) -> Any:
    import nir
    tau = 1.0 / float(p.decay)
    r = full if p.decay_input else full * tau
    return nir.LI(tau=full * tau * DT, r=r, v_leak=full * 0.0, metadata=meta)


def _cuba(p: CubaLIF | CubaLI, full: np.ndarray, meta: dict) -> dict:
    tau = 1.0 / float(p.decay)
    r = full if p.decay_input else full * tau
    return dict(tau_syn=full * DT / float(p.syn_decay), tau_mem=full * tau * DT, r=r, v_leak=full * 0.0,
                w_in=full / float(p.syn_decay), metadata=meta)   # q_s·w_in = 1: I ← I − I·q_s + x


@NIR_NODE.register(CubaLI)
def _cubali(p: CubaLI, full: np.ndarray, th: np.ndarray, vr: np.ndarray, meta: dict) -> Any:
    import nir
    return nir.CubaLI(**_cuba(p, full, meta))


@NIR_NODE.register(CubaLIF)
def _cubalif(p: CubaLIF, full: np.ndarray, th: np.ndarray, vr: np.ndarray, meta: dict) -> Any:
    import nir
    return nir.CubaLIF(v_threshold=th, v_reset=vr, **_cuba(p, full, meta))
