"""Our SOPs against spikingjelly 2.0's op_counter SynOpCounter, on the same model and input.

On dense weights both count, per input spike, the weights it meets (padding excluded), so
they must agree layer by layer. On a pruned layer spikingjelly counts the dense fan-out
(it never sees the mask); ours counts the stored synapses only.
"""

import numpy as np
import pytest
import torch
from spikingjelly.activation_based import functional, neuron
from spikingjelly.activation_based.op_counter import DispatchCounterMode, SynOpCounter
from torch import nn
from torch.nn.utils import prune

from snncompile.energy import estimate_energy
from snncompile.frontend import trace_model
from snncompile.sim import simulate


def sj_synops(model: nn.Module, x: np.ndarray) -> dict[str, int]:
    """SynOps per module path, running ``model`` step by step on x [T, B, ...] in float64."""
    counter = SynOpCounter()
    functional.reset_net(model)
    with torch.no_grad(), DispatchCounterMode([counter]):
        for t in range(x.shape[0]):
            model(torch.as_tensor(x[t]))
    functional.reset_net(model)
    root = type(model).__name__
    return {scope[len(root) + 1:]: sum(c.values()) for scope, c in counter.get_counts().items()
            if scope.startswith(root + ".")}


def dense_net() -> nn.Sequential:
    torch.manual_seed(5)
    m = nn.Sequential(
        nn.Conv2d(2, 6, 3, padding=1), nn.BatchNorm2d(6), neuron.LIFNode(tau=2.0), nn.MaxPool2d(2),
        nn.Conv2d(6, 8, 3, stride=2, padding=1), neuron.IFNode(),
        nn.Conv2d(8, 8, 3, padding=2, dilation=2, groups=2, bias=False), neuron.IFNode(v_reset=None),
        nn.Flatten(), nn.Linear(32, 10), neuron.IFNode(), nn.Linear(10, 4, bias=False), neuron.IFNode())
    with torch.no_grad():
        for mod in m.modules():
            if isinstance(mod, (nn.Conv2d, nn.Linear)):
                mod.weight.mul_(6.0)
    return m.double().eval()


def test_sops_equal_spikingjelly_synops_on_a_dense_model():
    model = dense_net()
    T, B = 6, 4
    x = np.random.default_rng(0).random((T, B, 2, 8, 8))
    g = trace_model(model, (2, 8, 8)).graph
    res = simulate(g, x, keep_values=True)
    energy = estimate_energy(g, steps=T, values=res.values).to_dict()
    theirs = sj_synops(model, x)
    compared = 0
    for row in energy["layers"]:
        if row["op"] == "neuron":
            continue
        if row["input"] == "real":   # spikingjelly counts no SynOps on real-valued input
            assert theirs[row["source"]] == 0 and row["sops"] is None
            continue
        assert row["sops"] * B == pytest.approx(theirs[row["source"]], abs=1e-6), row["name"]
        assert theirs[row["source"]] > 0
        compared += 1
    assert compared == 4
    assert energy["variants"]["snn"]["sops"] * B == pytest.approx(sum(theirs.values()), abs=1e-6)


def pruned_linear(seed: int = 0) -> nn.Sequential:
    """IF (spikes in = spikes out for 0/1 input) → Linear 100→50 with 50 % of weights pruned → IF."""
    torch.manual_seed(seed)
    fc = nn.Linear(100, 50, bias=False)
    with torch.no_grad():   # a pruned weight computed with grad cannot be deep-copied for tracing
        prune.random_unstructured(fc, "weight", amount=0.5)
    return nn.Sequential(neuron.IFNode(), fc, neuron.IFNode()).double().eval()


def test_pruned_layer_exact_count_where_spikingjelly_counts_dense():
    model = pruned_linear()
    T, B = 5, 3
    x = (np.random.default_rng(1).random((T, B, 100)) < 0.1).astype(np.float64)
    g = trace_model(model, (100,)).graph
    res = simulate(g, x, keep_values=True)
    energy = estimate_energy(g, steps=T, values=res.values).to_dict()
    (row,) = [r for r in energy["layers"] if r["op"] == "linear"]

    mask = model[1].weight_mask.numpy()
    brute = 0                                   # every (step, sample, input spike): its kept weights
    for t in range(T):
        for b in range(B):
            for j in np.flatnonzero(x[t, b]):
                brute += int(sum(1 for i in range(50) if mask[i, j] != 0))
    n_spikes = int(x.sum())
    assert 100 < n_spikes < 200 and 0.45 < mask.mean() < 0.55
    assert row["sops"] * B == brute                                  # exact, per sample × B
    assert row["synapses"] == int(mask.sum()) < row["synapses_dense"] == 5000
    theirs = sj_synops(model, x)["1"]
    assert theirs == n_spikes * 50                                   # dense fan-out
    assert theirs != brute
    assert row["firing_rate_in"] == pytest.approx(x.mean())
