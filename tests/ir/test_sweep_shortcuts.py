"""The structural sweeps' shortcuts give what the full computation gives, and results
remembered per graph state are forgotten when the graph changes."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from snncompile.ir import Conv2d, Input, IRGraph, Linear, Neuron, Output
from snncompile.ir.counting import layer_synapses, live_synapses
from snncompile.ir.dynamics import IF
from snncompile.ir.memo import _BY_ARRAYS, MISSING, keep, memo, recalled, remember
from snncompile.ir.semantics import STEP
from snncompile.ir.structure import liveness


def _full(node, x: torch.Tensor, mode: str) -> torch.Tensor:
    """The pattern map with its 0/1 weights materialized (what the shortcut replaces)."""
    w = node.mask if mode == "pattern" else node.mask & (node.weight != 0)
    w = torch.as_tensor(np.array(w, dtype=np.float64))
    if isinstance(node, Conv2d):
        return F.conv2d(x, w, None, node.stride, node.padding, node.dilation, node.groups)
    return F.linear(x, w)


@pytest.mark.parametrize("groups,stride,padding,dilation", [(1, (1, 1), (1, 1), (1, 1)), (2, (2, 1), (0, 2), (1, 2)),
                                                            (4, (1, 2), (2, 1), (2, 1))])
@pytest.mark.parametrize("mode", ["pattern", "connect"])
def test_all_ones_conv_equals_the_full_pattern(groups, stride, padding, dilation, mode):
    rng = np.random.default_rng(groups)
    w = rng.normal(size=(8, 8 // groups, 3, 2))
    node = Conv2d((8, 1, 1), weight=w, stride=stride, padding=padding, dilation=dilation, groups=groups)
    x = torch.as_tensor((rng.random((2, 8, 9, 7)) < 0.3) * rng.integers(1, 4, (2, 8, 9, 7)), dtype=torch.float64)
    y = STEP(node)(node, [x], 1, mode)
    np.testing.assert_array_equal(y.numpy(), _full(node, x, mode).numpy())


@pytest.mark.parametrize("mode", ["pattern", "connect"])
def test_all_ones_linear_equals_the_full_pattern(mode):
    rng = np.random.default_rng(1)
    node = Linear((5, 6), weight=rng.normal(size=(6, 4)))
    x = torch.as_tensor(rng.integers(0, 3, (2, 5, 4)), dtype=torch.float64)
    np.testing.assert_array_equal(STEP(node)(node, [x], 1, mode).numpy(), _full(node, x, mode).numpy())


def test_a_zero_input_gives_the_bias_without_the_weights():
    rng = np.random.default_rng(2)
    conv = Conv2d((4, 3, 3), weight=rng.normal(size=(4, 2, 3, 3)), bias=rng.normal(size=4), padding=(1, 1))
    lin = Linear((3, 4), weight=rng.normal(size=(4, 5)), bias=rng.normal(size=4))
    for node, shape in ((conv, (2, 2, 3, 3)), (lin, (2, 3, 5))):
        x = torch.zeros(shape, dtype=torch.float64)
        for mode in ("affine", "linear"):
            got = STEP(node)(node, [x], 1, mode)
            w = torch.as_tensor(node.weight)
            b = torch.as_tensor(node.bias) if mode == "affine" else None
            want = (F.conv2d(x, w, b, 1, 1) if node is conv else F.linear(x, w, b))
            np.testing.assert_array_equal(got.numpy(), want.numpy())


def _net(mask: np.ndarray | None = None) -> IRGraph:
    rng = np.random.default_rng(3)
    g = IRGraph("net")
    g.add("x", Input((2, 6, 6)))
    g.add("c1", Conv2d((4, 6, 6), weight=rng.normal(size=(4, 2, 3, 3)), padding=(1, 1), mask=mask), ["x"])
    g.add("n1", Neuron((4, 6, 6), dynamics=IF(v_threshold=1.0)), ["c1"])
    g.add("c2", Conv2d((3, 3, 3), weight=rng.normal(size=(3, 4, 3, 3)), stride=(2, 2), padding=(1, 1)), ["n1"])
    g.add("n2", Neuron((3, 3, 3), dynamics=IF(v_threshold=1.0)), ["c2"])
    g.add("out", Output((3, 3, 3)), ["n2"])
    return g


def test_adjoint_counts_equal_the_explicit_count():
    g = _net()
    alive = np.ones((4, 6, 6), dtype=bool)
    alive[1] = False
    alive[2, :3] = False
    g.node("n1").alive = alive
    live = liveness(g)
    explicit = dataclasses.replace(live, synapses={})
    for name in ("c1", "c2"):
        assert name in live.synapses
        for per_population in (True, False):
            assert live_synapses(g, name, live, per_population) == live_synapses(g, name, explicit, per_population)
    assert live.synapses["c1"][0] < 4 * 2 * 9 * 36   # the removed neurons took synapses with them


def test_counts_are_remembered_until_the_graph_changes():
    g = _net()
    first = layer_synapses(g)
    assert layer_synapses(g) == first
    g.node("n1").alive = np.zeros((4, 6, 6), dtype=bool)   # a pass removes every neuron of n1
    after = layer_synapses(g)
    assert after["c1"].synapses == after["c2"].synapses == 0
    mask = np.ones((4, 2, 3, 3), dtype=bool)
    mask[0] = False
    h = _net()
    before = layer_synapses(h)["c1"].synapses
    h.node("c1").mask = mask                               # a replaced array
    assert layer_synapses(h)["c1"].synapses < before
    h.node("c1").impl = "sparse"                           # an annotation no count reads: kept
    assert layer_synapses(h)["c1"].synapses < before
    h.remove("out")                                        # the graph's shape changes: counted again
    h.add("out", Output((3, 3, 3)), ["n2"])
    assert layer_synapses(h) == layer_synapses(_net(mask))


def test_memo_forgets_on_any_change_and_remember_records():
    g = _net()
    calls = []
    value = memo(g, "k", lambda: calls.append(1) or len(calls))
    assert memo(g, "k", lambda: calls.append(1) or len(calls)) == value == 1
    g.node("n2").dynamics = IF(v_threshold=2.0)
    assert memo(g, "k", lambda: calls.append(1) or len(calls)) == 2
    g.replace_input("n2", "c2", "c2")
    assert memo(g, "k", lambda: 99) == 2                  # same inputs: the same state
    remember(g, "k", 7)
    assert memo(g, "k", lambda: 99) == 7
    g.add("extra", Neuron((3, 3, 3), dynamics=IF(v_threshold=1.0)), ["c2"])
    assert memo(g, "k", lambda: 99) == 99


def test_kept_values_hold_while_the_same_arrays_live():
    from snncompile.ir.counting import nonzero_weights

    w, m = np.arange(6.0).reshape(2, 3), np.ones((2, 3), bool)
    assert recalled("k", (w, m)) is MISSING
    keep("k", (w, m), 1)
    assert recalled("k", (w, m)) == 1                         # the same objects: remembered
    assert recalled("k", (w.copy(), m)) is MISSING            # an equal but other array: not
    key = ("k", id(w), id(m))
    assert key in _BY_ARRAYS
    del w
    assert key not in _BY_ARRAYS                              # gone with its array
    node = Linear((2,), weight=np.array([[0.0, 1.0], [2.0, 0.0]]), bias=None)
    assert nonzero_weights(node) == 2
    node.weight = np.ones((2, 2))                             # a pass replaces arrays, never writes them
    assert nonzero_weights(node) == 4
