import numpy as np
from equivalence import assert_equivalent_after_each, run_all
from nets import TicketNet, conv_net

from snncompile.ir import Neuron, Pool2d
from snncompile.passes.fuse_convpep import stages


def test_stem_stages_found_and_maxpool_becomes_or_layer():
    x = np.random.default_rng(2).random((6, 8, 1, 8, 8))
    runs = run_all(TicketNet(), x, (1, 8, 8))
    found = stages(runs.trace.graph)
    assert [len(c) for c in found] == [4, 3]  # conv→bn→lif→maxpool, conv→bn→lif
    g, stats = assert_equivalent_after_each(runs, x, ["fuse_convpep"])
    assert not [n for n in g.of_type(Pool2d) if g.node(n).mode == "max"]
    ors = [n for n in g.of_type(Neuron) if g.node(n).role == "or"]
    assert len(ors) == 1 and g.node(ors[0]).shape == (8, 4, 4)
    assert stats["fuse_convpep"].nodes_fused >= 3  # 2 BN folds + 1 pool


def test_or_layer_equals_maxpool_on_spikes():
    """The OR neurons' spikes are exactly max_pool2d of the spikes before them."""
    from snncompile.passes import run_passes
    from snncompile.sim import simulate

    x = np.random.default_rng(3).random((5, 7, 1, 8, 8))
    runs = run_all(conv_net("s"), x, (1, 8, 8))
    before = simulate(runs.trace.graph, x, keep_values=True)
    g, _ = run_passes(runs.trace.graph, ["fuse_convpep"])
    after = simulate(g, x)
    np.testing.assert_array_equal(after.spikes["pool2d_3"], before.values["pool2d_3"])
    assert after.spikes["pool2d_3"].any()
