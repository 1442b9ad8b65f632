import numpy as np
import pytest
from equivalence import assert_equivalent_after_each, run_all
from nets import TicketNet

from snncompile.ir import Conv2d, Linear, Neuron
from snncompile.passes.binarize import binary_scales


def test_binary_scales_detection():
    w = np.array([[0.5, -0.5, 0.0], [0.25, 0.0, -0.25]])
    np.testing.assert_array_equal(binary_scales(w, np.ones_like(w, bool)), [0.5, 0.25])
    assert binary_scales(w + np.array([[0, 0, 0.1], [0, 0, 0]]), np.ones_like(w, bool)) is None
    # a masked-out weight does not break binariness
    w2 = np.array([[0.5, -0.5, 9.0]])
    np.testing.assert_array_equal(binary_scales(w2, np.array([[True, True, False]])), [0.5])


@pytest.mark.parametrize("alpha,folded", [(0.5, True), (0.6, False)])
def test_ticket_binarized_equivalent_and_alpha_folded_when_exact(alpha, folded):
    """α moves into the neuron (weights ±1, threshold / α) only where that is exact in
    floating point: α a power of two. Otherwise it stays on the ±α weights."""
    x = np.random.default_rng(1).random((6, 10, 1, 8, 8))
    runs = run_all(TicketNet(head_alpha=alpha), x, (1, 8, 8))
    g, stats = assert_equivalent_after_each(runs, x, ["fold_batchnorm", "fuse_convpep", "binarize"])
    syn = [g.node(n) for n in g.of_type(Conv2d) + g.of_type(Linear)]
    assert all(s.binary and s.weight_bits == 1 for s in syn)
    fc = g.node(g.of_type(Linear)[0])
    out = g.node(g.of_type(Neuron)[-1])
    if folded:  # per-layer α moved into the IF neuron: weights ±1 / 0, threshold divided by α
        assert set(np.unique(fc.weight)) <= {-1.0, 0.0, 1.0}
        assert out.dynamics.v_threshold == 1.0 / alpha
    else:
        assert np.all(np.abs(fc.weight[fc.weight != 0]) == np.float32(alpha))  # the model's float32 α
        assert out.dynamics.v_threshold == 1.0
    learned = [s for n, s in zip(g.of_type(Conv2d) + g.of_type(Linear), syn) if not n.endswith("_or_syn")]
    assert stats["binarize"].bits_saved == 31 * sum(int((s.weight != 0).sum()) for s in learned)
