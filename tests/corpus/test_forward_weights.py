"""Weights computed in forward (issue #23 items 1 and 3): each family compiles as written, its
folded weights simulate spike for spike like PyTorch, its Conv/Linear MACs equal a count taken
from the functional calls PyTorch makes, binary layers are 1-bit and 8-bit ones integer."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from corpus.forward_weights import CIFAR, FAMILIES, build
from corpus.tickets import images
from equivalence import assert_same_spikes

from snncompile.compare import spike_agreement
from snncompile.energy import estimate_energy
from snncompile.frontend import trace_model
from snncompile.passes import DEFAULT, run_passes
from snncompile.sim import run_torch, simulate

T, N = 2, 2
_MODELS: dict[str, torch.nn.Module] = {}


def model_of(name: str) -> torch.nn.Module:
    if name not in _MODELS:
        _MODELS[name] = build(name, steps=T)
    return _MODELS[name]


def _x(n: int = N) -> np.ndarray:
    return np.broadcast_to(images(n, CIFAR, seed=7)[None], (T, n, *CIFAR)).copy()


def functional_macs(model: torch.nn.Module, x: np.ndarray) -> list[int]:
    """Per-sample, per-step MACs of every conv2d/linear call PyTorch makes (modules and
    functional calls alike), counted by wrapping torch.nn.functional."""
    seen: list[int] = []
    conv, lin = F.conv2d, F.linear

    def conv2d(inp, weight, *a, **k):
        out = conv(inp, weight, *a, **k)
        seen.append(out[0].numel() * weight[0].numel())
        return out

    def linear(inp, weight, *a, **k):
        out = lin(inp, weight, *a, **k)
        seen.append(out[0].numel() * weight.shape[1])
        return out

    F.conv2d, F.linear = conv2d, linear
    try:
        run_torch(model, x[:, :1], "s", [])
    finally:
        F.conv2d, F.linear = conv, lin
    per_step = len(seen) // x.shape[0]
    return sorted(seen[:per_step])


@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_compiles_as_written_and_matches_pytorch(name):
    model, x = model_of(name), _x()
    tr = trace_model(model, CIFAR)
    tor = run_torch(model, x, tr.step_mode, list(tr.neuron_sources.values()), tr.graph.output_time_reduced)
    ref = simulate(tr.graph, x)
    torch_spikes = {n: tor.spikes[p] for n, p in tr.neuron_sources.items()}
    assert len(torch_spikes) == 4
    assert_same_spikes(torch_spikes, ref.spikes, f"{name} reference vs PyTorch:")
    rates = {n: float(s.mean()) for n, s in torch_spikes.items()}
    assert min(rates.values()) > 0.005, f"a silent layer proves little: {rates}"
    optimized, _ = run_passes(tr.graph)   # dead_neurons drops neurons no synapse reads: compare the kept
    after = simulate(optimized, x)
    common = {n: s for n, s in torch_spikes.items() if n in after.spikes}
    keep = {n: optimized.node(n).alive for n in common if optimized.node(n).alive is not None}
    agree, per_layer = spike_agreement(common, after.spikes, keep)
    assert agree == 1.0, f"{name} after the passes: {per_layer}"


@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_macs_equal_the_calls_pytorch_makes_and_bits_are_reported(name):
    model, x, fam = model_of(name), _x(1), FAMILIES[name]
    # every pass but dead_neurons: removed neurons charge nothing (issue #26), hooks see the dense layer
    passes = [p for p in DEFAULT if p != "dead_neurons"]
    graph, _ = run_passes(trace_model(model, CIFAR).graph, passes)
    rows = [r for r in estimate_energy(graph, steps=T).to_dict()["layers"] if r["op"] in ("conv2d", "linear")]
    assert sorted(r["macs"] for r in rows) == functional_macs(model, x)
    assert {r["source"] for r in rows} == {"conv1", "conv2", "conv3", "fc"}
    bits = {r["source"]: r["weight_bits"] for r in rows}
    for source, b in bits.items():
        want = 1 if source in fam.binary else 8 if source in fam.quantized else 32
        assert b == want, f"{source}: {b}-bit weights, expected {want}"
    assert {r["source"] for r in rows if r["binary_weights"]} == set(fam.binary)


def test_pruned_synapses_are_the_ones_forward_removes():
    """The learned mask's negative scores and the mask buffers remove exactly those synapses."""
    model = model_of("learned-mask")
    graph = trace_model(model, CIFAR).graph
    conv = next(n for _, n in graph.items() if n.source == "conv2")
    keep = (model.conv2.mask_value > 0).numpy()
    np.testing.assert_array_equal(conv.weight != 0, keep & (model.conv2.weight.detach().numpy() != 0))
    assert 0.05 < keep.mean() < 0.15


@pytest.mark.lava
@pytest.mark.parametrize("name", ["ws-spikingjelly", "binary-sign"])
def test_lava_spike_for_spike(name):
    from equivalence import assert_compiled_matches, run_all

    from backends.lava import run_lava
    from snncompile.lower import lower
    from snncompile.netlist import OUTPUT

    x = _x(2)
    runs = run_all(model_of(name), x, CIFAR)
    graph, _ = run_passes(runs.trace.graph)
    net = lower(graph)
    run = run_lava(net, x, timeout_s=600, emit="fused")
    out = dict(run.spikes)
    if run.output is not None:
        out[OUTPUT] = run.output
    assert_compiled_matches(runs, graph, net, x, out)
