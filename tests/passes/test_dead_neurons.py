import numpy as np
import torch
from equivalence import assert_equivalent_after_each, run_all
from spikingjelly.activation_based import neuron
from torch import nn

from snncompile.ir.dynamics import IF, LIF
from snncompile.passes.dead_neurons import never_fires


def test_never_fires_bounds():
    b = np.array([-1.0, 0.0, 0.4, 0.6, 2.0])
    lif = LIF(v_threshold=1.0, v_reset=0.0, tau=2.0, decay_input=True)
    np.testing.assert_array_equal(never_fires(b, lif), [True, True, True, True, False])
    lif_nd = LIF(v_threshold=1.0, v_reset=0.0, tau=2.0, decay_input=False)   # fixed point τ·b
    np.testing.assert_array_equal(never_fires(b, lif_nd), [True, True, True, False, False])
    iff = IF(v_threshold=1.0, v_reset=None)
    np.testing.assert_array_equal(never_fires(b, iff), [True, True, False, False, False])


def _net():
    torch.manual_seed(0)
    m = nn.Sequential(nn.Linear(6, 5), neuron.LIFNode(tau=2.0), nn.Linear(5, 4), neuron.IFNode(),
                      nn.Linear(4, 3), neuron.IFNode()).eval()
    with torch.no_grad():
        m[0].weight.mul_(3)
        m[0].weight[1] = 0          # neuron 1 of layer 1: no input...
        m[0].bias[1] = -0.5         # ...and a negative bias: can never fire
        m[2].weight[:, 3] = 0       # neuron 3 of layer 1: no outgoing synapse
        m[2].weight.mul_(3)
        m[4].weight[:, 2] = 0       # neuron 2 of layer 2: no outgoing synapse
        m[4].weight.mul_(3)
    return m


def test_dead_and_useless_neurons_removed_with_their_synapses():
    x = np.random.default_rng(6).random((6, 8, 6)) * 2
    runs = run_all(_net(), x, (6,))
    g, stats = assert_equivalent_after_each(runs, x, ["prune_synapses", "dead_neurons"])
    a1 = g.node("neuron_1").alive
    assert list(np.flatnonzero(~a1)) == [1, 3]
    assert list(np.flatnonzero(~g.node("neuron_3").alive)) == [2]
    assert g.node("neuron_5").alive is None  # output neurons always stay
    assert stats["dead_neurons"].neurons_removed == 3
    # removed: 6 weights into neuron_1[3], 4 out of neuron_1[1] (its inputs were zero already),
    # the 4 weights into neuron_3[2] (one from the removed neuron_1[3] already pruned)
    assert stats["dead_neurons"].synapses_removed == 6 + 4 + 3
