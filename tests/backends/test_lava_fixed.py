"""Lava fixed_pt runs equal the integer reference simulator bit for bit."""

import numpy as np
import pytest
from equivalence import run_all
from nets import (
    ReadoutNet,
    ResidualNet,
    SDSANet,
    TicketNet,
    binary_spike_inputs,
    exact_threshold_net,
    snntorch_soft_reset_net,
)

from backends.lava import run_lava
from snncompile.fixedpoint.quantize import quantize_plan
from snncompile.lower import lower
from snncompile.netlist import OUTPUT, OutputKind
from snncompile.passes import run_passes
from snncompile.sim.integer import simulate_int

CASES = {
    "ticket": (TicketNet, (1, 8, 8), lambda: np.random.default_rng(0).random((6, 8, 1, 8, 8))),
    "residual": (ResidualNet, (20,), lambda: binary_spike_inputs(6, 9, (20,), seed=2)),
    "readout": (ReadoutNet, (1, 6, 6), lambda: np.random.default_rng(3).random((4, 5, 1, 6, 6))),
    "sdsa": (SDSANet, (5, 8), lambda: binary_spike_inputs(6, 7, (5, 8), p=0.4, seed=3)),
    "plif_soft": (lambda: exact_threshold_net(None, "plif", False), (8,), lambda: binary_spike_inputs(8, 9, (8,))),
    "lif_reset": (lambda: exact_threshold_net(-0.5, "lif", True), (8,), lambda: binary_spike_inputs(8, 9, (8,))),
    "soft_reset_by": (snntorch_soft_reset_net, (8,), lambda: binary_spike_inputs(10, 12, (8,), seed=5)),
}


@pytest.mark.lava
@pytest.mark.parametrize("emit", ["fused", "stock"])
@pytest.mark.parametrize("case", sorted(CASES))
def test_lava_fixed_pt_equals_integer_reference(case, emit):
    """stock: Lava's own bit-accurate Sparse/Dense models; fused: our kernels in one Lava
    process. Both must equal the integer reference bit for bit."""
    make, shape, inputs = CASES[case]
    x = inputs()
    runs = run_all(make(), x, shape)
    g, _ = run_passes(runs.trace.graph)
    q, _ = quantize_plan(lower(g), x)
    ints = simulate_int(q, x)
    lava = run_lava(q, x, timeout_s=300, emit=emit)
    assert lava.spikes, "nothing recorded"
    fired = 0
    for name, s in lava.spikes.items():
        np.testing.assert_array_equal(s, ints[name], err_msg=name)
        fired += int(s.sum())
    assert fired > 0
    if q.output_kind is OutputKind.VALUES:
        np.testing.assert_array_equal(lava.output, ints[OUTPUT])
