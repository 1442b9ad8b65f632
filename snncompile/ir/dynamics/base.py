"""The base of the neuron dynamics types and the parameter checks they share.

A dynamics value is a small frozen dataclass: a neuron model's parameters, checked when it
is made. Its ``charge`` is the membrane update before firing (the equations are in each
model's docstring); firing and reset are the same for every spiking model
(:mod:`snncompile.ir.dynamics.step`). Flags are class attributes of the type.
Parameters may be per-neuron numpy arrays (or torch tensors inside the simulators).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields, replace
from typing import Any, ClassVar

import numpy as np


def _numeric(value: Any) -> bool:
    """A float or numpy value the checks can read (torch tensors inside simulators are not checked)."""
    return isinstance(value, (int, float, np.ndarray, np.generic))


def check_finite(model: str, name: str, value: Any, *, allow_none: bool = False, allow_inf: bool = False) -> None:
    if value is None:
        if allow_none:
            return
        raise ValueError(f"{model}: {name} is required")
    if type(value) is float or type(value) is int:   # most parameters: without numpy's ~3 µs a call
        bad = math.isnan(value) if allow_inf else not math.isfinite(value)
    elif not _numeric(value):
        return
    else:
        a = np.asarray(value, dtype=np.float64)
        bad = bool((np.isnan(a) if allow_inf else ~np.isfinite(a)).any())
    if bad:
        raise ValueError(f"{model}: {name} must be a finite number, got {value!r}")


def check_positive(model: str, name: str, value: Any) -> None:
    check_finite(model, name, value)
    if _numeric(value) and not np.all(np.asarray(value, dtype=np.float64) > 0):
        raise ValueError(f"{model}: {name} must be > 0, got {value!r}")


def check_fraction(model: str, name: str, value: Any) -> None:
    check_finite(model, name, value)
    if _numeric(value):
        a = np.asarray(value, dtype=np.float64)
        if not np.all((a >= 0) & (a <= 1)):
            raise ValueError(f"{model}: {name} must lie in [0, 1], got {value!r}")


def charge_div(v: Any, x: Any, vr: float, tau: Any, decay_input: bool) -> Any:
    """H of a LIF written with a division by τ (spikingjelly's operation order)."""
    if decay_input:
        return v + (x - (v - vr)) / tau
    return v - (v - vr) / tau + x


def charge_mul(v: Any, x: Any, vr: float, q: Any, decay_input: bool) -> Any:
    """H of a leaky model written with a product by q = decay (spikingjelly's ParametricLIF order)."""
    if decay_input:
        return v + (x - (v - vr)) * q
    return v - (v - vr) * q + x


@dataclass(frozen=True, kw_only=True, eq=False)
class Dynamics:
    """Base of all neuron dynamics: ``v_reset`` = V_r, the membrane's start value (and the
    leak target); None → soft reset (then V starts at 0).

    Class flags: ``spiking`` (outputs 0/1 spikes, else its membrane V), ``current_based``
    (state (V, I)), ``leaky`` (V decays toward V_r), ``role`` ("or" for an OR-pool).
    """

    v_reset: float | None = 0.0
    name: ClassVar[str] = "dynamics"        # stable name, stored in IR files (see ``names``)
    title: ClassVar[str] = "DYNAMICS"       # shown in tables
    spiking: ClassVar[bool] = True
    current_based: ClassVar[bool] = False
    leaky: ClassVar[bool] = False
    role: ClassVar[str] = ""
    population_kind: ClassVar[str] = "neuron"   # the netlist population it lowers to
    stored: ClassVar[tuple[str, ...] | None] = None   # fields written to files (None: all)

    def __post_init__(self) -> None:
        check_finite(self.name, "v_reset", self.v_reset, allow_none=self.spiking)

    @property
    def v_init(self) -> float:
        return 0.0 if self.v_reset is None else float(self.v_reset)

    def charge(self, v: Any, x: Any) -> Any:
        """Membrane H after integrating input ``x`` (before firing)."""
        raise NotImplementedError(f"{type(self).__name__}.charge")

    def leak_text(self) -> str:
        """The leak parameters for :meth:`describe` (e.g. " tau=2")."""
        return ""

    def input_text(self) -> str:
        return ""

    def describe(self) -> str:
        return f"{self.title}{self.leak_text()}{self.input_text()} non-spiking (outputs V)"

    def params(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    def with_params(self, **changes: Any) -> Dynamics:
        """A copy with ``changes`` (checked again)."""
        return replace(self, **changes)

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        return all(_same(getattr(self, f.name), getattr(other, f.name)) for f in fields(self))

    __hash__ = object.__hash__

    def __repr__(self) -> str:
        inner = ", ".join(f"{k}={'array' + str(np.shape(v)) if isinstance(v, np.ndarray) else repr(v)}"
                          for k, v in self.params().items())
        return f"{type(self).__name__}({inner})"


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return a is not None and b is not None and np.array_equal(np.asarray(a), np.asarray(b))
    return a == b


@dataclass(frozen=True, kw_only=True, eq=False)
class Firing(Dynamics):
    """A spiking model: fires when H reaches V_th, then resets.

        fire:          S[t] = Θ(H[t] − V_th)          (fires on H ≥ V_th, spikingjelly)
        fire, strict:  S[t] = 1 if H[t] > V_th else 0  (``strict``: NIR, Lava, snnTorch, Norse)
        hard reset:    V[t] = S[t]·V_reset + (1 − S[t])·H[t]
        soft reset:    V[t] = H[t] − S[t]·ρ            (``v_reset`` None; ρ = ``reset_by``, V_th if None)

    V_th = ``v_threshold``: scalar or per neuron; ρ likewise.
    """

    v_threshold: Any = 1.0
    strict: bool = False
    reset_by: Any = None

    def __post_init__(self) -> None:
        super().__post_init__()
        check_finite(self.name, "v_threshold", self.v_threshold, allow_inf=True)
        check_finite(self.name, "reset_by", self.reset_by, allow_none=True)
        if self.reset_by is not None and self.v_reset is not None:
            raise ValueError(f"{self.name}: reset_by is the amount of a soft reset; it needs v_reset=None")
        if not isinstance(self.strict, (bool, np.bool_)):
            raise ValueError(f"{self.name}: strict must be a bool, got {self.strict!r}")

    @property
    def reset_mode(self) -> str:
        if self.v_reset is not None:
            return f"hard({self.v_reset:g})"
        if self.reset_by is None:
            return "soft"
        return f"soft({self.reset_by:g})" if np.isscalar(self.reset_by) else "soft(per-neuron)"

    def describe(self) -> str:
        th = self.v_threshold
        th_s = f"{th:g}" if np.isscalar(th) else "per-neuron"
        fire = " fires>th" if self.strict else ""
        return f"{self.title}{self.leak_text()} th={th_s} reset={self.reset_mode}{self.input_text()}{fire}"

