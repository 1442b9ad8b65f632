"""IRGraph walks."""

from snncompile.ir import Add, Input, IRGraph, Neuron, Output
from snncompile.ir.dynamics import IF


def test_items_releasing_drops_a_value_after_its_last_reader():
    """input feeds a neuron and the residual add: it must survive until the add has read it."""
    g = IRGraph()
    g.add("input", Input((3,)))
    g.add("n", Neuron((3,), dynamics=IF()), ["input"])
    g.add("add", Add((3,)), ["input", "n"])
    g.add("twice", Add((3,)), ["add", "add"])           # one node reading the same value twice
    g.add("output", Output((3,)), ["twice"])
    values: dict[str, int] = {}
    held = []
    for name, _ in g.items_releasing(values):
        assert all(s in values for s in g.inputs(name)), name
        values[name] = 1
        held.append(sorted(values))
    assert held == [["input"], ["input", "n"], ["add", "input", "n"], ["add", "twice"], ["output", "twice"]]
    assert values == {"output": 1}
