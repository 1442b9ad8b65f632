"""The shortcuts the estimate of a new graph takes give the same answers as the long way."""

import random

import networkx as nx
import numpy as np

from snncompile.ir import Conv2d, IRGraph, Linear
from snncompile.ir.counting import nonzero_weights


def _odd_weights(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    w = rng.standard_normal(shape).astype(np.float32)
    flat = w.reshape(-1)
    flat[rng.integers(0, flat.size, flat.size // 4)] = 0.0
    flat[rng.integers(0, flat.size, 5)] = -0.0       # zero
    flat[rng.integers(0, flat.size, 3)] = np.nan     # not zero
    w.flags.writeable = False
    return w


def test_nonzero_count_is_not_equal_to_zero_and_remembered():
    rng = np.random.default_rng(0)
    nodes = [Conv2d((8, 4, 4), weight=_odd_weights(rng, (8, 3, 3, 3))),
             Conv2d((64, 4, 4), weight=_odd_weights(rng, (64, 64, 3, 3))),
             Linear((10,), weight=_odd_weights(rng, (10, 300)))]
    masked = _odd_weights(rng, (16, 8, 3, 3))
    nodes.append(Conv2d((16, 4, 4), weight=masked, mask=rng.random(masked.shape) < 0.5))
    want = [int(np.count_nonzero((n.weight != 0) & n.mask)) for n in nodes]   # -0.0 is zero, NaN is not
    assert [nonzero_weights(n) for n in nodes] == want
    assert [nonzero_weights(n) for n in nodes] == want   # remembered


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


def _counted(w: np.ndarray, mask: np.ndarray | None = None) -> int:
    return nonzero_weights(Linear((w.shape[0],), weight=w, mask=mask))


def test_large_layers_counted_in_chunks_count_as_whole_arrays():
    """Over _CHUNK weights (VGG-16's classifier), with a partial last chunk, -0.0, NaN and
    a mask; and a non-contiguous view (read through a flat copy)."""
    from snncompile.ir.counting import _CHUNK

    rng = np.random.default_rng(3)
    w = _odd_weights(rng, (3, _CHUNK + 1001))
    mask = rng.random(w.shape) < 0.5
    assert _counted(w) == int(np.count_nonzero(w != 0))
    assert _counted(w, mask) == int(np.count_nonzero((w != 0) & mask))
    assert _counted(w.T) == int(np.count_nonzero(w != 0))
    assert _counted(w.T, mask.T) == int(np.count_nonzero((w != 0) & mask))


def test_many_weights_are_counted_on_two_threads_as_on_one(monkeypatch):
    """Over _TWO_THREADS weights the chunks are shared out between two threads: the same
    counts per layer (masked and not, a partial last chunk), and an error raised on the
    helper thread is raised to the caller."""
    from snncompile.ir import counting

    rng = np.random.default_rng(4)
    nodes = [Linear((n,), weight=_odd_weights(rng, (n, 40_001))) for n in (9, 60, 3)]
    masked = _odd_weights(rng, (50, 40_001))
    nodes.append(Linear((50,), weight=masked, mask=rng.random(masked.shape) < 0.3))
    assert sum(n.weight.size for n in nodes) > counting._TWO_THREADS
    want = [int(np.count_nonzero((n.weight != 0) & n.mask)) for n in nodes]
    started = []
    real = counting.threading.Thread
    monkeypatch.setattr(counting, "_cores", lambda: 2)
    monkeypatch.setattr(counting.threading, "Thread", lambda *a, **k: started.append(1) or real(*a, **k))
    assert counting.nonzero_weights_of(nodes) == want and started == [1]
    assert counting.nonzero_weights_of(nodes) == want and started == [1]   # remembered: not read again
    monkeypatch.setattr(counting, "_cores", lambda: 1)   # one core: counted on this thread alone
    fresh = [Linear(n.shape, weight=n.weight.copy(), mask=n.mask) for n in nodes]
    assert counting.nonzero_weights_of(fresh) == want and started == [1]
    monkeypatch.setattr(counting, "_cores", lambda: 2)
    broken = [Linear(n.shape, weight=n.weight.copy(), mask=n.mask) for n in nodes]
    real_count = counting._count

    def failing_on_the_helper(parts, n):
        if counting.threading.current_thread() is counting.threading.main_thread():
            return real_count(parts, n)
        raise MemoryError("helper")
    monkeypatch.setattr(counting, "_count", failing_on_the_helper)
    try:
        counting.nonzero_weights_of(broken)
    except MemoryError as exc:
        assert str(exc) == "helper"
    else:
        raise AssertionError("the helper thread's error was swallowed")


def test_batch_norm_and_scale_on_a_bias_map_match_the_reference_step_bit_for_bit():
    """The lowering steps batch norms and scales on compact bias maps in numpy; the values
    (signed zeros and NaN included) are the reference step's in torch."""
    import torch

    from snncompile.ir import BatchNorm, Scale
    from snncompile.ir.semantics import STEP
    from snncompile.lower.lower import _per_element

    rng = np.random.default_rng(4)
    c = 6
    special = np.array([0.0, -0.0, np.inf, -np.inf, np.nan, 1e-300])
    stats = {k: rng.standard_normal(c).astype(np.float32) for k in ("mean", "weight", "bias")}
    stats["weight"][:2] = [0.0, -0.0]
    var = np.abs(rng.standard_normal(c)).astype(np.float32)
    var[3] = 0.0
    nodes = [BatchNorm((c, 4, 4), var=var, eps=1e-5, **stats), BatchNorm((c, 4, 4), var=var, eps=0.0, **stats),
             Scale((c, 4, 4), factor=-0.37), Scale((c, 4, 4), factor=2.5, offset=-0.0), Scale((c, 4, 4), factor=-0.0)]
    for node in nodes:
        for shape in [(1, 1, 1, 1), (1, c, 1, 1), (1, c, 4, 4)]:
            b = rng.standard_normal(shape)
            b.flat[: min(b.size, special.size)] = special[: b.size]
            want = STEP(node)(node, [torch.from_numpy(b)], 1, "affine").numpy()
            got = _per_element(node, b)
            assert got.shape == want.shape and got.dtype == want.dtype
            assert np.array_equal(got.view(np.int64)[~np.isnan(got)], want.view(np.int64)[~np.isnan(want)])
            assert np.array_equal(np.isnan(got), np.isnan(want))


def test_batch_norm_scale_shift_is_remembered_until_an_array_is_replaced():
    from snncompile.ir import BatchNorm

    bn = BatchNorm((3,), mean=np.zeros(3), var=np.ones(3), weight=np.full(3, 2.0), bias=np.ones(3))
    scale, shift = bn.scale_shift()
    assert bn.scale_shift()[0] is scale and not scale.flags.writeable
    bn.weight = np.full(3, 4.0)   # a pass replaces an array: computed anew
    assert np.allclose(bn.scale_shift()[0], 4 / np.sqrt(1 + 1e-5))
    bn.eps = 1.0
    assert np.allclose(bn.scale_shift()[0], 4 / np.sqrt(2.0))
