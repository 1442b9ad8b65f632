"""The reference simulator spikes exactly like the PyTorch model (float64)."""

import numpy as np
import pytest
from equivalence import assert_same_spikes, run_all
from nets import (
    ReadoutNet,
    ResidualNet,
    binary_spike_inputs,
    conv_net,
    exact_threshold_net,
    seq_container_net,
)

from snncompile.compare import predictions
from snncompile.ir import Neuron, dynamics
from snncompile.ir.semantics import neuron_params
from snncompile.sim import simulate


@pytest.mark.parametrize("mode", ["s", "m"])
def test_conv_net_matches_torch(mode):
    x = np.random.default_rng(0).random((6, 9, 1, 8, 8))
    runs = run_all(conv_net(mode), x, (1, 8, 8))
    assert_same_spikes(runs.torch_spikes, runs.ref_spikes)
    assert all(s.any() for s in runs.ref_spikes.values()), "a layer never fired: test is vacuous"


def test_seq_container_net_matches_torch():
    x = np.random.default_rng(1).random((5, 7, 2, 8, 8))
    runs = run_all(seq_container_net(), x, (2, 8, 8))
    assert runs.trace.step_mode == "m"
    assert_same_spikes(runs.torch_spikes, runs.ref_spikes)
    assert all(s.any() for s in runs.ref_spikes.values())


def test_residual_and_readout_match_torch():
    x = binary_spike_inputs(6, 11, (20,), seed=2)
    runs = run_all(ResidualNet(), x, (20,))
    assert_same_spikes(runs.torch_spikes, runs.ref_spikes)
    x = np.random.default_rng(3).random((4, 5, 1, 6, 6))
    runs = run_all(ReadoutNet(), x, (1, 6, 6))
    assert_same_spikes(runs.torch_spikes, runs.ref_spikes)
    np.testing.assert_allclose(runs.ref_output, runs.torch_output, rtol=0, atol=1e-12)
    np.testing.assert_array_equal(predictions(runs.ref_output), predictions(runs.torch_output))


@pytest.mark.parametrize("v_reset", [0.0, -0.5, None])
@pytest.mark.parametrize("model,decay_input", [("if", True), ("lif", True), ("lif", False),
                                               ("plif", True), ("plif", False)])
def test_exact_threshold_hits(model, decay_input, v_reset):
    x = binary_spike_inputs(8, 16, (8,), seed=4)
    net = exact_threshold_net(v_reset, model, decay_input)
    runs = run_all(net, x, (8,))
    assert_same_spikes(runs.torch_spikes, runs.ref_spikes)
    # the test must exercise v == v_th: count membranes that land exactly on the threshold
    g = runs.trace.graph
    sn = g.of_type(Neuron)[0]
    res = simulate(g, x, keep_values=True)
    current = res.values[g.inputs(sn)[0]]
    p = neuron_params(g.node(sn))
    v, exact = np.full_like(current[0], p.v_init), 0
    for t in range(current.shape[0]):
        exact += int((p.charge(v, current[t]) == p.v_threshold).sum())
        _, v = dynamics.step(v, current[t], p)
    assert exact > 0
