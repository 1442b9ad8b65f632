"""The one table from stable names to dynamics types (IR files, NIR metadata, reports),
and the one place that reads the neuron fields of IR files of the previous format."""

from __future__ import annotations

from dataclasses import fields
from typing import Any

import numpy as np

from snncompile.ir.dynamics.base import Dynamics
from snncompile.ir.dynamics.cubali import CubaLI
from snncompile.ir.dynamics.cubalif import CubaLIF
from snncompile.ir.dynamics.if_ import IF
from snncompile.ir.dynamics.integrator import Integrator
from snncompile.ir.dynamics.li import LI
from snncompile.ir.dynamics.lif import LIF
from snncompile.ir.dynamics.loihi_cuba import LoihiCuba
from snncompile.ir.dynamics.orpool import OrPool
from snncompile.ir.dynamics.plif import PLIF
from snncompile.ir.dynamics.threshold import Threshold

DYNAMICS_TYPES: dict[str, type[Dynamics]] = {
    cls.name: cls for cls in (IF, LIF, PLIF, Threshold, LI, Integrator, CubaLIF, CubaLI, OrPool, LoihiCuba)}

# the neuron fields of the first IR format (one flat Neuron with a ``model`` string)
LEGACY_FIELDS = ("model", "v_threshold", "v_reset", "tau", "decay", "decay_input", "role", "strict",
                 "syn_decay", "reset_by")


def dynamics_type(name: str) -> type[Dynamics]:
    try:
        return DYNAMICS_TYPES[name]
    except KeyError:
        raise ValueError(f"unknown neuron dynamics {name!r} (known: {', '.join(DYNAMICS_TYPES)})") from None


def stored_fields(cls: type[Dynamics]) -> tuple[str, ...]:
    """The fields of ``cls`` written to files (IR, NIR metadata) and read back."""
    return tuple(f.name for f in fields(cls)) if cls.stored is None else cls.stored


def stored_params(p: Dynamics, skip: tuple[str, ...] = ("v_threshold", "v_reset", "reset_by")) -> dict[str, Any]:
    """The scalar parameters of ``p`` to store (plain Python values), without ``skip``."""
    out = {}
    for k in stored_fields(type(p)):
        v = getattr(p, k)
        if k not in skip and not isinstance(v, np.ndarray):
            out[k] = v.item() if isinstance(v, np.generic) else v
    return out


def make(name: str, params: dict[str, Any]) -> Dynamics:
    """The dynamics ``name`` from stored ``params``; keys the model does not store are dropped
    (files of earlier versions wrote every model's keys)."""
    cls = dynamics_type(name)
    keep = stored_fields(cls)
    return cls(**{k: v for k, v in params.items() if k in keep})


def from_legacy(values: dict[str, Any]) -> Dynamics:
    """The dynamics of a Neuron stored in the first format (``model`` "lif", ``role`` "or" …)."""
    model = "or" if values.get("role") == "or" else str(values.get("model", "lif"))
    return make(model, {k: v for k, v in values.items() if k not in ("model", "role")})
