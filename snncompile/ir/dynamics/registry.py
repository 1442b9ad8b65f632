"""Registries keyed by the neuron dynamics type: one per concern (integer step, NIR
mapping, ONNX step, Lava parameters, energy cost …), in the style of
:mod:`snncompile.ir.registry`.

A concern that does not support a model registers an explicit :func:`refused` entry whose
message names the model and the way out. ``DYNAMICS_REGISTRIES`` lists every registry, so
a test walks every dynamics type × every registry and fails on a missing entry.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from snncompile.errors import EXIT_UNSUPPORTED, SnnCompileError
from snncompile.ir.dynamics.base import Dynamics
from snncompile.ir.typeregistry import TypeRegistry

DYNAMICS_REGISTRIES: dict[str, DynamicsRegistry] = {}


class MissingDynamics(NotImplementedError):
    """A dynamics type has no entry in a registry (a bug in snncompile, not a user error)."""


class DynamicsRegistry(TypeRegistry):
    """Maps dynamics classes to one function each for one concern."""

    key_kind = "neuron dynamics"
    missing_error = MissingDynamics

    def __init__(self, concern: str) -> None:
        super().__init__(concern, DYNAMICS_REGISTRIES)

    def universe(self) -> dict[str, type]:
        from snncompile.ir.dynamics.names import DYNAMICS_TYPES

        return dict(DYNAMICS_TYPES)

    def supports(self, dynamics: Dynamics | type[Dynamics]) -> bool:
        """True unless the entry is a :func:`refused` one."""
        return not getattr(self(dynamics), "refused", False)



def refused(message: str, hint: str) -> Callable[..., Any]:
    """An entry saying the concern cannot handle the model: raises the project's error.

    ``message`` may use ``{model}`` (the model's name) and ``{name}`` (the population's or
    layer's name the caller passes as keyword ``name``)."""
    def fn(dynamics: Dynamics, *args: Any, name: str = "", **kwargs: Any) -> Any:
        raise SnnCompileError(message.format(model=dynamics.name, name=name), hint, EXIT_UNSUPPORTED)
    fn.refused = True  # type: ignore[attr-defined]
    return fn
