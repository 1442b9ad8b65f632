"""Energy cost per neuron update that depends on the neuron dynamics: the decays per step.

A leaky membrane decays once per step; a current-based model decays its synaptic
current too; IF, threshold units, integrators and OR-pools (memoryless) do not decay.
"""

from __future__ import annotations

from snncompile.ir.dynamics import (
    IF,
    LI,
    LIF,
    PLIF,
    CubaLI,
    CubaLIF,
    Dynamics,
    DynamicsRegistry,
    Integrator,
    LoihiCuba,
    OrPool,
    Threshold,
    dynamics_type,
)

LEAK_OPS = DynamicsRegistry("energy leaks per update")


@LEAK_OPS.register(IF, Threshold, Integrator, OrPool)
def _no_leak(cls: type[Dynamics]) -> int:
    return 0


@LEAK_OPS.register(LIF, PLIF, LI)
def _one_leak(cls: type[Dynamics]) -> int:
    return 1


@LEAK_OPS.register(CubaLIF, CubaLI, LoihiCuba)
def _two_leaks(cls: type[Dynamics]) -> int:
    return 2   # the membrane and the synaptic current


def leaks_per_update(model: str) -> int:
    """Decays per neuron per step of the dynamics named ``model`` (a stable dynamics name)."""
    cls = dynamics_type(model)
    return LEAK_OPS(cls)(cls)
