"""Property: the reference simulators equal PyTorch (float64) spike for spike on random
networks, before the passes, after each pass, and on the lowered netlist."""

from __future__ import annotations

import numpy as np
from equivalence import assert_backend_matches, assert_compiled_matches
from hypothesis import assume, event, given, settings

from snncompile.errors import SnnCompileError
from snncompile.lower import lower
from snncompile.sim.netlist import simulate_netlist

from .netgen import NetSpec, net_specs
from .pipeline import compile_case, fired, value_output
from .profiles import budget


@settings(max_examples=budget(ci=150, fuzz=1500))
@given(spec=net_specs())
def test_reference_simulator_equals_pytorch(spec: NetSpec) -> None:
    """Unoptimized IR reference = PyTorch on every neuron; after every default pass = PyTorch
    on the kept neurons; the netlist simulation of the optimized graph = PyTorch on the kept
    neurons, with equal value outputs and predictions; the unoptimized netlist (where the
    graph lowers without passes) = PyTorch on every neuron."""
    case = compile_case(spec, check_each_pass=True)
    assume(fired(case) > 0)
    runs, x = case.runs, case.x
    assert_compiled_matches(runs, case.graph, case.plan, x, simulate_netlist(case.plan, x))
    out = value_output(case)
    if out is not None:
        np.testing.assert_allclose(out, runs.torch_output, rtol=1e-9, atol=1e-9,
                                   err_msg="optimized reference output vs PyTorch output")
    try:
        plan0 = lower(runs.trace.graph)
    except SnnCompileError as exc:  # max-pool of masked spikes or of a residual sum
        event(f"unoptimized graph not lowered: {str(exc).split(' at ')[0]}")
        return
    unopt = type(runs)(runs.trace, plan0, runs.torch_spikes, runs.torch_output, runs.ref_spikes,
                       runs.ref_output)
    assert_backend_matches(unopt, simulate_netlist(plan0, x))

