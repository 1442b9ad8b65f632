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


def test_folded_weights_are_scaled_without_copying_the_weights():
    runs = run_all(conv_net("s"), np.zeros((1, 1, 1, 8, 8)), (1, 8, 8))
    g0 = runs.trace.graph
    conv0, bn0 = g0.node("conv2d_0"), g0.node("batchnorm_1")
    g = g0.copy()
    fold_batchnorm(g)
    scale, shift = bn0.scale_shift()
    folded = g.node("conv2d_0")
    assert folded.weight is conv0.weight or np.shares_memory(folded.weight, conv0.weight) \
        or np.array_equal(folded.weight, conv0.weight)      # W itself, the scale is the gain
    np.testing.assert_array_equal(folded.gain, scale)
    np.testing.assert_array_equal(folded.effective_weight, conv0.weight * scale[:, None, None, None])
    np.testing.assert_allclose(g.node("conv2d_0").bias, conv0.bias * scale + shift)
    assert g.inputs("neuron_2") == ["conv2d_0"]


def test_bn_without_synapse_is_kept():
    from snncompile.ir import Input, IRGraph, Neuron, Output
    from snncompile.ir.dynamics import IF

    g = IRGraph()
    g.add("input", Input((3,)))
    g.add("bn", BatchNorm((3,), mean=np.zeros(3), var=np.ones(3), weight=np.ones(3), bias=np.zeros(3)),
          ["input"])
    g.add("n", Neuron((3,), dynamics=IF()), ["bn"])
    g.add("output", Output((3,)), ["n"])
    stats = fold_batchnorm(g)
    assert g.of_type(BatchNorm) == ["bn"] and not stats.changed and stats.notes


def test_a_zero_scale_is_written_into_the_weights():
    """γ = 0 silences a channel: the gain would be 0, so the product goes into W instead."""
    runs = run_all(conv_net("s"), np.zeros((1, 1, 1, 8, 8)), (1, 8, 8))
    g = runs.trace.graph.copy()
    bn = g.node("batchnorm_1")
    bn.weight = np.where(np.arange(bn.weight.size) == 0, 0.0, bn.weight)
    scale, _ = bn.scale_shift()
    w0 = g.node("conv2d_0").effective_weight
    fold_batchnorm(g)
    conv = g.node("conv2d_0")
    assert conv.gain is None and not conv.weight[0].any()
    np.testing.assert_array_equal(conv.effective_weight, w0 * scale[:, None, None, None])
