"""The shortcuts the estimate of a new graph takes give the same answers as the long way."""

import random

import networkx as nx
import numpy as np

from snncompile.ir import Conv2d, IRGraph, Linear
from snncompile.ir.counting import _nonzero, nonzero_weights, nonzero_weights_ahead


def _odd_weights(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    w = rng.standard_normal(shape).astype(np.float32)
    flat = w.reshape(-1)
    flat[rng.integers(0, flat.size, flat.size // 4)] = 0.0
    flat[rng.integers(0, flat.size, 5)] = -0.0       # zero
    flat[rng.integers(0, flat.size, 3)] = np.nan     # not zero
    w.flags.writeable = False
    return w


def test_nonzero_counted_ahead_equals_counted_in_place():
    rng = np.random.default_rng(0)
    nodes = [Conv2d((8, 4, 4), weight=_odd_weights(rng, (8, 3, 3, 3))),
             Conv2d((64, 4, 4), weight=_odd_weights(rng, (64, 64, 3, 3))),
             Linear((10,), weight=_odd_weights(rng, (10, 300)))]
    masked = _odd_weights(rng, (16, 8, 3, 3))
    nodes.append(Conv2d((16, 4, 4), weight=masked, mask=rng.random(masked.shape) < 0.5))
    want = [_nonzero(n.weight, n.mask) for n in nodes]
    with nonzero_weights_ahead(nodes):
        got = [nonzero_weights(n) for n in nodes]
    assert got == want
    assert [nonzero_weights(n) for n in nodes] == want   # remembered


def test_a_block_left_early_leaves_no_count_behind():
    rng = np.random.default_rng(1)
    nodes = [Linear((50,), weight=_odd_weights(rng, (50, 2000))) for _ in range(20)]
    try:
        with nonzero_weights_ahead(nodes):
            raise KeyboardInterrupt
    except KeyboardInterrupt:
        pass
    assert [nonzero_weights(n) for n in nodes] == [_nonzero(n.weight, n.mask) for n in nodes]


def test_order_is_networkx_lexicographical_order_and_cycles_are_told():
    rng = random.Random(2)
    for _ in range(200):
        g = IRGraph()
        names = [f"n{rng.randint(0, 10**6)}_{i}" for i in range(rng.randint(1, 30))]
        hidden = rng.sample(names, len(names))              # a topological order the edges follow
        pos = {n: i for i, n in enumerate(hidden)}
        g.nx.add_nodes_from(names)
        g.nx.add_edges_from((a, b) for a in names for b in names if pos[a] < pos[b] and rng.random() < 0.15)
        index = {n: i for i, n in enumerate(g.nx.nodes)}
        assert g._acyclic_order(index) == list(nx.lexicographical_topological_sort(g.nx, key=index.__getitem__))
        assert g.topo() == g._acyclic_order(index) and not g.recurrent()   # now answered from the kept order
        if len(names) > 1:
            a, b = rng.sample(names, 2)
            g.nx.add_edges_from([(a, b), (b, a)])
            assert g._acyclic_order(index) is None
            assert g.recurrent()   # the kept order is for other edges


def test_large_layers_counted_in_chunks_count_as_whole_arrays():
    """Over _CHUNK weights (VGG-16's classifier), with a partial last chunk, -0.0, NaN and
    a mask; and a non-contiguous view (read through a flat copy)."""
    from snncompile.ir.counting import _CHUNK

    rng = np.random.default_rng(3)
    w = _odd_weights(rng, (3, _CHUNK + 1001))
    mask = rng.random(w.shape) < 0.5
    dense = np.broadcast_to(np.True_, w.shape)
    assert _nonzero(w, dense) == int(np.count_nonzero(w != 0))
    assert _nonzero(w, mask) == int(np.count_nonzero((w != 0) & mask))
    view = w.T
    assert _nonzero(view, np.broadcast_to(np.True_, view.shape)) == int(np.count_nonzero(w != 0))
    assert _nonzero(view, mask.T) == int(np.count_nonzero((w != 0) & mask))
