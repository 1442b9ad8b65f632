"""The lowering at CIFAR size (32 px, 128-256 channels): kernels stay kernels, counts are
exact, and the netlist simulates spike for spike like the reference simulator."""

from __future__ import annotations

import numpy as np
import torch
from spikingjelly.activation_based import neuron
from torch import nn

from snncompile.frontend import trace_model
from snncompile.ir.counting import layer_synapses
from snncompile.lower import lower
from snncompile.passes import run_passes
from snncompile.sim import simulate
from snncompile.sim.netlist import simulate_netlist


def cifar_vgg() -> nn.Module:
    torch.manual_seed(3)
    layers: list[nn.Module] = []
    cin = 3
    for cout, stride, pool in ((128, 1, False), (128, 2, True), (256, 1, True)):
        layers += [nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), neuron.LIFNode(v_threshold=0.5)]
        if pool:
            layers.append(nn.MaxPool2d(2, 2))
        cin = cout
    layers += [nn.Flatten(), nn.Linear(256 * 4 * 4, 10)]
    model = nn.Sequential(*layers).eval()
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                m.weight.mul_(torch.rand_like(m.weight) < 0.1)      # a 90 % ticket
                m.weight.mul_(12.0)
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-0.1, 0.1)
                m.running_var.uniform_(0.5, 1.5)
    return model


def test_cifar_ticket_lowers_without_unrolling_and_counts_exactly():
    g = trace_model(cifar_vgg(), (3, 32, 32)).graph
    g, _ = run_passes(g, copy=False)
    net = lower(g)
    assert all(p.explicit is None for p in net.projections)  # nothing unrolled by lowering
    convs = [p for p in net.projections if p.kernel is not None]
    assert len(convs) >= 3 and all(p.kernel.shape[0] >= 128 for p in convs[:3])
    for proj in net.projections:  # closed form == the unrolled projection, one at a time
        assert proj.synapses == proj.matrix().nnz, proj.layers
    ir_counts = layer_synapses(g)
    for proj in net.projections:
        if len(proj.layers) == 1 and len(proj.chains) == 1:
            assert proj.synapses == ir_counts[proj.layers[0]].synapses


def test_cifar_ticket_netlist_matches_reference_spike_for_spike():
    g = trace_model(cifar_vgg(), (3, 32, 32)).graph
    g, _ = run_passes(g, copy=False)
    net = lower(g)
    x = np.random.default_rng(1).random((4, 3, 3, 32, 32)) * 2
    ref = simulate(g, x)
    out = simulate_netlist(net, x)
    for name, pop in net.populations.items():
        if name in ref.spikes:
            got = pop.expand(out[name]).reshape(ref.spikes[name].shape)
            assert np.array_equal(got, ref.spikes[name]), name
            assert ref.spikes[name].any(), f"{name} never fires: the test would prove nothing"


def test_spikformer_head_and_residual_stream_count_in_closed_form():
    """Spikformer-2-128 at 32 px: the head's token mean → Linear and the Linear layers fed
    by the residual stream are counted without unrolling, equal to the unrolled nnz."""
    from tests.energy.spikformer import Spikformer

    torch.manual_seed(0)
    g = trace_model(Spikformer(2, 128, 10, imagenet=False, heads=4).eval(), (3, 32, 32)).graph
    g, _ = run_passes(g, copy=False)
    net = lower(g)
    assert all(p.explicit is None for p in net.projections)
    head = [p for p in net.projections if any(n.op == "reduce" for c in p.chains for n in c.nodes)]
    assert head and all(p.chains[0].unique_paths for p in head)
    for proj in net.projections:
        assert proj.synapses == proj.matrix().nnz, (proj.src, proj.dst)
