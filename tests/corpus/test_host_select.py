"""Host selection and masking functions (issue 24): each exact against torch on float64
values (sort's tie order included), priced by its comparisons, refused by name under --no-host,
and small models using them spike-exact against PyTorch."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from corpus.host_select import batch_index_select
from equivalence import assert_same_spikes, run_all
from spikingjelly.activation_based import neuron
from torch import nn

from snncompile.errors import EXIT_UNSUPPORTED, SnnCompileError
from snncompile.frontend import trace_model
from snncompile.ir import Host, load_ir, save_ir
from snncompile.ir.host import Compare, IndexSelect, Max, Sort, Where, host_apply
from snncompile.mapping import load_chip, map_to_cores
from snncompile.netlist import window_stages
from snncompile.sim import run_torch, simulate
from snncompile.sim.netlist import simulate_netlist


@pytest.fixture(scope="module")
def ties() -> torch.Tensor:
    """[N=6, 5, 16] scores with many ties (spike counts), as a selector ranks firing tokens."""
    return torch.from_numpy(np.random.default_rng(0).integers(0, 4, (6, 5, 16)).astype(np.float64))


@pytest.mark.parametrize("descending", [False, True])
@pytest.mark.parametrize("stable", [False, True])
def test_sort_values_and_indices_are_torch_sort_ties_included(ties, descending, stable):
    values, order = torch.sort(ties, dim=2, descending=descending, stable=stable)
    for indices, want in ((True, order.double()), (False, values)):
        got = host_apply(Sort(axis=-1, descending=descending, stable=stable, indices=indices), [ties], (5, 16))
        assert torch.equal(got, want)
    if stable:   # equal scores keep their token order
        same = values[..., 1:] == values[..., :-1]
        assert bool((order[..., 1:][same] > order[..., :-1][same]).all())


def test_max_where_compare_and_index_select_are_exact(ties):
    values, where = torch.max(ties, dim=1)
    assert torch.equal(host_apply(Max(axis=0), [ties], (16,)), values)
    assert torch.equal(host_apply(Max(axis=0, indices=True), [ties], (16,)), where.double())
    mask = host_apply(Compare(op="gt", c=1.5), [ties], (5, 16))
    assert torch.equal(mask, (ties > 1.5).double())
    x = ties * 0.37
    assert torch.equal(host_apply(Where(a=0.0), [mask[..., :1], x], (5, 16)), x.masked_fill(ties[..., :1] > 1.5, 0.0))
    assert torch.equal(host_apply(Where(), [mask, x, -x], (5, 16)), torch.where(ties > 1.5, x, -x))
    assert Where(a=0.0).arity == 2 and Where().arity == 3 and Where(a=1.0, b=0.0).arity == 1
    idx = torch.argsort(ties[:, 0], dim=1, descending=True)[:, :4]            # [N, 4] per row
    want = x.transpose(1, 2)[torch.arange(6)[:, None], idx]                   # [N, 4 tokens, 5]
    assert torch.equal(host_apply(IndexSelect(axis=0), [x.transpose(1, 2), idx.double()], (4, 5)), want)


def test_costs_count_comparisons():
    assert Sort(axis=-1).cost([(5, 16)], (5, 16)).comparisons == 5 * 16 * 4     # n log2 n per row
    assert Max(axis=0).cost([(5, 16)], (16,)).comparisons == 4 * 16             # n − 1 per column
    assert Compare().cost([(5, 16)], (5, 16)).comparisons == 80
    assert Where().cost([(5, 16)] * 3, (5, 16)).comparisons == 80
    assert IndexSelect().cost([(16, 5), (4,)], (4, 5)).macs == 0


class Ranked(nn.Module):
    """Tokens ranked by spike count (argsort / sort / amax / masked_fill / where), then a head."""

    def __init__(self, how: str) -> None:
        super().__init__()
        self.how = how
        self.embed, self.sn = nn.Linear(4, 8), neuron.IFNode(step_mode="m")
        self.head, self.sn2 = nn.Linear(8, 6), neuron.IFNode(step_mode="m")

    def forward(self, x):                                # x: [T, B, N, 4]
        s = self.sn(self.embed(x))
        T, B, N, C = s.shape
        flat, count = s.flatten(0, 1), s.flatten(0, 1).sum(-1)
        if self.how == "batch_index_select":   # both forms of the published helper: [R, N, C] and [R, N]
            idx = count.argsort(dim=1, descending=True)[:, :3]
            y = batch_index_select(flat, idx) * batch_index_select(count, idx).unsqueeze(-1)
        elif self.how == "argsort":
            idx = count.argsort(dim=1, descending=True)[:, :3]
            y = flat[torch.arange(T * B)[:, None], idx]
        elif self.how == "sort":
            y = flat * count.sort(dim=1, stable=True)[0].unsqueeze(-1)
        elif self.how == "amax":
            y = flat * count.amax(1, keepdim=True).unsqueeze(-1)
        elif self.how == "masked_fill":
            y = flat.masked_fill((count < 3).unsqueeze(-1), 0.0)
        elif self.how == "elementwise_where":   # per element, not per token: no token selection
            y = torch.where(self.embed(x).flatten(0, 1) > 0.5, flat, 0.0)
        else:
            y = torch.where((count > 2).unsqueeze(-1), flat, 0.5 * flat)
        return self.sn2(self.head(y.reshape(T, B, -1, C)))


@pytest.mark.parametrize("how, fns, refused", [
    ("argsort", ["Sort", "IndexSelect"], "sort"),
    ("batch_index_select", ["Sort", "IndexSelect", "IndexSelect", "Product"], "sort"),
    ("sort", ["Sort", "Product"], "sort"),
    ("amax", ["Max", "Product"], "max"),
    ("masked_fill", ["Compare", "Where"], "compare"),
    ("where", ["Compare", "Where"], "compare"),
])
def test_ranked_tokens_match_pytorch_and_no_host_names_the_op(how, fns, refused):
    torch.manual_seed(0)
    model = Ranked(how).eval()
    with torch.no_grad():
        model.embed.weight.mul_(3.0)
    x = np.random.default_rng(0).random((4, 2, 6, 4))
    tr = trace_model(model, (6, 4))
    g = tr.graph
    assert [type(g.node(n).fn).__name__ for n in g.topo() if isinstance(g.node(n), Host)] == fns
    tor = run_torch(model, x, tr.step_mode, list(tr.neuron_sources.values()), tr.graph.output_time_reduced)
    ref = simulate(g, x)
    spikes = {n: tor.spikes[p] for n, p in tr.neuron_sources.items()}
    assert all(0.02 < s.mean() < 0.98 for s in spikes.values()), "every layer fires, none saturates"
    assert_same_spikes(spikes, ref.spikes)
    with pytest.raises(SnnCompileError, match=rf"`{refused}` at `forward` is a host operation") as e:
        trace_model(model, (6, 4), no_host=True)
    assert e.value.exit_code == EXIT_UNSUPPORTED


class WindowScored(Ranked):
    """Scores from the mean over every step (the official SparseSpikformer's ``x.mean(0)``), used at
    every step again: a window host (time barrier)."""

    def forward(self, x):
        s = self.sn(self.embed(x))
        peak = s.mean(0).sum(-1).amax(-1, keepdim=True)          # [B, 1]: needs all T steps
        return self.sn2(self.head(s * peak[None, :, :, None]))


class WindowGathered(Ranked):
    """The official SparseSpikformer's eval selector in small: tokens ranked by their spikes averaged over
    every step, the top 3 indices repeated over T and gathered from every step (``batch_index_select``)."""

    def forward(self, x):
        s = self.sn(self.embed(x))
        T, B, N, C = s.shape
        keep = torch.argsort(s.mean(0).sum(-1), dim=1, descending=True)[:, :3]
        keep = keep.unsqueeze(0).repeat(T, 1, 1).reshape(T * B, -1)
        return self.sn2(self.head(batch_index_select(s.flatten(0, 1), keep).reshape(T, B, -1, C)))


class WindowHead(Ranked):
    """A host operation on the mean over time that never comes back to the steps."""

    def forward(self, x):
        s = self.sn(self.embed(x))
        return torch.log_softmax(self.head(s.mean(0)), dim=-1)


@pytest.fixture(scope="module")
def windows():
    """Both window models (a gate from the mean over time; SparseSpikformer's gather), inputs, PyTorch's spikes."""
    x = np.random.default_rng(0).random((4, 2, 6, 4))
    out = {}
    for cls in (WindowScored, WindowGathered):
        torch.manual_seed(0)
        model = cls("amax").eval()
        with torch.no_grad():
            model.embed.weight.mul_(3.0)
        runs = run_all(model, x, (6, 4))
        out[cls.__name__] = (model, runs)
    return x, out


@pytest.mark.parametrize("name, fns", [("WindowScored", ["TimeMean", "Max", "Product"]),
                                       ("WindowGathered", ["TimeMean", "Sort", "IndexSelect"])])
def test_a_mean_over_time_read_by_a_host_and_used_per_step_is_a_window_host(windows, name, fns, tmp_path):
    x, models = windows
    _, runs = models[name]
    g = runs.trace.graph
    assert [type(g.node(n).fn).__name__ for n in g.topo() if isinstance(g.node(n), Host)] == fns
    assert all(0.02 < s.mean() < 0.98 for s in runs.torch_spikes.values()), "every layer fires, none saturates"
    assert_same_spikes(runs.torch_spikes, runs.ref_spikes)
    assert_same_spikes(runs.torch_spikes, simulate_netlist(runs.plan, x))
    cmap = map_to_cores(runs.plan, load_chip("loihi2")).to_dict()   # the mapping says the run is staged
    assert cmap["stages"]["count"] == 2 and any("time_mean (window" in v for v in cmap["off_core"].values())
    saved = load_ir(save_ir(g, tmp_path / "model.ir.npz"))   # host functions by name (-o DIR writes the IR)
    assert [g.node(n).fn for n in g.of_type(Host)] == [saved.node(n).fn for n in saved.of_type(Host)]
    assert_same_spikes(runs.torch_spikes, simulate(saved, x).spikes)


def test_what_reads_only_a_window_host_is_time_invariant_and_priced_once(windows):
    from snncompile.energy.estimate import estimate_energy
    from snncompile.ir.structure import time_invariant

    x, models = windows
    g = models["WindowScored"][1].trace.graph
    hosts = {type(g.node(n).fn).__name__: n for n in g.topo() if isinstance(g.node(n), Host)}
    # the mean and the peak over it are the same every step; the gate times each step's spikes is not
    assert time_invariant(g, hosts["TimeMean"]) and time_invariant(g, hosts["Max"])
    assert not time_invariant(g, hosts["Product"]) and not time_invariant(g, g.inputs(hosts["TimeMean"])[0])
    T = x.shape[0]
    rows = {r.ir_name: r for r in estimate_energy(g, steps=T, values=simulate(g, x, keep_values=True).values).layers
            if getattr(r, "ir_name", "") in hosts.values()}
    per_step = {n: g.node(n).fn.cost([tuple(g.node(s).shape) for s in g.inputs(n)], tuple(g.node(n).shape))
                for n in hosts.values()}
    assert rows[hosts["Max"]].comparisons == per_step[hosts["Max"]].comparisons          # once
    assert rows[hosts["Product"]].macs == T * per_step[hosts["Product"]].macs            # every step
    assert rows[hosts["TimeMean"]].macs == T * per_step[hosts["TimeMean"]].macs          # reads every step


@pytest.mark.lava
@pytest.mark.parametrize("name", ["WindowScored"])   # the gather: tests/corpus/test_sparse_official.py
def test_window_hosts_run_staged_on_lava_spike_for_spike(windows, name):
    """Stage 0 (the network before the barrier) is one Lava run over all T steps, the host averages,
    stage 1 is a second Lava run fed with the means."""
    from backends.lava import run_lava

    x, models = windows
    _, runs = models[name]
    assert max(window_stages(runs.plan).values()) == 1
    seen: list[tuple[int, int]] = []
    lava = run_lava(runs.plan, x, timeout_s=300, progress=lambda d, t: seen.append((d, t)))
    assert_same_spikes(runs.torch_spikes, lava.spikes, "Lava vs PyTorch:")
    T = x.shape[0]
    assert lava.steps == 2 * T   # both stages step all T steps (one batch of N samples)
    done = [d for d, _ in seen]   # one bar over both stages, never restarting
    assert done == sorted(done) and seen[-1] == (2 * T, 2 * T) and {t for _, t in seen} == {2 * T}


def test_a_host_operation_on_a_mean_over_time_that_never_returns_to_the_steps_is_refused():
    with pytest.raises(SnnCompileError, match=r"`log_softmax` at `forward` reads a mean over the time steps") as e:
        trace_model(WindowHead("amax").eval(), (6, 4))
    assert e.value.exit_code == EXIT_UNSUPPORTED and "each step" in e.value.hint
