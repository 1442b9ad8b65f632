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


def test_a_max_pool_counts_its_synapses_into_every_or_neuron_as_lowered():
    """spikformer_net's stem max-pool feeds a patch mask: the OR neurons of masked patches reach
    no live neuron until mask_patches removes them, but they are kept and lowered with their
    window synapses. The pool's count, the lowered netlist and an independent float64 count
    agree, so fusing the pool into OR synapses + neurons removes no synapse (it reported −512)."""
    import torch
    from nets import spikformer_net

    from snncompile.frontend import trace_model
    from snncompile.ir.counting import layer_synapses
    from snncompile.lower import lower
    from snncompile.passes import run_passes

    g = trace_model(spikformer_net().eval(), (1, 8, 8)).graph
    folded, _ = run_passes(g, ["fold_batchnorm"])
    (pool,) = [n for n in folded.of_type(Pool2d) if folded.node(n).mode == "max"]
    node, src = folded.node(pool), folded.inputs(pool)[0]
    c = folded.node(src).shape[0]
    every_source = torch.ones((1, *folded.node(src).shape), dtype=torch.float64)   # no neuron removed yet
    windows = torch.nn.functional.conv2d(every_source, torch.ones((c, 1, *node.kernel), dtype=torch.float64),
                                         stride=node.stride, padding=node.padding, groups=c)
    independent = int(windows.sum())
    lowered = sum(int(p.matrix().nnz) for p in lower(folded).projections if p.dst == pool)
    assert layer_synapses(folded)[pool].synapses == independent == lowered == 32 * 16 * 4
    _, stats = run_passes(g, ["fold_batchnorm", "fuse_convpep", "mask_patches"])
    removed = {s.name: s.synapses_removed for s in stats}
    assert removed["fuse_convpep"] == 0
    assert removed["mask_patches"] >= 4 * 32 * 4   # at least the 4 masked patches' OR windows
