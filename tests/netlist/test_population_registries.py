"""Every netlist population kind has an entry in every population registry (simulators,
quantization, core placement, the Lava, ONNX and NIR emissions): a missing case fails here,
not in a run. And a quantized netlist is its own type."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import pytest
from nets import TicketNet

import backends.lava.network  # noqa: F401  (the stock Lava emission's process registry)
import backends.netx.export  # noqa: F401  (the netx export registry)
import backends.nir.export  # noqa: F401
import backends.onnx.ann  # noqa: F401
import backends.onnx.step  # noqa: F401
import snncompile.api  # noqa: F401  (imports every stage, so every registry is filled)
import snncompile.mapping.mapper  # noqa: F401
import snncompile.netlist.summary  # noqa: F401  (the report's lowering summary)
import snncompile.sim.netlist  # noqa: F401
from snncompile.errors import EXIT_UNSUPPORTED, SnnCompileError
from snncompile.fixedpoint.quantize import quantize_plan
from snncompile.ir.dynamics import LI, LIF, OrPool
from snncompile.lower import lower
from snncompile.netlist import (
    POPULATION_REGISTRIES,
    POPULATION_TYPES,
    DelayPopulation,
    FixedNetlist,
    InputPopulation,
    MissingPopulation,
    Netlist,
    NeuronPopulation,
    OrPopulation,
    Population,
    ProductPopulation,
)
from snncompile.passes import run_passes
from snncompile.sim.integer import simulate_int

CONCERNS = {"simulation kernel", "reference simulation, all steps", "reference simulation, one step",
            "fixed-point quantization", "core placement", "ONNX time step", "ONNX ANN activation", "NIR node",
            "Lava process (stock emission)", "standard Lava process (loihi emission)"}


def test_every_concern_has_a_registry():
    assert CONCERNS <= set(POPULATION_REGISTRIES)


@pytest.mark.parametrize("concern", sorted(POPULATION_REGISTRIES))
def test_registry_covers_every_population_kind(concern):
    assert POPULATION_REGISTRIES[concern].missing() == []


def test_kind_names_are_the_serialised_strings():
    """Reports, ONNX metadata and JSON keep the names they had when kinds were strings."""
    assert {k: c.__name__ for k, c in POPULATION_TYPES.items()} == {
        "input": "InputPopulation", "neuron": "NeuronPopulation", "or": "OrPopulation",
        "matmul": "ProductPopulation", "delay": "DelayPopulation", "host": "HostPopulation"}


def test_a_new_kind_without_entries_is_reported(monkeypatch):
    # defined inside the test: its kind registers itself, removed again below
    @dataclass
    class Spiral(Population):
        """A test-only kind."""

        kind: ClassVar[str] = "spiral-test"

    try:
        assert POPULATION_TYPES["spiral-test"] is Spiral
        for concern in CONCERNS:
            assert "spiral-test" in POPULATION_REGISTRIES[concern].missing()
            with pytest.raises(MissingPopulation, match=re.escape(f"no {concern} for population kind Spiral")):
                POPULATION_REGISTRIES[concern](Spiral)
    finally:
        del POPULATION_TYPES["spiral-test"]


def test_a_kind_name_is_taken_once():
    with pytest.raises(ValueError, match="'delay' defined twice"):
        @dataclass
        class Again(Population):
            kind: ClassVar[str] = "delay"


def test_each_kind_holds_only_its_own_fields_and_says_whether_it_sends_values():
    inp = InputPopulation("x", 4, (4,))
    lif = NeuronPopulation("a", 4, (4,), params=LIF(tau=2.0))
    li = NeuronPopulation("b", 4, (4,), params=LI())
    pool = OrPopulation("c", 4, (4,))
    prod = ProductPopulation("d", 4, (2, 2), operands=[])
    relay, line = DelayPopulation("e", 4, (4,), steps=2, relay=True), DelayPopulation("f", 4, (4,), steps=2)
    assert [p.graded for p in (inp, lif, li, pool, prod, relay, line)] == [True, False, True, False, True, False, True]
    assert isinstance(pool.params, OrPool) and isinstance(pool, NeuronPopulation)
    assert not hasattr(inp, "params") and not hasattr(lif, "operands") and not hasattr(prod, "steps")
    with pytest.raises(TypeError):
        NeuronPopulation("g", 4, (4,))   # a neuron population has dynamics


def test_nir_refuses_a_product_by_name_before_writing():
    from backends.nir.export import NIR_POPULATION

    prod = ProductPopulation("scores", 4, (2, 2))
    with pytest.raises(SnnCompileError, match="`scores`.*spike-spike product") as exc:
        NIR_POPULATION(prod)("scores", prod, False)
    assert exc.value.exit_code == EXIT_UNSUPPORTED and exc.value.hint


def test_the_quantizer_maps_a_float_netlist_to_a_fixed_one():
    from snncompile.frontend import trace_model

    graph, _ = run_passes(trace_model(TicketNet(), (1, 8, 8)).graph)
    plan = lower(graph)
    x = np.random.default_rng(0).random((4, 3, 1, 8, 8))
    q, _ = quantize_plan(plan, x)
    assert type(plan) is Netlist and type(q) is FixedNetlist
    neurons = {n for n, p in q.populations.items() if isinstance(p, NeuronPopulation)}
    assert set(q.fixed) == neurons and neurons
    assert not hasattr(plan, "fixed") and not hasattr(plan.populations[next(iter(neurons))], "fixed")
    with pytest.raises(ValueError, match="quantized plan"):
        simulate_int(plan, x)
    assert simulate_int(q, x)


def test_every_netlist_type_has_its_arithmetic():
    """Float and fixed point are netlist types: each picks its arithmetic by type."""
    from backends.lava.fused import SELECT
    from backends.lava.network import ARITHMETIC
    from snncompile.sim.kernels import NUMERICS

    types = {Netlist, *Netlist.__subclasses__()}
    assert types == {Netlist, FixedNetlist}
    assert set(NUMERICS) == types and set(ARITHMETIC) == types
    assert set(SELECT) == set(NUMERICS.values())
