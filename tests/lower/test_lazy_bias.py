"""``lower(lazy_bias=True)``: every population's bias computed on its first read gives the
netlist the eager lowering gives, bit for bit; an energy estimate (which reads no bias)
computes none."""

from __future__ import annotations

import importlib

import numpy as np
import pytest
import torch
from nets import cifar_ticket, spikformer_net

from snncompile import api, stages
from snncompile.energy import estimate_energy
from snncompile.frontend import trace_model
from snncompile.ir import Neuron
from snncompile.lower import lower
from snncompile.netlist import BiasMap, bias_map
from snncompile.passes import run_passes
from tests.energy.zoo import SpikingResNet18
from tests.interchange.test_nir_recurrent import DT, _linear_loop_graph
from tests.lower.test_compact import _randomize_bn

lower_module = importlib.import_module("snncompile.lower.lower")   # (the package exports lower() under that name)


def _bits(a: np.ndarray | None) -> bytes | None:
    return None if a is None else np.ascontiguousarray(a, dtype=np.float64).tobytes()


def assert_same_netlist(eager, lazy) -> None:
    assert list(eager.populations) == list(lazy.populations)
    for name, a in eager.populations.items():
        b = lazy.populations[name]
        assert type(a) is type(b) and a.size == b.size and a.depth == b.depth, name
        assert _bits(b.bias) == _bits(a.bias), name          # the first read computes it
        assert getattr(a, "relay", None) == getattr(b, "relay", None), name
    assert [(p.src, p.dst, p.synapses, p.impl, p.delay) for p in eager.projections] == \
        [(p.src, p.dst, p.synapses, p.impl, p.delay) for p in lazy.projections]
    assert (eager.output_kind, eager.output_pop) == (lazy.output_kind, lazy.output_pop)
    assert _bits(eager.output_bias) == _bits(lazy.output_bias)


def _resnet(passes: bool):
    torch.manual_seed(0)
    g = trace_model(_randomize_bn(SpikingResNet18(imagenet=False)), (3, 32, 32)).graph
    return run_passes(g)[0] if passes else g


@pytest.mark.parametrize("make", [
    pytest.param(lambda: _resnet(False), id="resnet18-as-written"),
    pytest.param(lambda: _resnet(True), id="resnet18-folded"),
    pytest.param(lambda: run_passes(trace_model(cifar_ticket(seed=2), (3, 32, 32)).graph)[0], id="pruned-ticket"),
    pytest.param(lambda: trace_model(spikformer_net(seed=1), (1, 8, 8)).graph, id="spikformer"),
    pytest.param(lambda: run_passes(trace_model(spikformer_net(seed=1), (1, 8, 8)).graph)[0],
                 id="spikformer-masked-patches"),
])
def test_a_lazy_bias_is_the_eager_one(make):
    graph = make()
    assert_same_netlist(lower(graph), lower(graph, lazy_bias=True))


def test_a_loop_fed_through_a_delay(tmp_path):
    """A delay population's drive (fed once its source is lowered) and a real-valued loop."""
    path, _ = _linear_loop_graph(tmp_path)
    graph = stages.optimize(api.trace(path, nir_dt=DT).graph).graph
    assert_same_netlist(lower(graph), lower(graph, lazy_bias=True))


def test_a_removed_neurons_bias_stays_lazy_and_keeps_its_neurons():
    """The dead-neuron pass's kept neurons select from the map once it is computed."""
    graph = run_passes(trace_model(spikformer_net(seed=1), (1, 8, 8)).graph)[0]
    lazy = lower(graph, lazy_bias=True)
    shrunk = [p for p in lazy.populations.values() if p.index is not None and bias_map(p) is not None]
    assert shrunk, "the masked patches should remove neurons"
    assert all(callable(bias_map(p).source) for p in shrunk)   # nothing computed yet
    assert_same_netlist(lower(graph), lazy)


def _after_last_neurons(graph) -> set[int]:
    """The nodes the output reads without a population between (its own bias chain)."""
    out, todo = set(), list(graph.inputs(next(n for n in graph.topo() if graph.node(n).op == "output")))
    while todo:
        name = todo.pop()
        node = graph.node(name)
        if isinstance(node, Neuron) or id(node) in out:
            continue
        out.add(id(node))
        todo += graph.inputs(name)
    return out


def test_an_estimate_computes_no_population_bias(monkeypatch):
    graph = _resnet(False)
    made = []
    real = lower_module._affine
    monkeypatch.setattr(lower_module, "_affine", lambda node, b: made.append(node) or real(node, b))
    estimate_energy(graph, steps=4, firing_rates={"*": 0.1})
    assert made and {id(n) for n in made} <= _after_last_neurons(graph)   # the output's values only
    made.clear()
    lower(graph)   # the eager lowering steps every bias map
    assert len(made) > 20


def test_a_bias_map_source_is_read_once():
    calls = []
    m = BiasMap(lambda: calls.append(1) or np.arange(3.0), (3,))
    kept = m.kept(np.array([0, 2]))
    assert np.array_equal(kept.full(), [0.0, 2.0]) and np.array_equal(m.full(), [0.0, 1.0, 2.0])
    assert calls == [1]
