"""Synapse, MAC and SOP counts against brute force over the explicit connection matrices."""

import numpy as np
import pytest
import torch
from nets import conv_net
from spikingjelly.activation_based import layer, neuron
from torch import nn
from torch.nn.utils import prune

from snncompile.energy import dynamic_counts, measured_firing_rates, static_counts
from snncompile.energy.counts import analytic_counts
from snncompile.frontend import trace_model
from snncompile.ir import Conv2d, Linear
from snncompile.netlist.ops import conv2d_matrix
from snncompile.netlist.ops import linear_matrix as _linear_matrix
from snncompile.sim import simulate


def pruned_net() -> nn.Module:
    torch.manual_seed(0)
    m = nn.Sequential(layer.Conv2d(2, 6, 3, padding=1, stride=2), neuron.IFNode(),
                      layer.Conv2d(6, 4, 3, padding=2, dilation=2), neuron.LIFNode(tau=2.0),
                      layer.Flatten(), layer.Linear(4 * 4 * 4, 5), neuron.IFNode()).eval()
    g = torch.Generator().manual_seed(1)
    for mod in m.modules():
        if isinstance(mod, (nn.Conv2d, nn.Linear)):
            # torch.nn.utils.prune's weight_orig + weight_mask: the tracer keeps the mask.
            # (no_grad: a pruned weight computed with grad is not deep-copyable for tracing)
            with torch.no_grad():
                mod.weight.mul_(8)
                prune.custom_from_mask(mod, "weight", torch.rand(mod.weight.shape, generator=g) > 0.7)
    return m


def _matrix(graph, name):
    node = graph.node(name)
    in_shape = graph.node(graph.inputs(name)[0]).shape
    return conv2d_matrix(node, in_shape) if isinstance(node, Conv2d) else _linear_matrix(node, in_shape)


@pytest.mark.parametrize("make,shape", [(pruned_net, (2, 8, 8)), (lambda: conv_net("s"), (1, 8, 8))])
def test_synapses_equal_matrix_nonzeros(make, shape):
    g = trace_model(make(), shape).graph
    rows = static_counts(g)
    assert rows
    for r in rows:
        m = _matrix(g, r.name)
        assert r.synapses == m.nnz
        dense_node = g.node(r.name)
        saved = dense_node.mask
        dense_node.mask = np.ones_like(saved)
        dense_node.weight = np.where(saved, dense_node.weight, 1.0)
        assert r.synapses_dense == _matrix(g, r.name).nnz
        dense_node.mask = saved


def test_sops_equal_spikes_times_nonzero_fanout():
    g = trace_model(pruned_net(), (2, 8, 8)).graph
    x = np.random.default_rng(0).random((5, 6, 2, 8, 8))
    res = simulate(g, x, keep_values=True)
    rows = static_counts(g)
    dynamic_counts(g, rows, res.values)
    first, *spiking = rows
    # real-valued input: MACs with the kept (nonzero) weights every step, padding included
    nnz = int(g.node(first.name).mask.sum())
    assert nnz == int(pruned_net()[0].weight_mask.sum()) < g.node(first.name).mask.size
    assert first.macs_sparse == nnz * 4 * 4 < first.macs
    assert not first.input_spiking and first.snn_macs == first.macs_sparse * 5 and first.sops is None
    for r in spiking:
        assert r.input_spiking
        m = _matrix(g, r.name)
        fanout = np.diff(m.tocsc().indptr)          # nonzeros per input column
        s = res.values[g.inputs(r.name)[0]].reshape(5, 6, -1)
        brute = float((s * fanout).sum()) / 6
        assert r.sops == pytest.approx(brute, rel=1e-12)
        assert brute > 0


def test_macs_include_padding_like_published_tables():
    g = trace_model(pruned_net(), (2, 8, 8)).graph
    rows = {r.name: r for r in static_counts(g)}
    c0 = rows[g.of_type(Conv2d)[0]]
    assert c0.macs == 6 * 4 * 4 * 2 * 9           # Cout·Hout·Wout·Cin·k²
    assert c0.synapses_dense < c0.macs              # padding taps are not synapses
    fc = rows[g.of_type(Linear)[0]]
    assert fc.macs == fc.synapses_dense == 64 * 5


def test_analytic_sops_are_rate_times_steps_times_matrix_nonzeros():
    g = trace_model(pruned_net(), (2, 8, 8)).graph
    rows = static_counts(g)
    rates = {r.name: 0.1 * (i + 1) for i, r in enumerate(rows) if r.input_spiking}
    analytic_counts(g, rows, rates, 7)
    for r in rows:
        if r.input_spiking:
            assert r.sops == pytest.approx(rates[r.name] * 7 * _matrix(g, r.name).nnz, rel=1e-12)
            assert r.input_spikes == pytest.approx(rates[r.name] * 7 * r.in_size)
        else:
            assert r.sops is None and r.snn_macs == r.macs_sparse * 7


def test_analytic_with_measured_rates_equals_exact_when_fan_out_is_uniform():
    # Linear layers: every input has the same nonzero fan-out only if the mask is dense;
    # conv layers differ at the borders (padding), so only the Linear layer must match.
    g = trace_model(pruned_net(), (2, 8, 8)).graph
    x = np.random.default_rng(3).random((4, 3, 2, 8, 8))
    res = simulate(g, x, keep_values=True)
    exact = static_counts(g)
    dynamic_counts(g, exact, res.values)
    analytic = static_counts(g)
    analytic_counts(g, analytic, measured_firing_rates(g, res.values), 4)
    for e, a in zip(exact, analytic):
        assert e.firing_rate_in == a.firing_rate_in
        assert e.input_spikes == pytest.approx(a.input_spikes, rel=1e-12) if e.input_spiking else True
        if e.input_spiking and e.op == "linear":
            fo = g.node(e.name).mask.sum(axis=0)
            if (fo == fo[0]).all():
                assert e.sops == pytest.approx(a.sops, rel=1e-12)


def test_static_facts_of_a_pruned_conv():
    g = trace_model(pruned_net(), (2, 8, 8)).graph
    row = static_counts(g)[1]
    node = g.node(row.name)
    assert (row.weights, row.rows, row.fan_in) == (4 * 6 * 9, 4, 6 * 9)
    assert row.weights_nnz == int(node.mask.sum()) and row.kernel_taps == 9
    assert row.bias == 4 and row.weight_bits == 32 and not row.binary_weights
