"""The Delay node: schedules of graphs with loops, the reference simulator on delays, and
the structural sweeps on a graph with a cycle."""

from __future__ import annotations

import numpy as np
import pytest

from snncompile.ir import Add, Delay, Input, IRGraph, Linear, Neuron, Output
from snncompile.ir.dynamics import IF
from snncompile.ir.structure import liveness, spike_valued
from snncompile.sim.reference import simulate


def _loop(self_loop: bool = False) -> IRGraph:
    """x → fc → (+ rec(Delay(s))) → LIF s → out."""
    g = IRGraph("loop")
    g.add("x", Input((3,)))
    g.add("fc", Linear((4,), weight=np.full((4, 3), 0.6)), ["x"])
    g.add("d", Delay((4,), steps=1))
    g.add("rec", Linear((4,), weight=np.eye(4) * 0.5, bias=np.full(4, 0.1)), ["d"])
    g.add("sum", Add((4,)), ["fc", "rec"])
    g.add("s", Neuron((4,), dynamics=IF(v_threshold=1.0, v_reset=0.0)), ["sum"])
    g.set_inputs("d", ["s"])
    g.add("out", Output((4,)), ["s"])
    return g


def test_schedule_groups_a_loop_after_its_inputs():
    g = _loop()
    groups = g.schedule()
    assert groups[:2] == [["x"], ["fc"]]
    assert ["d", "rec", "sum", "s"] in groups and groups[-1] == ["out"]
    assert g.recurrent() and g.delayed_reads() == {("s", "d")}
    assert g.topo() == ["x", "fc", "d", "rec", "sum", "s", "out"]


def test_a_loop_without_a_delay_is_an_algebraic_loop():
    g = _loop()
    g.add("relay", Linear((4,), weight=np.eye(4)), ["s"])
    g.set_inputs("rec", ["relay"])
    g.remove("d")
    with pytest.raises(ValueError, match="recurrent loop without a delay"):
        g.schedule()


def test_delay_steps_must_be_positive():
    with pytest.raises(ValueError, match="steps >= 1"):
        Delay((2,), steps=0)


def test_reference_steps_the_loop_like_a_written_out_loop():
    g = _loop()
    x = (np.random.default_rng(0).random((12, 5, 3)) < 0.5).astype(np.float64)
    got = simulate(g, x).spikes["s"]
    v, s, want = np.zeros((5, 4)), np.zeros((5, 4)), []
    for t in range(12):
        v = v + x[t] @ np.full((3, 4), 0.6) + (0.5 * s + 0.1)   # rec's bias acts from t = 0
        s = (v >= 1.0).astype(np.float64)
        v = np.where(s > 0, 0.0, v)
        want.append(s)
    np.testing.assert_array_equal(got, np.stack(want).astype(np.uint8))


def test_feed_forward_delay_shifts_in_time():
    g = IRGraph("ff")
    g.add("x", Input((2,)))
    g.add("d", Delay((2,), steps=3), ["x"])
    g.add("out", Output((2,)), ["d"])
    x = np.random.default_rng(1).random((7, 2, 2))
    y = simulate(g, x).output
    np.testing.assert_array_equal(y[:3], 0.0)
    np.testing.assert_array_equal(y[3:], x[:4])


def test_sweeps_terminate_and_see_spikes_through_the_delay():
    g = _loop()
    assert spike_valued(g, "d")          # rec's SOPs are counted on spikes
    live = liveness(g)
    assert live.reaching["s"].all()      # the loop consumes s
    # a loop of sums with no neuron on it is not known to be spikes (and does not recurse forever)
    h = IRGraph("sums")
    h.add("x", Input((2,)))
    h.add("d", Delay((2,)))
    h.add("sum", Add((2,)), ["x", "d"])
    h.set_inputs("d", ["sum"])
    h.add("out", Output((2,)), ["sum"])
    assert not spike_valued(h, "sum")
    liveness(h)


def test_a_graph_with_a_loop_saves_and_loads(tmp_path):
    from snncompile.ir import load_ir, save_ir

    g = _loop()
    back = load_ir(save_ir(g, tmp_path / "loop.ir.npz"))
    assert back.topo() == g.topo() and back.inputs("d") == ["s"]
    x = (np.random.default_rng(2).random((6, 3, 3)) < 0.5).astype(np.float64)
    np.testing.assert_array_equal(simulate(back, x).spikes["s"], simulate(g, x).spikes["s"])


def test_per_element_delays_shift_each_element_and_save(tmp_path):
    from snncompile.ir import load_ir, save_ir

    g = IRGraph("ff")
    g.add("x", Input((2, 2)))
    g.add("d", Delay((2, 2), steps=np.array([[1, 2], [3, 1]])), ["x"])
    g.add("out", Output((2, 2)), ["d"])
    x = np.random.default_rng(1).random((6, 3, 2, 2))
    y = simulate(g, x).output
    for (i, j), k in np.ndenumerate(np.array([[1, 2], [3, 1]])):
        np.testing.assert_array_equal(y[:k, :, i, j], 0.0)
        np.testing.assert_array_equal(y[k:, :, i, j], x[: 6 - k, :, i, j])
    back = load_ir(save_ir(g, tmp_path / "d.ir.npz"))
    np.testing.assert_array_equal(back.node("d").steps, g.node("d").steps)
    assert Delay((2,), steps=np.array([3, 3])).steps == 3     # uniform arrays become one int
    with pytest.raises(ValueError, match="steps >= 1"):
        Delay((2,), steps=np.array([0, 2]))
