"""Lowering to populations + sparse projections preserves the spikes exactly."""

import numpy as np
import pytest
import scipy.sparse as sp
import torch
import torch.nn.functional as F
from equivalence import assert_backend_matches, run_all
from nets import CASES as NETWORK_CASES
from nets import (
    ResidualNet,
    binary_spike_inputs,
    conv_net,
    exact_threshold_net,
)

from snncompile.errors import SnnCompileError
from snncompile.frontend import trace_model
from snncompile.ir import Conv2d, Pool2d
from snncompile.lower import lower
from snncompile.netlist import InputPopulation, NeuronPopulation, OrPopulation
from snncompile.netlist.ops import conv2d_matrix, pool2d_matrix
from snncompile.sim.netlist import simulate_netlist


@pytest.mark.parametrize("stride,padding,dilation,groups", [(1, 1, 1, 1), (2, 1, 1, 1), (2, 0, 2, 1),
                                                             (1, 2, 1, 2), (3, 1, 1, 4)])
def test_conv_matrix_equals_conv2d(stride, padding, dilation, groups):
    rng = np.random.default_rng(0)
    w = rng.normal(size=(8, 4 // groups, 3, 3)) * (rng.random((8, 4 // groups, 3, 3)) > 0.4)
    x = rng.normal(size=(4, 9, 7))
    ref = F.conv2d(torch.as_tensor(x)[None], torch.as_tensor(w), None, stride, padding, dilation, groups)[0]
    node = Conv2d(tuple(ref.shape), weight=w, stride=(stride,) * 2, padding=(padding,) * 2,
                  dilation=(dilation,) * 2, groups=groups, mask=w != 0)
    m = conv2d_matrix(node, x.shape)
    assert m.nnz <= np.count_nonzero(w) * ref.shape[1] * ref.shape[2]
    np.testing.assert_allclose(m @ x.ravel(), ref.numpy().ravel(), atol=1e-12)


@pytest.mark.parametrize("mode,include_pad", [("avg", True), ("avg", False), ("max", True)])
def test_pool_matrix(mode, include_pad):
    x = (np.random.default_rng(1).random((3, 7, 7)) > 0.6).astype(float)
    node = Pool2d((3, 4, 4), mode=mode, kernel=(3, 3), stride=(2, 2), padding=(1, 1),
                  count_include_pad=include_pad)
    m = pool2d_matrix(node, x.shape)
    t = torch.as_tensor(x)[None]
    if mode == "max":  # window sum ≥ 1 ⇔ OR ⇔ max of spikes
        ref = F.max_pool2d(t, 3, 2, 1)[0].numpy().ravel()
        np.testing.assert_array_equal((m @ x.ravel()) >= 1, ref == 1)
    else:
        ref = F.avg_pool2d(t, 3, 2, 1, count_include_pad=include_pad)[0].numpy().ravel()
        np.testing.assert_allclose(m @ x.ravel(), ref, atol=1e-12)


CASES = {
    **NETWORK_CASES,
    "exact_soft": (lambda: exact_threshold_net(None, "lif"), (8,), lambda: binary_spike_inputs(8, 16, (8,))),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_plan_simulation_matches_torch(case):
    make, shape, inputs = CASES[case]
    runs = run_all(make(), inputs(), shape)
    assert_backend_matches(runs, simulate_netlist(runs.plan, inputs()))


def test_residual_gets_delayed_projection():
    plan = run_all(ResidualNet(), binary_spike_inputs(2, 1, (20,)), (20,)).plan
    delays = sorted(p.delay for p in plan.projections)
    assert delays == [0, 0, 0, 1]  # sn1 → sn3 skips one hop: one extra step
    assert plan.depth == 3


def test_conv_net_plan_structure():
    plan = lower(trace_model(conv_net("s"), (1, 8, 8)).graph)
    kinds = [type(p) for p in plan.populations.values()]
    assert kinds == [InputPopulation, NeuronPopulation, OrPopulation, NeuronPopulation, NeuronPopulation]
    assert [p.kind for p in plan.populations.values()] == ["input", "neuron", "or", "neuron", "neuron"]
    # avg-pool + flatten + linear collapse into one projection with 4 inputs per synapse row
    last = plan.projections[-1]
    assert last.layers == ["linear_10"] and last.weights.shape == (10, 8 * 4 * 4)
    assert isinstance(last.weights, sp.csr_matrix)


def test_maxpool_of_real_values_is_rejected():
    from spikingjelly.activation_based import layer, neuron
    from torch import nn

    m = nn.Sequential(layer.Conv2d(1, 2, 3), layer.MaxPool2d(2), neuron.IFNode()).eval()
    graph = trace_model(m, (1, 8, 8)).graph
    assert [p.kind for p in lower(graph).populations.values()] == ["input", "host", "neuron"]   # off the cores
    with pytest.raises(SnnCompileError, match=r"max pooling at `1` \(MaxPool2d\) reads real values \(the output "
                                              r"of conv2d `0`\), not spikes") as e:
        lower(graph, host=False)
    assert "after the spiking neuron" in e.value.hint
