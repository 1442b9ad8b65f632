"""Neuron dynamics as types: one frozen dataclass per model (equations in its docstring),
the float step they share, the name table and the registries keyed by the type."""

from snncompile.ir.dynamics.base import Dynamics, Firing
from snncompile.ir.dynamics.cubali import CubaLI
from snncompile.ir.dynamics.cubalif import CubaLIF
from snncompile.ir.dynamics.if_ import IF
from snncompile.ir.dynamics.integrator import Integrator
from snncompile.ir.dynamics.li import LI
from snncompile.ir.dynamics.lif import LIF
from snncompile.ir.dynamics.loihi_cuba import LoihiCuba
from snncompile.ir.dynamics.names import (
    DYNAMICS_TYPES,
    LEGACY_FIELDS,
    dynamics_type,
    from_legacy,
    make,
    stored_fields,
    stored_params,
)
from snncompile.ir.dynamics.orpool import OrPool
from snncompile.ir.dynamics.plif import PLIF
from snncompile.ir.dynamics.registry import DYNAMICS_REGISTRIES, DynamicsRegistry, MissingDynamics, refused
from snncompile.ir.dynamics.step import fire, initial_state, step
from snncompile.ir.dynamics.threshold import Threshold

__all__ = ["Dynamics", "Firing", "IF", "LIF", "PLIF", "Threshold", "LI", "Integrator", "CubaLIF", "CubaLI",
           "OrPool", "LoihiCuba", "DYNAMICS_TYPES", "LEGACY_FIELDS", "dynamics_type", "from_legacy", "make",
           "stored_fields", "stored_params", "DYNAMICS_REGISTRIES",
           "DynamicsRegistry", "MissingDynamics", "refused", "initial_state", "step", "fire"]
