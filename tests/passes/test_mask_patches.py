import numpy as np
from equivalence import assert_equivalent_after_each, run_all
from nets import TicketNet

from snncompile.ir import Mask
from snncompile.passes import run_passes


def test_masked_patches_remove_neurons_and_their_synapses():
    x = np.random.default_rng(5).random((5, 6, 1, 8, 8))
    model = TicketNet(keep_ratio=0.75)
    runs = run_all(model, x, (1, 8, 8))
    g0 = runs.trace.graph
    assert len(g0.of_type(Mask)) == 1
    g, stats = assert_equivalent_after_each(runs, x, ["mask_patches"])
    masked = int((model.patch_mask == 0).sum())
    assert masked == 4
    sn2 = g.node("sn2")
    assert sn2.alive is not None and int((~sn2.alive).sum()) == 16 * masked
    assert stats["mask_patches"].neurons_removed == 16 * masked
    # every synapse into and out of the removed neurons is gone
    assert stats["mask_patches"].synapses_removed > 0


def test_patch_mask_file_is_inserted_after_the_stem(tmp_path):
    from nets import conv_net

    runs = run_all(conv_net("s"), np.zeros((1, 1, 1, 8, 8)), (1, 8, 8))
    g = runs.trace.graph.copy()
    keep = np.ones((4, 4), bool)
    keep[0, 0] = keep[3, 3] = False
    g.patch_mask = keep
    g2, stats = run_passes(g, ["mask_patches"])
    assert any("after neuron_6" in w for w in stats[0].warnings)
    assert g2.patch_mask is None and "patches_masked" in g2.facts
    assert stats[0].neurons_removed == 2 * 8
