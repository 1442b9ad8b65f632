"""Differential fuzzing of the frontend (issue #27 item 8): random models written the way
users write them (tests/property/frontgen.py) are traced, lowered and simulated by the
reference simulators, which must equal PyTorch (float64) spike for spike on every neuron
layer, and Lava on a sample; a failing model is shrunk by hypothesis and printed as its
:class:`FuzzSpec`."""

from __future__ import annotations

import pytest
from equivalence import assert_compiled_matches, assert_same_spikes
from hypothesis import assume, note, settings
from hypothesis import given as given_

from backends.lava import run_lava
from snncompile.sim.netlist import simulate_netlist

from .frontgen import FuzzSpec, build, fuzz_specs, inputs
from .pipeline import compile_model, fired
from .profiles import budget, slow_phases


@settings(max_examples=budget(ci=8, fuzz=600))
@given_(spec=fuzz_specs())
def test_frontend_equals_pytorch(spec: FuzzSpec) -> None:
    note(spec.describe())
    model, x = build(spec), inputs(spec)
    runs, graph, _ = compile_model(model, x, (2, spec.size, spec.size))
    assume(fired(runs) > 0)
    assert_same_spikes(runs.torch_spikes, runs.ref_spikes, "unoptimized reference vs PyTorch:")
    assert_compiled_matches(runs, graph, runs.plan, x, simulate_netlist(runs.plan, x))


@pytest.mark.lava
@settings(max_examples=budget(ci=1, fuzz=40), phases=slow_phases())
@given_(spec=fuzz_specs())
def test_frontend_fuzz_on_lava(spec: FuzzSpec) -> None:
    """A sample of the fuzzed models on Lava (fused emission): every recorded population
    equals PyTorch spike for spike on the kept neurons, with equal predictions."""
    note(spec.describe())
    model, x = build(spec), inputs(spec)
    runs, graph, _ = compile_model(model, x, (2, spec.size, spec.size))
    assume(fired(runs) > 0)
    lava = run_lava(runs.plan, x, timeout_s=300)
    assert_compiled_matches(runs, graph, runs.plan, x, dict(lava.spikes))


def test_maxpool_of_a_sew_sum() -> None:
    """The fuzzer's minimal model: stem → SEW-ADD block → MaxPool2d → Linear → IF. Found refused
    (exit 3); a max-pool of real values is now a host partition (issue #24), exact."""
    spec = FuzzSpec("custom", "if", 0.5, 2, 4, ("sew_add", "maxpool"), "plain", 1.0, 0)
    model, x = build(spec), inputs(spec)
    runs, graph, _ = compile_model(model, x, (2, spec.size, spec.size))
    assert_compiled_matches(runs, graph, runs.plan, x, simulate_netlist(runs.plan, x))
