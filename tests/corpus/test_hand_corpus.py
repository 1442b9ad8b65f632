"""DIET-SNN-style inline membranes at CIFAR size (#23 item 4): found in the unrolled
forward(), compiled spike for spike (the spikes read where the source model's pools receive
them) with the same output, and its Conv/Linear MACs equal to hooks'."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from corpus.families import CIFAR
from corpus.hand import DietSNN
from corpus.tickets import images, prune_
from torch import nn

from snncompile.energy import estimate_energy
from snncompile.frontend import trace_model
from snncompile.ir.dynamics import PLIF
from snncompile.passes import run_passes
from snncompile.sim import run_torch, simulate


def _model(exact: bool) -> DietSNN:
    torch.manual_seed(0)
    model = DietSNN(timesteps=4, exact=exact)
    prune_(model)
    with torch.no_grad():   # the pruned layers still drive their neurons
        for m in model.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                m.weight.mul_(3.0)
    return model.double().eval()


@pytest.mark.parametrize("exact", [False, True], ids=["autograd-ge", "published-masked-zeros"])
def test_diet_snn_compiles_spike_for_spike_with_equal_macs(exact):
    """``exact``: DIET-SNN's published spike function, ``out = zeros_like(x); out[x > 0] = 1.0``."""
    model = _model(exact)
    tr = trace_model(model, CIFAR)
    assert tr.step_mode == "loop" and tr.graph.model_steps == 4
    neurons = [n for n in tr.graph.nx.nodes if isinstance(getattr(tr.graph.node(n), "dynamics", None), PLIF)]
    assert neurons == ["inline_neuron_0", "inline_neuron_1"]
    x = images(3, CIFAR, seed=3)
    seen: dict[int, list[np.ndarray]] = {2: [], 5: []}
    macs: dict[str, int] = {}
    hooks = [model.features[k].register_forward_pre_hook(
        lambda _m, a, k=k: seen[k].append(a[0].detach().numpy().copy())) for k in seen]
    for path, m in model.named_modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            fan_in = m.in_features if isinstance(m, nn.Linear) else m.weight[0].numel()
            hooks.append(m.register_forward_hook(
                lambda _m, _a, out, p=path, f=fan_in: macs.__setitem__(p, out[0].numel() * f)))
    with torch.no_grad():
        want = model(torch.as_tensor(x)).numpy()
    for h in hooks:
        h.remove()
    ref = simulate(tr.graph, np.broadcast_to(x[None], (4, *x.shape)))
    for k, name in zip(seen, neurons):
        spikes = np.stack(seen[k])
        assert 0.01 < spikes.mean() < 0.9, f"{name} is silent or saturated: the test would prove little"
        np.testing.assert_array_equal(ref.spikes[name], spikes, err_msg=name)
    got = ref.output.sum(0) if ref.output.ndim == 3 else ref.output
    np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-9)
    tor = run_torch(model, np.broadcast_to(x[None], (4, *x.shape)), tr.step_mode, list(tr.neuron_sources.values()),
                    tr.graph.output_time_reduced)   # the spikes as `--check` records them in the source model
    for name in neurons:
        assert tr.neuron_sources[name].startswith("DietSNN.forward (hand.py:")
        np.testing.assert_array_equal(tor.spikes[tr.neuron_sources[name]], ref.spikes[name], err_msg=name)
    graph, _ = run_passes(tr.graph, ["fold_batchnorm", "prune_synapses"])
    rows = [r for r in estimate_energy(graph, steps=4).to_dict()["layers"] if r["op"] in ("conv2d", "linear")]
    assert {r["source"]: r["macs"] for r in rows} == macs
