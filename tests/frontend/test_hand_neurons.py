"""Hand-written neurons (#23 item 4): a stateful module of the user's, or a membrane
recurrence written inline in forward(), identified as IF/LIF/PLIF by what it computes
(verified on probe inputs), compiled spike for spike; anything else refused by name with
the equation found. Neuron recognition is a registry of families."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch
from torch import nn

from snncompile.errors import SnnCompileError
from snncompile.frontend import trace_model
from snncompile.frontend.ops import registry
from snncompile.ir.dynamics import IF, PLIF
from snncompile.sim import run_torch, simulate


class SpikeFn(torch.autograd.Function):
    """A surrogate-gradient spike: Heaviside forward."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return (x >= 0).float()

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return g * (x.abs() < 0.5).float()


class HandLIF(nn.Module):
    """Membrane kept on the module between calls, hard reset."""

    def __init__(self, beta: float = 0.9, threshold: float = 1.0) -> None:
        super().__init__()
        self.beta, self.threshold, self.mem = beta, threshold, None

    def forward(self, x):
        if self.mem is None:
            self.mem = torch.zeros_like(x)
        self.mem = self.beta * self.mem + x
        spk = SpikeFn.apply(self.mem - self.threshold)
        self.mem = self.mem * (1 - spk)
        return spk


class HandIF(nn.Module):
    """No leak, soft reset, a per-channel learnable threshold, spike from a comparison."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.vth = nn.Parameter(torch.linspace(0.5, 1.5, channels))
        self.v = 0.0

    def forward(self, x):
        self.v = self.v + x
        spk = (self.v >= self.vth).float()
        self.v = self.v - spk * self.vth
        return spk


class Squared(nn.Module):
    """Not an IF/LIF/PLIF neuron: the membrane is squared each step."""

    def __init__(self) -> None:
        super().__init__()
        self.threshold, self.mem = 1.0, None

    def forward(self, x):
        if self.mem is None:
            self.mem = torch.zeros_like(x)
        self.mem = 0.5 * self.mem * self.mem + x
        spk = (self.mem >= self.threshold).float()
        self.mem = self.mem * (1 - spk)
        return spk


class Net(nn.Module):
    def __init__(self, n1: nn.Module, n2: nn.Module, width: int = 128) -> None:
        super().__init__()
        self.fc1, self.n1, self.fc2, self.n2 = nn.Linear(20, width), n1, nn.Linear(width, 10), n2

    def forward(self, x):
        return self.n2(self.fc2(self.n1(self.fc1(x))))


def _same_spikes(model: nn.Module, shape: tuple[int, ...], T: int = 10) -> dict[str, float]:
    tr = trace_model(model, shape)
    x = np.random.default_rng(0).uniform(0, 1, (T, 4, *shape))
    tor = run_torch(model, x, tr.step_mode, list(tr.neuron_sources.values()), tr.graph.output_time_reduced)
    ref = simulate(tr.graph, x)
    rates = {}
    for n, p in tr.neuron_sources.items():
        np.testing.assert_array_equal(ref.spikes[n], tor.spikes[p], err_msg=n)
        rates[n] = float(tor.spikes[p].mean())
    return rates


def test_stateful_hand_lif_is_identified_and_matches_spike_for_spike():
    torch.manual_seed(0)
    model = Net(HandLIF(), HandLIF(0.8, 0.5))
    tr = trace_model(model, (20,))
    dyn = tr.graph.node("n1").dynamics
    assert isinstance(dyn, PLIF) and dyn.v_reset == 0.0 and dyn.v_threshold == 1.0
    assert abs(dyn.decay - 0.1) < 1e-9 and not dyn.strict
    rates = _same_spikes(model, (20,))
    assert 0 < min(rates.values()) and max(rates.values()) < 1


def test_hand_if_with_per_channel_threshold_and_soft_reset():
    torch.manual_seed(1)
    model = Net(HandIF(128), HandIF(10))
    with torch.no_grad():
        model.fc2.weight.abs_().mul_(0.5)   # the second layer fires too
    tr = trace_model(model, (20,))
    dyn = tr.graph.node("n1").dynamics
    assert isinstance(dyn, IF) and dyn.v_reset is None
    np.testing.assert_allclose(np.asarray(dyn.v_threshold), np.linspace(0.5, 1.5, 128), rtol=1e-6)
    rates = _same_spikes(model, (20,))
    assert min(rates.values()) > 0


def test_a_hand_module_that_is_no_neuron_is_refused_with_its_equation():
    with pytest.raises(SnnCompileError, match=r"(?s)`n1` is a hand-written module .*Squared.*match no IF/LIF/PLIF"
                                              r".*forward computes: .*mul"):
        trace_model(Net(Squared(), HandLIF()), (20,))


class MaskedSpike(torch.autograd.Function):
    """DIET-SNN's published spike: a constant written into zeros where the membrane is over."""

    strict = True

    @staticmethod
    def forward(ctx, x):
        out = torch.zeros_like(x)
        if MaskedSpike.strict:
            out[x > 0] = 1.0
        else:
            out[x >= 0] = 1.0
        return out

    @staticmethod
    def backward(ctx, g):
        return g


class MaskedLIF(HandLIF):
    """HandLIF whose spike is :class:`MaskedSpike`."""

    def forward(self, x):
        if self.mem is None:
            self.mem = torch.zeros_like(x)
        self.mem = self.beta * self.mem + x
        spk = MaskedSpike.apply(self.mem - self.threshold)
        self.mem = self.mem * (1 - spk)
        return spk


@pytest.mark.parametrize("strict", [True, False], ids=["gt", "ge"])
def test_masked_constant_assignment_into_zeros_is_a_heaviside(strict, monkeypatch):
    """``out = zeros_like(x); out[x > 0] = 1.0`` is ``where(x > 0, 1, 0)``: the `>` (strict)
    and `>=` forms are identified and compile spike for spike."""
    monkeypatch.setattr(MaskedSpike, "strict", strict)
    torch.manual_seed(0)
    model = Net(MaskedLIF(), MaskedLIF(0.8, 0.5))
    dyn = trace_model(model, (20,)).graph.node("n1").dynamics
    assert isinstance(dyn, PLIF) and dyn.strict is strict and dyn.v_reset == 0.0
    rates = _same_spikes(model, (20,))
    assert 0 < min(rates.values()) and max(rates.values()) < 1


class WriteIntoInput(HandLIF):
    """``out[x > 0] = 1.0`` into a tensor that is not fresh zeros: a write, still refused."""

    def forward(self, x):
        out = x.clone()
        out[x > 0] = 1.0
        return out


def test_masked_assignment_into_a_computed_tensor_is_still_refused():
    with pytest.raises(SnnCompileError, match=r"assigns into a tensor computed from the input"):
        trace_model(Net(WriteIntoInput(), HandLIF()), (20,))


class DietSNN(nn.Module):
    """DIET-SNN style: membranes in a dict over a time loop, learnable per-layer threshold and
    leak, soft reset, ``nn.ReLU`` placeholders declared (from the ANN) but never applied."""

    def __init__(self, T: int = 6) -> None:
        super().__init__()
        self.T = T
        self.features = nn.Sequential(nn.Conv2d(3, 128, 3, padding=1, bias=False), nn.ReLU(inplace=True),
                                      nn.Conv2d(128, 32, 3, padding=1, bias=False), nn.ReLU(inplace=True))
        self.classifier = nn.Linear(32 * 8 * 8, 10, bias=False)
        self.threshold = nn.ParameterDict({f"t{k}": nn.Parameter(torch.tensor(0.4 + 0.2 * k)) for k in (0, 2)})
        self.leak = nn.ParameterDict({f"l{k}": nn.Parameter(torch.tensor(0.95 - 0.05 * k)) for k in (0, 2)})

    def forward(self, x):
        mem = {k: torch.zeros(x.shape[0], c.out_channels, 8, 8) for k, c in enumerate(self.features)
               if isinstance(c, nn.Conv2d)}
        acc = 0
        for _ in range(self.T):
            out = x
            for k, layer in enumerate(self.features):
                if isinstance(layer, nn.Conv2d):
                    mem[k] = self.leak[f"l{k}"] * mem[k] + layer(out)
                    mem_thr = mem[k] / self.threshold[f"t{k}"] - 1.0
                    out = SpikeFn.apply(mem_thr)
                    mem[k] = mem[k] - self.threshold[f"t{k}"] * (mem_thr >= 0).float()
            acc = acc + self.classifier(out.view(out.size(0), -1))
        return acc


def test_inline_dict_of_membranes_is_found_and_the_output_is_exact():
    torch.manual_seed(2)
    model = DietSNN()
    tr = trace_model(model, (3, 8, 8))
    dyns = [tr.graph.node(n).dynamics for n in tr.graph.nx.nodes if hasattr(tr.graph.node(n), "dynamics")]
    assert [type(d) for d in dyns] == [PLIF, PLIF] and all(d.v_reset is None for d in dyns)
    np.testing.assert_allclose([float(d.v_threshold) for d in dyns], [0.4, 0.8], rtol=1e-6)
    x = np.random.default_rng(0).uniform(0, 1, (4, 3, 8, 8))
    ref = simulate(tr.graph, np.broadcast_to(x[None], (model.T, *x.shape)))
    with torch.no_grad():
        want = model(torch.as_tensor(x, dtype=torch.float32)).double().numpy()
    got = ref.output.sum(0) if ref.output.ndim == 3 else ref.output
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)
    assert np.abs(want).max() > 0


def test_inline_neurons_name_their_source_and_are_observed_where_their_spikes_go():
    """An inline neuron's source is the forward() it is written in (file:line) and the
    parameters it reads; its spikes are recorded in the source model as the input of the
    layer they are passed to (the second's go to ``.view``: unobservable, left out)."""
    torch.manual_seed(2)
    model = DietSNN(T=3)
    tr = trace_model(model, (3, 8, 8))
    first, second = (tr.neuron_sources[n] for n in ("inline_neuron_0", "inline_neuron_1"))
    line = DietSNN.forward.__code__.co_firstlineno
    site = re.fullmatch(r"DietSNN\.forward \(test_hand_neurons\.py:(\d+)\): leak\.l0, threshold\.t0", first)
    assert site and line < int(site[1]) < line + 15, first
    assert second.endswith("leak.l2, threshold.t2") and tr.graph.node("inline_neuron_0").source == first
    assert (first.module, second.module) == ("features.2", None)
    x = np.random.default_rng(1).uniform(0, 1, (2, 3, 8, 8))
    xs = np.broadcast_to(x[None], (3, *x.shape))
    tor = run_torch(model, xs, tr.step_mode, list(tr.neuron_sources.values()), tr.graph.output_time_reduced)
    assert set(tor.spikes) == {first}
    spikes = simulate(tr.graph, xs).spikes["inline_neuron_0"]
    assert 0 < spikes.mean() < 1
    np.testing.assert_array_equal(tor.spikes[first], spikes)


def test_unused_relu_placeholders_are_not_the_diagnosis():
    class OnlyDeclared(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc, self.relu = nn.Linear(4, 4), nn.ReLU()

        def forward(self, x):
            return self.fc(x)

    with pytest.raises(SnnCompileError) as err:
        trace_model(OnlyDeclared(), (4,))
    assert "ReLU" not in err.value.message and "compares no membrane" in err.value.message

    class Applied(OnlyDeclared):
        def forward(self, x):
            return self.relu(self.fc(x))

    with pytest.raises(SnnCompileError, match=r"non-spiking activations `relu` \(ReLU\)"):
        trace_model(Applied(), (4,))


def test_neuron_families_are_a_registry():
    names = [f.name for f in registry.families()]
    assert {"spikingjelly", "snntorch", "hand-written", "inline"} <= set(names)
    assert registry.family_of(HandLIF()).name == "hand-written"
    assert registry.family_of(nn.Linear(2, 2)) is None and registry.family_of(nn.ReLU()) is None
    with pytest.raises(ValueError, match="two neuron families named snntorch"):
        registry.neuron_family("snntorch", lambda m: False)(lambda cx, m, path, src, shape: src)


def test_a_family_decided_by_class_is_remembered_by_class_and_one_decided_by_module_is_not():
    """family_of remembers what the class alone decides (a library's layers and neurons:
    asked ~3 times per module by a trace); a user's stateful class is asked every time, as
    its modules may differ (weights make it a layer, not a neuron)."""
    from spikingjelly.activation_based import neuron

    for m in (nn.Conv2d(2, 4, 3), nn.BatchNorm2d(4), neuron.IFNode(), neuron.LIFNode(), nn.ReLU()):
        want = next((f for f in registry.families() if f.claims(m)), None)
        assert registry.family_of(m) is want and registry.family_of(m) is want   # the second from memory
        assert type(m) in registry._BY_CLASS
    plain, weighted = HandLIF(), HandLIF()
    weighted.w = nn.Parameter(torch.ones(3, 3))   # a 2-D parameter: a layer with state, not a neuron
    assert registry.family_of(plain).name == "hand-written" and registry.family_of(weighted) is None
    assert HandLIF not in registry._BY_CLASS
