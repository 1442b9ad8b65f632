import numpy as np
from equivalence import assert_equivalent_after_each, run_all
from nets import conv_net, seq_container_net

from snncompile.ir import BatchNorm, Conv2d, Linear
from snncompile.passes import fold_batchnorm


def test_folds_conv_and_linear_bn_and_stays_equivalent():
    x = np.random.default_rng(0).random((5, 6, 2, 8, 8))
    runs = run_all(seq_container_net(), x, (2, 8, 8))
    before = len(runs.trace.graph.of_type(BatchNorm))
    g, stats = assert_equivalent_after_each(runs, x, ["fold_batchnorm"])
    assert before == 2 and not g.of_type(BatchNorm)
    assert stats["fold_batchnorm"].nodes_fused == 2
    for n in g.of_type(Conv2d) + g.of_type(Linear)[:1]:
        assert g.node(n).bias is not None


def test_folded_weights_are_scaled_copies():
    runs = run_all(conv_net("s"), np.zeros((1, 1, 1, 8, 8)), (1, 8, 8))
    g0 = runs.trace.graph
    conv0, bn0 = g0.node("conv2d_0"), g0.node("batchnorm_1")
    g = g0.copy()
    fold_batchnorm(g)
    scale, shift = bn0.scale_shift()
    np.testing.assert_allclose(g.node("conv2d_0").weight, conv0.weight * scale[:, None, None, None])
    np.testing.assert_allclose(g.node("conv2d_0").bias, conv0.bias * scale + shift)
    assert g.inputs("neuron_2") == ["conv2d_0"]


def test_bn_without_synapse_is_kept():
    from snncompile.ir import Input, IRGraph, Neuron, Output

    g = IRGraph()
    g.add("input", Input((3,)))
    g.add("bn", BatchNorm((3,), mean=np.zeros(3), var=np.ones(3), weight=np.ones(3), bias=np.zeros(3)),
          ["input"])
    g.add("n", Neuron((3,), model="if"), ["bn"])
    g.add("output", Output((3,)), ["n"])
    stats = fold_batchnorm(g)
    assert g.of_type(BatchNorm) == ["bn"] and not stats.changed and stats.notes
