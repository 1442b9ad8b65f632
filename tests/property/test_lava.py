"""Properties on Lava: the float backend equals the reference netlist simulation and PyTorch
spike for spike; in fixed point, Lava's own bit-accurate synapse models (stock emission)
equal the integer reference simulator bit for bit. Each example starts a Lava worker."""

from __future__ import annotations

import numpy as np
import pytest
from equivalence import assert_compiled_matches
from hypothesis import assume, event, given, settings
from hypothesis import strategies as st

from backends.lava import LavaRun, run_lava
from snncompile.fixedpoint.quantize import quantize_plan
from snncompile.netlist import OUTPUT, NeuronPopulation, OutputKind
from snncompile.sim.integer import simulate_int
from snncompile.sim.netlist import simulate_netlist

from .netgen import NetSpec, net_specs
from .pipeline import compile_case, fired
from .profiles import budget, slow_phases

TIMEOUT_S = 180
SMALL = net_specs(max_stages=3, max_batch=3, max_steps=5)  # Lava runs samples × steps in sequence


def _outputs(run: LavaRun) -> dict[str, np.ndarray]:
    """Recorded spikes and, for a value readout, the output."""
    out = dict(run.spikes)
    if run.output is not None:
        out[OUTPUT] = run.output
    return out


@pytest.mark.lava
@settings(max_examples=budget(ci=12, fuzz=60), phases=slow_phases())
@given(spec=SMALL, emit=st.sampled_from(("fused", "stock", "fused")))
def test_lava_float_equals_pytorch(spec: NetSpec, emit: str) -> None:
    """Lava (floating_pt) = the netlist reference simulation on every recorded population
    (and the value output), then = PyTorch on the kept neurons with equal predictions."""
    case = compile_case(spec)
    assume(fired(case) > 0)
    event(f"emission: {emit}")
    lava = run_lava(case.plan, case.x, timeout_s=TIMEOUT_S, emit=emit)
    got = _outputs(lava)
    ref = simulate_netlist(case.plan, case.x)
    recorded = [n for n, p in case.plan.populations.items() if isinstance(p, NeuronPopulation)]
    assert sorted(lava.spikes) == sorted(recorded)
    for name in recorded:
        bad = np.argwhere(got[name] != ref[name])
        assert bad.size == 0, f"{emit}: population {name}: {len(bad)} spikes differ from the netlist " \
            f"reference, first at (t, n, i) = {tuple(bad[0])}"
    if case.plan.output_kind is OutputKind.VALUES:
        np.testing.assert_allclose(got[OUTPUT], ref[OUTPUT], rtol=1e-12, atol=1e-12,
                                   err_msg=f"{emit}: value output vs the netlist reference")
    assert_compiled_matches(case.runs, case.graph, case.plan, case.x, got)


@pytest.mark.lava
@settings(max_examples=budget(ci=8, fuzz=60), phases=slow_phases())
@given(spec=SMALL)
def test_integer_reference_equals_lava_fixed_point(spec: NetSpec) -> None:
    """Quantized netlist: Lava fixed_pt with its own Sparse/Dense models (stock emission) =
    the integer reference simulator, bit for bit, on every population and the output."""
    case = compile_case(spec)
    q, info = quantize_plan(case.plan, case.x)
    ints = simulate_int(q, case.x)
    recorded = [n for n, p in q.populations.items() if isinstance(p, NeuronPopulation)]
    assume(sum(int(ints[n].sum()) for n in recorded) > 0)
    event(f"quantization warnings: {'yes' if any(e.warning for e in info.errors) else 'no'}")
    lava = run_lava(q, case.x, timeout_s=TIMEOUT_S, emit="stock")
    assert sorted(lava.spikes) == sorted(recorded)
    for name in recorded:
        bad = np.argwhere(lava.spikes[name] != ints[name])
        assert bad.size == 0, f"population {name}: {len(bad)} spikes differ from the integer reference, " \
            f"first at (t, n, i) = {tuple(bad[0])}"
    if q.output_kind is OutputKind.VALUES:
        np.testing.assert_array_equal(lava.output, ints[OUTPUT], err_msg="value output")
