"""Tracing models as people write them: Python on shapes, time loops inside forward(),
Sequential slices, chunk/cat, adaptive pooling, snnTorch and legacy spikingjelly neurons,
and a clear message for what cannot compile (data-dependent selection, value branches,
random encoding, per-step differences)."""

from __future__ import annotations

import sys
import textwrap

import numpy as np
import pytest
import torch
from equivalence import assert_same_spikes
from spikingjelly.activation_based import functional, layer, neuron
from torch import nn

from snncompile.api import compile as compile_model
from snncompile.errors import EXIT_UNSUPPORTED, EXIT_USAGE, SnnCompileError
from snncompile.frontend import trace_model
from snncompile.ir import AdaptiveAvgPool2d, Concat, Delay, Neuron, Slice
from snncompile.ir.dynamics import IF, LIF, CubaLIF
from snncompile.lower import lower
from snncompile.sim import run_torch, simulate


def same_as_torch(model: nn.Module, shape: tuple[int, ...], T: int = 3, n: int = 5, seed: int = 0,
                  scale: float = 1.0):
    model = model.double().eval()
    tr = trace_model(model, shape)
    steps = tr.graph.model_steps or T
    x = np.random.default_rng(seed).random((steps, n, *shape)) * scale
    if tr.step_mode in ("static-m", "loop"):
        x = np.broadcast_to(x[:1], x.shape)
    tor = run_torch(model, x, tr.step_mode, list(tr.neuron_sources.values()), tr.graph.output_time_reduced,
                    output_steps=tr.graph.output_steps)
    ref = simulate(tr.graph, x)
    assert_same_spikes({k: tor.spikes[p] for k, p in tr.neuron_sources.items()}, ref.spikes)
    assert sum(s.sum() for s in ref.spikes.values()) > 0
    return tr


class ShapeMinded(nn.Module):
    """len(x.shape), unpacking, shape-dependent if, x.size(), x.dim()."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(2, 8, 3, padding=1)
        self.sn1 = neuron.IFNode(v_threshold=0.3, step_mode="m")
        self.fc = nn.Linear(8 * 4 * 4, 5)
        self.sn2 = neuron.LIFNode(step_mode="m")

    def forward(self, x):
        if len(x.shape) == 4:
            x = x.unsqueeze(0)
        T, B, C, H, W = x.shape
        y = self.conv(x.flatten(0, 1)).reshape(T, B, -1, H, W)
        y = self.sn1(y)
        if y.shape[-1] == 8:   # pool only at this size
            y = nn.functional.avg_pool2d(y.flatten(0, 1), 2).reshape(T, B, -1, H // 2, W // 2)
        y = y.reshape(T, y.size(1), -1) if y.dim() == 5 else y
        return self.sn2(self.fc(y))


def test_python_on_shapes_traces_and_matches():
    tr = same_as_torch(ShapeMinded(), (2, 8, 8))
    assert tr.step_mode == "m"


class CatChunk(nn.Module):
    """Two branches concatenated along channels, then split back into halves."""

    def __init__(self) -> None:
        super().__init__()
        self.a, self.b = nn.Conv2d(1, 4, 3, padding=1), nn.Conv2d(1, 6, 1)
        self.sa, self.sb = neuron.IFNode(v_threshold=0.2), neuron.IFNode(v_threshold=0.2)
        self.fc1, self.fc2 = nn.Linear(5 * 16, 6), nn.Linear(5 * 16, 6)
        self.s1, self.s2 = neuron.IFNode(v_threshold=0.5), neuron.IFNode(v_threshold=0.5)

    def forward(self, x):
        y = torch.cat([self.sa(self.a(x)), self.sb(self.b(x))], dim=1)     # [B, 10, 4, 4]
        lo, hi = y.chunk(2, dim=1)
        return self.s1(self.fc1(lo.flatten(1))) + self.s2(self.fc2(hi[:, :, :, :].flatten(1)))


def test_concat_and_chunk_compile_exactly():
    torch.manual_seed(1)
    tr = same_as_torch(CatChunk(), (1, 4, 4))
    g = tr.graph
    assert g.of_type(Concat) and len(g.of_type(Slice)) == 2
    net = lower(g)     # each branch lands in its slot: two projections into each fc's neurons
    assert {p.src for p in net.projections if p.dst in ("s1", "s2")} == {"sa", "sb"}


class VGGHead(nn.Module):
    """A 4×4 map pooled adaptively to 7×7 (VGG's classifier at CIFAR size)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv, self.sn = nn.Conv2d(1, 3, 3, padding=1), neuron.IFNode(v_threshold=0.2)
        self.pool = nn.AdaptiveAvgPool2d((7, 7))
        self.fc, self.out = nn.Linear(3 * 49, 4), neuron.IFNode(v_threshold=0.1)

    def forward(self, x):
        return self.out(self.fc(torch.flatten(self.pool(self.sn(self.conv(x))), 1)))


def test_adaptive_pooling_with_unequal_windows_is_exact():
    torch.manual_seed(2)
    tr = same_as_torch(VGGHead(), (1, 4, 4))
    node = tr.graph.node(tr.graph.of_type(AdaptiveAvgPool2d)[0])
    assert node.shape == (3, 7, 7)
    net = lower(tr.graph)
    from snncompile.sim.netlist import simulate_netlist

    x = np.random.default_rng(3).random((3, 4, 1, 4, 4))
    np.testing.assert_array_equal(simulate_netlist(net, x)["out"].reshape(3, 4, -1),
                                  simulate(tr.graph, x).spikes["out"].reshape(3, 4, -1))


class TimeLoop(nn.Module):
    """A single-step model that loops over its own T and sums the per-step outputs."""

    def __init__(self, T: int = 4) -> None:
        super().__init__()
        self.T = T
        self.conv, self.sn = nn.Conv2d(1, 4, 3), neuron.LIFNode(tau=2.0, v_threshold=0.3)
        self.fc = nn.Linear(4 * 4, 3)

    def forward(self, x):
        static = self.conv(x)           # computed once, outside the loop
        acc = 0
        for _ in range(self.T):
            acc = acc + self.fc(self.sn(static).flatten(1))
        return acc / self.T


def test_time_loop_inside_forward_is_folded_to_one_step():
    tr = same_as_torch(TimeLoop(), (1, 4, 4), scale=2.0)
    assert (tr.step_mode, tr.graph.model_steps, tr.graph.output_time_reduced) == ("loop", 4, True)
    assert len(tr.graph.of_type(Neuron)) == 1


def test_the_models_own_T_decides_the_steps(tmp_path):
    torch.manual_seed(0)
    model = TimeLoop(T=4).double().eval()
    path = tmp_path / "loop.pt"
    torch.save(model, path)
    x = np.random.default_rng(0).random((3, 1, 4, 4))
    np.save(tmp_path / "x.npy", x)
    rep = compile_model(path, target="lava", input=tmp_path / "x.npy", trust_pickle=True, steps=None,
                        simulate_on_target=False)
    assert rep.steps == 4
    with pytest.raises(SnnCompileError, match="the model runs 4 time steps inside forward") as e:
        compile_model(path, target="lava", input=tmp_path / "x.npy", trust_pickle=True, steps=8)
    assert e.value.exit_code == EXIT_USAGE and "--steps 4" in e.value.hint


class StepDependent(TimeLoop):
    def forward(self, x):
        outs = []
        for t in range(self.T):
            h = self.sn(self.conv(x)).flatten(1)
            outs.append(self.fc(h) if t else h[:, :3])
        return torch.stack(outs)


class LastStepOnly(TimeLoop):
    def forward(self, x):
        for _ in range(self.T):
            y = self.fc(self.sn(self.conv(x)).flatten(1))
        return y


@pytest.mark.parametrize("cls,match", [(StepDependent, "does not compute the same thing at every time step"),
                                       (LastStepOnly, "depends only on time step 3")])
def test_loops_that_do_not_fold_say_why(cls, match):
    with pytest.raises(SnnCompileError, match=match) as e:
        trace_model(cls().eval(), (1, 4, 4))
    assert e.value.exit_code == EXIT_UNSUPPORTED and e.value.hint


class TopK(nn.Module):
    """SparseSpikformer-style: keep the k tokens with the highest predicted score."""

    def __init__(self) -> None:
        super().__init__()
        self.embed, self.sn = nn.Linear(4, 8), neuron.IFNode(step_mode="m")
        self.predictor = nn.Linear(8, 1)
        self.head = nn.Linear(8, 3)

    def forward(self, x):                               # x: [T, B, N, 4]
        s = self.sn(self.embed(x))
        score = self.predictor(s).squeeze(-1)           # [T, B, N]
        idx = score.topk(3, dim=-1).indices
        kept = torch.gather(s, 2, idx.unsqueeze(-1).expand(-1, -1, -1, 8))
        return self.head(kept.mean(2))


class ValueBranch(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc, self.sn = nn.Linear(4, 4), neuron.IFNode()

    def forward(self, x):
        y = self.sn(self.fc(x))
        return y if y.sum() > 0 else -y


class Poisson(ValueBranch):
    def forward(self, x):
        return self.sn(self.fc((torch.rand_like(x) < x).float()))


def test_topk_token_selection_compiles_as_a_host_partition_and_no_host_names_it():
    """``score.topk(k).indices`` then ``gather``: host operations traced as written, spike-exact."""
    torch.manual_seed(0)
    model = TopK().eval()
    x = np.random.default_rng(0).random((3, 2, 6, 4))
    tr = trace_model(model, (6, 4))
    tor = run_torch(model, x, tr.step_mode, list(tr.neuron_sources.values()), tr.graph.output_time_reduced)
    ref = simulate(tr.graph, x)
    assert_same_spikes({n: tor.spikes[p] for n, p in tr.neuron_sources.items()}, ref.spikes)
    np.testing.assert_allclose(ref.output.sum(0), tor.output.sum(0), rtol=1e-12, atol=1e-12)
    with pytest.raises(SnnCompileError, match=r"`topk` at `forward` is a host operation") as e:
        trace_model(model, (6, 4), no_host=True)
    assert e.value.exit_code == EXIT_UNSUPPORTED


@pytest.mark.parametrize("model,shape,match,hint", [
    (ValueBranch(), (4,), "branches on the value of", "tensor values"),
    (Poisson(), (4,), "`rand_like` at `forward` draws random numbers", "--input"),
])
def test_what_cannot_compile_is_named_with_the_way_out(model, shape, match, hint):
    with pytest.raises(SnnCompileError, match=match) as e:
        trace_model(model.eval(), shape)
    assert e.value.exit_code == EXIT_UNSUPPORTED and hint in e.value.hint


# -- neurons beyond spikingjelly 2.0 --------------------------------------------------------------

def test_snntorch_leaky_compiles_exactly_and_other_resets_are_named():
    snn = pytest.importorskip("snntorch")
    torch.manual_seed(3)
    net = nn.Sequential(nn.Linear(6, 8), snn.Leaky(beta=0.75, threshold=0.4, init_hidden=True,
                                                   reset_mechanism="zero"),
                        nn.Linear(8, 3), snn.Leaky(beta=1.0, init_hidden=True, output=True,
                                                   reset_mechanism="zero"))
    tr = same_as_torch(net, (6,), T=6, scale=1.5)
    first, last = (tr.graph.node(n).dynamics for n in tr.graph.of_type(Neuron))
    assert (type(first), first.tau, first.strict, first.v_reset) == (LIF, 4.0, True, 0.0)
    assert type(last) is IF
    # Synaptic "zero" without the reset delay: the stored membrane is 0 after a spike (hard reset)
    net = nn.Sequential(nn.Linear(6, 8), snn.Synaptic(alpha=0.6, beta=0.8, threshold=0.4, init_hidden=True,
                                                      reset_mechanism="zero", reset_delay=False))
    tr = same_as_torch(net, (6,), T=8, scale=1.5)
    (syn,) = (tr.graph.node(n).dynamics for n in tr.graph.of_type(Neuron))
    assert (type(syn), syn.v_reset) == (CubaLIF, 0.0)
    for bad, what in ((snn.Leaky(beta=0.9, reset_delay=False), "reset_delay=False"),
                      (snn.Leaky(beta=0.0), "beta=0"),
                      (snn.Leaky(beta=0.9, threshold=-0.5), "negative threshold"),
                      (snn.Synaptic(alpha=0.5, beta=0.9, reset_mechanism="zero"), "Synaptic"),
                      (snn.Alpha(alpha=0.6, beta=0.5), "snntorch._neurons.alpha.Alpha")):
        m = nn.Sequential(nn.Linear(6, 3), bad)
        with pytest.raises(SnnCompileError, match=what.replace("(", r"\(").replace(".", r"\.")) as e:
            trace_model(m.eval(), (6,))
        assert e.value.exit_code == EXIT_UNSUPPORTED and "reset_mechanism" in e.value.hint
        assert "`1`" in str(e.value)   # names the neuron


@pytest.mark.parametrize("mech", ["subtract", "none"])
def test_snntorch_default_subtract_and_none_resets_compile_exactly(mech):
    """snnTorch's default reset (subtract θ at the next step, undamped) is a soft reset by θ/β;
    "none" a soft reset by 0. Leaky (β < 1 and β = 1) and Synaptic, spike for spike in float64."""
    snn = pytest.importorskip("snntorch")
    torch.manual_seed(4)
    net = nn.Sequential(nn.Linear(6, 8), snn.Leaky(beta=0.75, threshold=0.4, init_hidden=True, reset_mechanism=mech),
                        nn.Linear(8, 8), snn.Synaptic(alpha=0.6, beta=0.8, threshold=0.5, init_hidden=True,
                                                      reset_mechanism=mech),
                        nn.Linear(8, 3), snn.Leaky(beta=1.0, threshold=0.5, init_hidden=True, output=True,
                                                   reset_mechanism=mech))
    tr = same_as_torch(net, (6,), T=10, n=16, scale=1.5)
    first_node = tr.graph.node(tr.graph.of_type(Neuron)[0])
    first, syn, last = (tr.graph.node(n).dynamics for n in tr.graph.of_type(Neuron))
    rho = (0.4 / 0.75, 0.5 / 0.8, 0.5) if mech == "subtract" else (0.0, 0.0, 0.0)
    assert (type(first), first.tau, first.strict, first.v_reset) == (LIF, 4.0, True, None)
    assert (type(syn), syn.decay, syn.syn_decay, syn.decay_input) == (CubaLIF, pytest.approx(0.2),
                                                                      pytest.approx(0.4), False)
    assert type(last) is IF
    assert (first.reset_by, syn.reset_by, last.reset_by) == pytest.approx(rho)
    assert "reset=soft(" in first_node.describe()
    # the reset amount matters: subtracting V_th instead changes the spikes
    x = np.random.default_rng(0).random((10, 16, 6)) * 1.5
    ref = simulate(tr.graph, x).spikes
    first_node.dynamics = first.with_params(reset_by=None)
    assert any((simulate(tr.graph, x).spikes[k] != v).any() for k, v in ref.items())


@pytest.mark.parametrize("mech", ["subtract", "zero"])
def test_snntorch_rleaky_compiles_to_a_loop(mech):
    """snnTorch's RLeaky (all-to-all Linear, one-to-one V, a 3×3 recurrent conv): the neuron
    reads V(its spikes one step ago) through a Delay, spike for spike in float64 (default
    subtract reset; "zero" without the reset delay)."""
    snn = pytest.importorskip("snntorch")
    torch.manual_seed(5)
    kw = dict(init_hidden=True, reset_mechanism=mech, reset_delay=mech != "zero")
    net = nn.Sequential(nn.Linear(6, 8), snn.RLeaky(beta=0.8, threshold=0.5, linear_features=8, **kw),
                        nn.Linear(8, 8), snn.RLeaky(beta=0.7, threshold=0.5, all_to_all=False,
                                                    V=torch.linspace(-0.5, 0.5, 8), **kw),
                        nn.Linear(8, 3), snn.Leaky(beta=0.9, threshold=0.5, output=True, **kw))
    with torch.no_grad():
        net[1].recurrent.weight.mul_(2.0)
    tr = same_as_torch(net, (6,), T=12, n=8, scale=1.5)
    assert tr.graph.recurrent() and len(tr.graph.of_type(Delay)) == 2
    conv = nn.Sequential(nn.Conv2d(2, 4, 3, padding=1),
                         snn.RLeaky(beta=0.8, threshold=0.5, conv2d_channels=4, kernel_size=3, **kw),
                         nn.Flatten(), nn.Linear(4 * 5 * 5, 3), snn.Leaky(beta=0.9, output=True, **kw))
    tr = same_as_torch(conv, (2, 5, 5), T=8, n=6, scale=1.5)
    x = np.random.default_rng(1).random((8, 6, 2, 5, 5)) * 1.5
    net_ = lower(tr.graph)
    from snncompile.sim.kernels import run_kernels

    name = tr.graph.of_type(Neuron)[0]
    np.testing.assert_array_equal(run_kernels(net_, x)[name], simulate(tr.graph, x).spikes[name].reshape(8, 6, -1))


def test_snntorch_rleaky_in_a_time_loop_with_its_state():
    """The tutorial form: spk, mem = rlif(x, spk, mem) inside forward()'s own time loop."""
    snn = pytest.importorskip("snntorch")

    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc1, self.fc2 = nn.Linear(6, 8), nn.Linear(8, 3)
            self.rlif = snn.RLeaky(beta=0.8, threshold=0.5, linear_features=8)
            self.lif = snn.Leaky(beta=0.9, threshold=0.5)

        def forward(self, x):
            spk1, mem1 = self.rlif.init_rleaky()
            mem2 = self.lif.init_leaky()
            out = []
            for _ in range(10):
                spk1, mem1 = self.rlif(self.fc1(x), spk1, mem1)
                spk2, mem2 = self.lif(self.fc2(spk1), mem2)
                out.append(spk2)
            return torch.stack(out)

    torch.manual_seed(0)
    tr = same_as_torch(Net(), (6,), n=6, scale=1.5)
    assert tr.step_mode == "loop" and tr.graph.recurrent()


def test_snntorch_hidden_state_does_not_carry_over_between_oracle_batches():
    snn = pytest.importorskip("snntorch")
    torch.manual_seed(2)
    net = nn.Sequential(nn.Linear(6, 8), snn.Leaky(beta=0.9, threshold=0.5, init_hidden=True),
                        nn.Linear(8, 3), snn.Leaky(beta=0.9, threshold=0.5, init_hidden=True, output=True))
    net = net.double().eval()
    x = np.random.default_rng(0).random((6, 8, 6)) * 1.5
    whole = run_torch(net, x, "s", ["1", "3"], batch_size=8)
    halves = run_torch(net, x, "s", ["1", "3"], batch_size=4)   # two batches of the same size
    for p in ("1", "3"):
        np.testing.assert_array_equal(whole.spikes[p], halves.spikes[p])


def test_snntorch_rleaky_zero_reset_with_delay_is_named():
    snn = pytest.importorskip("snntorch")
    m = nn.Sequential(nn.Linear(6, 4), snn.RLeaky(beta=0.8, linear_features=4, reset_mechanism="zero",
                                                  init_hidden=True))
    with pytest.raises(SnnCompileError, match="RLeaky") as e:
        trace_model(m.eval(), (6,))
    assert e.value.exit_code == EXIT_UNSUPPORTED and "`1`" in str(e.value)


def test_snntorch_per_neuron_threshold_with_subtract_is_a_per_neuron_reset():
    """ρ_i = θ_i/β: the reference against snnTorch, the netlist's kernels and the ONNX step
    model against the reference, fixed point against the integer reference."""
    snn = pytest.importorskip("snntorch")
    from backends.onnx.run import run_steps
    from backends.onnx.step import build_step
    from snncompile.fixedpoint.quantize import quantize_plan
    from snncompile.sim.integer import simulate_int
    from snncompile.sim.kernels import run_kernels

    torch.manual_seed(6)
    th = torch.linspace(0.3, 0.9, 8)
    net = nn.Sequential(nn.Linear(6, 8), snn.Leaky(beta=0.75, threshold=th, init_hidden=True),
                        nn.Linear(8, 3), snn.Leaky(beta=0.9, threshold=0.5, init_hidden=True, output=True))
    tr = same_as_torch(net, (6,), T=12, n=8, scale=1.5)
    first = tr.graph.node(tr.graph.of_type(Neuron)[0])
    np.testing.assert_allclose(first.dynamics.reset_by, th.double().numpy() / 0.75)
    assert "soft(per-neuron)" in first.describe()
    x = np.random.default_rng(3).random((12, 8, 6)) * 1.5
    ref = simulate(tr.graph, x).spikes
    plan = lower(tr.graph)
    kernels, onnx_run = run_kernels(plan, x), run_steps(build_step(plan), x)
    for name, s in ref.items():
        np.testing.assert_array_equal(kernels[name], s.reshape(12, 8, -1))
        np.testing.assert_array_equal(onnx_run[name], s.reshape(12, 8, -1))
    q, info = quantize_plan(plan, x)
    assert np.asarray(q.fixed[tr.graph.of_type(Neuron)[0]].params.reset_by).shape == (8,)
    assert simulate_int(q, x)[tr.graph.of_type(Neuron)[0]].sum() > 0


@pytest.mark.lava
def test_per_neuron_soft_reset_on_both_lava_emissions():
    snn = pytest.importorskip("snntorch")
    from backends.lava import run_lava

    torch.manual_seed(6)
    net = nn.Sequential(nn.Linear(6, 8), snn.Leaky(beta=0.75, threshold=torch.linspace(0.3, 0.9, 8),
                                                   init_hidden=True),
                        nn.Linear(8, 3), snn.Leaky(beta=0.9, threshold=0.5, init_hidden=True, output=True))
    tr = trace_model(net.double().eval(), (6,))
    x = np.random.default_rng(3).random((12, 8, 6)) * 1.5
    ref = simulate(tr.graph, x).spikes
    plan = lower(tr.graph)
    for emit in ("fused", "stock"):
        got = run_lava(plan, x, emit=emit).spikes
        for name, s in ref.items():
            np.testing.assert_array_equal(got[name], s.reshape(12, 8, -1), err_msg=emit)


LEGACY_PROJECT = '''
import torch
from torch import nn
from spikingjelly.clock_driven import neuron, surrogate, layer


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = layer.SeqToANNContainer(nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4))
        self.lif = neuron.MultiStepLIFNode(tau=2.0, detach_reset=True, backend="cupy")
        self.fc = layer.SeqToANNContainer(nn.Flatten(), nn.Linear(4 * 16, 3))
        self.out = neuron.MultiStepIFNode(v_threshold=0.5, surrogate_function=surrogate.ATan())

    def forward(self, x):
        return self.out(self.fc(self.lif(self.conv(x)))).mean(0)


def net():
    torch.manual_seed(0)
    return Net()
'''


@pytest.mark.lava
def test_code_written_for_legacy_spikingjelly_compiles(tmp_path, monkeypatch):
    (tmp_path / "legacy_net.py").write_text(textwrap.dedent(LEGACY_PROJECT))
    monkeypatch.chdir(tmp_path)
    monkeypatch.delitem(sys.modules, "legacy_net", raising=False)
    # the legacy shim is installed afresh from the project's import; the one other tests hold
    # (their models' classes, pickled by name) is put back afterwards
    import spikingjelly

    for name in [n for n in sys.modules if n.split(".")[:2] == ["spikingjelly", "clock_driven"]]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.delattr(spikingjelly, "clock_driven", raising=False)
    x = np.random.default_rng(0).random((4, 6, 1, 4, 4)) * 3
    np.save(tmp_path / "x.npy", x)
    from snncompile.frontend.load import _project_importable

    _project_importable()
    import legacy_net

    torch.save(legacy_net.net().state_dict(), tmp_path / "sd.pt")
    rep = compile_model(tmp_path / "sd.pt", target="lava", arch="legacy_net:net", input=tmp_path / "x.npy",
                        input_shape=(1, 4, 4), simulate_on_target=True)
    assert rep.simulation["spike_agreement"] == 1.0
    assert rep.steps == 4
    m = legacy_net.net().double().eval()
    functional.set_step_mode(m, "m")
    same_as_torch(m, (1, 4, 4), T=4, scale=3.0)
    assert isinstance(m.lif, neuron.LIFNode) and m.lif.step_mode == "m"
    assert isinstance(m.conv, layer.SeqToANNContainer)


# -- regressions from review: constructs that once compiled to the wrong network ----------------

class _Base(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.T = 3
        self.fc, self.sn = nn.Linear(6, 6), neuron.IFNode(v_threshold=0.3)
        self.prior = nn.Parameter(torch.tensor([3.5, 0, 0, 0, 0, 0]))


class LoopPlusStatic(_Base):
    def forward(self, x):
        acc = 0
        for _ in range(self.T):
            acc = acc + self.sn(self.fc(x))
        return acc + self.prior          # a static offset: not a per-step output


class LoopNegated(_Base):
    def forward(self, x):
        return torch.stack([self.sn(self.fc(x)) for _ in range(self.T)]).mean(0) * -1.0


class AliasThenInPlace(_Base):
    def forward(self, x):
        h = self.fc(x)
        skip = h
        h += 0.5                          # changes `skip` too, in torch
        return self.sn(skip)


class NeuronPerCall(_Base):
    def forward(self, x):
        return neuron.IFNode()(self.fc(x))


@pytest.mark.parametrize("model,match", [
    (LoopPlusStatic(), "combines the time steps"),
    (LoopNegated(), "combines the time steps"),
    (AliasThenInPlace(), "in-place `iadd` at `forward` changes a tensor that is read again"),
    (NeuronPerCall(), "builds a .*IFNode neuron at every call"),
])
def test_constructs_that_would_compile_wrongly_are_refused(model, match):
    with pytest.raises(SnnCompileError, match=match) as e:
        trace_model(model.eval(), (6,))
    assert e.value.exit_code == EXIT_UNSUPPORTED and e.value.hint


def test_snntorch_state_must_be_the_neurons_own():
    snn = pytest.importorskip("snntorch")

    class Reset(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc, self.lif = nn.Linear(6, 4), snn.Leaky(beta=0.5, reset_mechanism="zero")

        def forward(self, x):
            mem = self.lif.init_leaky()
            out = []
            for _ in range(3):
                spk, mem = self.lif(self.fc(x), mem.detach() * 0)   # forgets its membrane
                out.append(spk)
            return torch.stack(out)

    with pytest.raises(SnnCompileError, match="given a state at step 1 that is not the one it returned"):
        trace_model(Reset().eval(), (6,))


    class RestartsEveryCall(nn.Module):   # called once per step: in snnTorch each call starts from rest
        def __init__(self) -> None:
            super().__init__()
            self.fc, self.lif = nn.Linear(6, 4), snn.Leaky(beta=0.5, reset_mechanism="zero")

        def forward(self, x):
            spk, _mem = self.lif(self.fc(x), self.lif.init_leaky())
            return spk

    with pytest.raises(SnnCompileError, match="given its state by forward\\(\\) at every call") as e:
        trace_model(RestartsEveryCall().eval(), (6,))
    assert e.value.exit_code == EXIT_UNSUPPORTED and "init_hidden=True" in e.value.hint


class Accumulate(_Base):
    """Zero-tensor accumulator start, x.ndimension(), cat of a chunk: all compile exactly."""

    def forward(self, x):
        if x.ndimension() == 2 and x.is_floating_point():
            x = torch.cat(x.chunk(2, dim=1), dim=1)
        acc = torch.zeros(x.shape[0], 6)
        for _ in range(self.T):
            acc = acc + self.sn(self.fc(x))
        return acc / self.T


def test_accumulators_shape_queries_and_rejoined_chunks_compile():
    torch.manual_seed(4)
    tr = same_as_torch(Accumulate(), (6,), scale=2.0)
    assert (tr.step_mode, tr.graph.model_steps, tr.graph.output_time_reduced) == ("loop", 3, True)
