"""Neuron dynamics types: parameter checks, equations in docstrings, the float step, names."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest
import torch

from snncompile.ir import Neuron
from snncompile.ir.dynamics import (
    DYNAMICS_TYPES,
    IF,
    LI,
    LIF,
    PLIF,
    CubaLI,
    CubaLIF,
    Dynamics,
    Integrator,
    OrPool,
    Threshold,
    from_legacy,
    initial_state,
    make,
    step,
    stored_params,
)

ALL = list(DYNAMICS_TYPES.values())


def test_every_model_has_a_name_and_is_in_the_table():
    assert set(DYNAMICS_TYPES) == {"if", "lif", "plif", "threshold", "li", "integrator", "cubalif", "cubali", "or",
                                  "loihi_cuba"}
    assert all(DYNAMICS_TYPES[cls.name] is cls for cls in ALL)


@pytest.mark.parametrize("cls", ALL, ids=lambda c: c.__name__)
def test_docstring_states_the_update_and_charge_is_its_own(cls):
    doc = cls.__dict__.get("__doc__") or ""
    assert re.search(r"H\[t\] = ", doc), f"{cls.__name__}'s docstring states no membrane equation"
    assert cls.charge is not Dynamics.charge


# -- checks in __post_init__ ------------------------------------------------------------------

@pytest.mark.parametrize("make_bad,what", [
    (lambda: LIF(tau=0.0), "tau must be > 0"),
    (lambda: LIF(tau=-2.0), "tau must be > 0"),
    (lambda: LIF(tau=math.inf), "tau must be a finite number"),
    (lambda: LIF(tau=math.nan), "tau must be a finite number"),
    (lambda: LIF(tau=None), "tau is required"),
    (lambda: PLIF(decay=1.5), r"decay must lie in \[0, 1\]"),
    (lambda: PLIF(decay=-0.1), r"decay must lie in \[0, 1\]"),
    (lambda: LI(decay=2.0), r"decay must lie in \[0, 1\]"),
    (lambda: CubaLIF(syn_decay=1.2), r"syn_decay must lie in \[0, 1\]"),
    (lambda: CubaLIF(decay=math.nan), "decay must be a finite number"),
    (lambda: CubaLI(syn_decay=-1.0), r"syn_decay must lie in \[0, 1\]"),
    (lambda: CubaLI(decay=3.0), r"decay must lie in \[0, 1\]"),
    (lambda: IF(v_threshold=math.nan), "v_threshold must be a finite number"),
    (lambda: IF(v_threshold=np.array([1.0, math.nan])), "v_threshold must be a finite number"),
    (lambda: IF(v_reset=math.inf), "v_reset must be a finite number"),
    (lambda: LI(v_reset=None), "v_reset is required"),          # a readout has no soft reset
    (lambda: Integrator(v_reset=math.nan), "v_reset must be a finite number"),
    (lambda: IF(v_reset=None, reset_by=math.nan), "reset_by must be a finite number"),
    (lambda: IF(v_reset=0.0, reset_by=1.0), "reset_by is the amount of a soft reset"),
    (lambda: Threshold(strict=1), "strict must be a bool"),
    (lambda: OrPool(v_threshold=2.0), "OR-pool neuron has v_threshold=1"),
    (lambda: OrPool(v_reset=None), "OR-pool neuron"),
    (lambda: OrPool(strict=True), "OR-pool neuron"),
])
def test_post_init_checks(make_bad, what):
    with pytest.raises(ValueError, match=what):
        make_bad()


def test_with_params_checks_again_and_keeps_the_rest():
    lif = LIF(tau=4.0, v_threshold=0.5, decay_input=False)
    assert lif.with_params(v_threshold=0.25) == LIF(tau=4.0, v_threshold=0.25, decay_input=False)
    with pytest.raises(ValueError, match="tau must be > 0"):
        lif.with_params(tau=0.0)


def test_an_infinite_threshold_is_allowed():
    """A neuron that never fires (removed neurons are written with θ = ∞) is valid."""
    assert IF(v_threshold=np.array([1.0, np.inf])).v_init == 0.0


def test_equality_compares_arrays_and_types():
    th = np.array([0.5, 1.0])
    assert IF(v_threshold=th) == IF(v_threshold=th.copy())
    assert IF(v_threshold=th) != IF(v_threshold=np.array([0.5, 2.0]))
    assert IF() != Threshold()
    assert LIF(tau=2.0) != LIF(tau=3.0)


def test_flags_are_class_attributes():
    assert [c.name for c in ALL if not c.spiking] == ["li", "integrator", "cubali"]
    assert [c.name for c in ALL if c.current_based] == ["cubalif", "cubali", "loihi_cuba"]
    assert [c.name for c in ALL if c.leaky] == ["lif", "plif", "li", "cubalif", "cubali", "loihi_cuba"]
    assert [c.name for c in ALL if c.role] == ["or"] and OrPool.population_kind == "or"


# -- the float step, operation for operation ----------------------------------------------------

def _ref_step(v, x, name, p):
    """The update written out per model (the equations of the docstrings)."""
    vr = p.v_init
    i = None
    if p.current_based:
        v, i = v
        i = i - i * p.syn_decay + x
        x = i
    if name in ("if", "integrator"):
        h = v + x
    elif name == "threshold":
        h = x + 0.0 * v
    elif name in ("lif", "or"):
        tau = p.tau
        h = v + (x - (v - vr)) / tau if p.decay_input else v - (v - vr) / tau + x
    else:
        q = p.decay
        h = v + (x - (v - vr)) * q if p.decay_input else v - (v - vr) * q + x
    if not p.spiking:
        return h, (h if i is None else (h, i))
    s = (h > p.v_threshold if p.strict else h >= p.v_threshold).astype(h.dtype)
    vn = h - s * (p.v_threshold if p.reset_by is None else p.reset_by) if p.v_reset is None else \
        s * p.v_reset + (1.0 - s) * h
    return s, (vn if i is None else (vn, i))


CASES = [IF(v_threshold=0.75), IF(v_reset=None, reset_by=0.5, strict=True), LIF(tau=3.0, v_reset=-0.25),
         LIF(tau=2.0, decay_input=False, v_reset=None), PLIF(decay=0.3), PLIF(decay=0.6, decay_input=False),
         Threshold(v_threshold=0.5, strict=True), LI(decay=0.2), Integrator(), CubaLIF(decay=0.3, syn_decay=0.6),
         CubaLI(decay=0.4, syn_decay=0.2, decay_input=False), OrPool()]


@pytest.mark.parametrize("p", CASES, ids=lambda p: repr(p))
def test_step_bit_equal_to_the_written_equations(p):
    rng = np.random.default_rng(0)
    xs = rng.integers(0, 4, (12, 3, 5)).astype(np.float64) if p.role else rng.random((12, 3, 5)) * 1.5
    v0 = np.full((3, 5), p.v_init)
    v, w = initial_state(p, v0), initial_state(p, v0.copy())
    for x in xs:
        out, v = step(v, x, p)
        ref, w = _ref_step(w, x, p.name, p)
        np.testing.assert_array_equal(out, ref)
    # the same on torch tensors
    vt = initial_state(p, torch.as_tensor(v0))
    v = initial_state(p, v0)
    for x in xs:
        out_t, vt = step(vt, torch.as_tensor(x), p)
        out, v = step(v, x, p)
        np.testing.assert_array_equal(out_t.numpy(), out)


def test_or_pool_is_the_or_of_its_window():
    counts = np.array([[0.0, 1.0, 2.0, 4.0]])
    s, v = step(np.zeros_like(counts), counts, OrPool())
    np.testing.assert_array_equal(s, [[0, 1, 1, 1]])
    np.testing.assert_array_equal(v, 0.0)


def test_describe_texts():
    assert LIF(tau=2.0).describe() == "LIF tau=2 th=1 reset=hard(0) decay_input=True"
    assert IF(v_reset=None, reset_by=0.5, strict=True).describe() == "IF th=1 reset=soft(0.5) fires>th"
    assert IF(v_threshold=np.ones(3), v_reset=None).describe() == "IF th=per-neuron reset=soft"
    assert CubaLI(decay=0.5, syn_decay=0.25).describe() == \
        "CUBALI q=0.5 q_syn=0.25 decay_input=True non-spiking (outputs V)"
    assert Neuron((2,), dynamics=OrPool()).describe() == "OR (max-pool of spikes)"
    assert Neuron((2,), dynamics=OrPool()).role == "or" and Neuron((2,)).role == ""


# -- names: stored parameters and the first IR format -----------------------------------------

@pytest.mark.parametrize("p", CASES, ids=lambda p: repr(p))
def test_make_from_stored_params_round_trips(p):
    assert make(p.name, stored_params(p, skip=())) == p


def test_legacy_fields_become_types():
    assert from_legacy({"model": "lif", "tau": 2.0, "decay": None, "syn_decay": None, "v_threshold": 0.5,
                        "v_reset": 0.0, "decay_input": False, "strict": False, "reset_by": None, "role": ""}) \
        == LIF(tau=2.0, v_threshold=0.5, decay_input=False)
    assert from_legacy({"model": "lif", "tau": 1.0, "v_threshold": 1.0, "v_reset": 0.0, "role": "or"}) == OrPool()
    assert from_legacy({"model": "li", "v_threshold": 1.0, "v_reset": 0.0, "decay": 0.25, "tau": None,
                        "strict": True, "decay_input": True}) == LI(decay=0.25)
    with pytest.raises(ValueError, match="unknown neuron dynamics 'izhikevich'"):
        from_legacy({"model": "izhikevich"})
