import numpy as np
from equivalence import assert_equivalent_after_each, run_all
from nets import TicketNet

from snncompile.ir import Conv2d, Linear, Mask
from snncompile.lower import lower
from snncompile.passes.prune_synapses import conv_memory_bits


def test_prune_drops_exact_zeros_and_lowering_goes_sparse():
    x = np.random.default_rng(4).random((5, 6, 1, 8, 8))
    runs = run_all(TicketNet(sparsity=0.9), x, (1, 8, 8))
    dense_plan = lower(runs.trace.graph)
    assert {p.impl for p in dense_plan.projections} == {"dense"}
    g, stats = assert_equivalent_after_each(runs, x, ["prune_synapses"])
    for n in g.of_type(Conv2d) + g.of_type(Linear):
        node = g.node(n)
        np.testing.assert_array_equal(node.mask, node.weight != 0)
    plan = lower(g)
    dense_nnz = sum(p.nnz for p in dense_plan.projections)
    assert stats["prune_synapses"].synapses_removed == dense_nnz - sum(p.nnz for p in plan.projections)
    assert stats["prune_synapses"].synapses_removed > 0.8 * dense_nnz
    assert {p.impl for p in plan.projections} <= {"sparse", "conv"}
    fc = [p for p in plan.projections if p.layers and p.layers[-1] == "fc"][0]
    # nonzero head weights reading unmasked patches (the Mask zeroes the others' columns)
    cols = np.broadcast_to(g.node(g.of_type(Mask)[0]).keep, (16, 4, 4)).ravel()
    assert fc.impl == "sparse" and fc.nnz == int((g.node("fc").weight[:, cols] != 0).sum())


def test_conv_cost_model_prefers_the_smaller_memory():
    small_map = Conv2d((4, 2, 2), weight=np.ones((4, 4, 3, 3)), padding=(1, 1))
    kernel, unrolled = conv_memory_bits(small_map, (4, 2, 2))
    assert kernel == 4 * 4 * 9 * 32
    assert unrolled == small_map.size * 32 + 4 * 4 * 4 * 4 * (32 + 4)  # every tap valid on 2×2 with pad
