"""The official SparseSpikformer eval forward compiled as shipped (issue 24, closing note): its token
selector scores tokens from ``x.mean(0)`` (every step), so the mean is a window host (time barrier)
and the run is staged; spikes, logits and counts are checked against PyTorch at CIFAR size."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from corpus.host import calibrate_bn_, prune_
from corpus.sparse_official import SparseSpikformerOfficial, kept_tokens
from corpus.test_corpus import hook_counts
from equivalence import Runs, assert_compiled_matches, assert_same_spikes
from spikingjelly.clock_driven import functional

from snncompile import stages
from snncompile.energy.estimate import estimate_energy
from snncompile.errors import EXIT_UNSUPPORTED, SnnCompileError
from snncompile.frontend import trace_model
from snncompile.ir import Host
from snncompile.lower import lower
from snncompile.netlist import OUTPUT, HostPopulation, host_populations, window_stages
from snncompile.netlist.summary import lowering_summary
from snncompile.passes import run_passes
from snncompile.sim import run_torch, simulate
from snncompile.sim.kernels import build_kernel
from snncompile.sim.netlist import simulate_netlist

T, B, N = 4, 2, 64   # CIFAR: 32 px, patch 4 → 64 tokens
# one worker builds the module fixture once (it takes ~9 s) instead of each xdist worker building it
pytestmark = pytest.mark.xdist_group("sparse_official")


@pytest.fixture(scope="module")
def official():
    """The model (dim 128, 4 blocks, pruning at 1, 2, 3 keeping 57/51/46 tokens, 90 % pruned), CIFAR-size
    images, PyTorch's run, the optimized graph's reference values and its lowering."""
    torch.manual_seed(0)
    model = prune_(SparseSpikformerOfficial())
    img = np.random.default_rng(0).random((B, 3, 32, 32)).astype(np.float32)
    calibrate_bn_(model, torch.from_numpy(img))
    x = np.broadcast_to(img[None], (T, B, 3, 32, 32))
    tr = trace_model(model, (3, 32, 32))
    tor = run_torch(model, x, tr.step_mode, list(tr.neuron_sources.values()), tr.graph.output_time_reduced)
    spikes = {n: tor.spikes[p] for n, p in tr.neuron_sources.items()}
    graph, _ = run_passes(tr.graph, ["fold_batchnorm", "prune_synapses"])
    ref = simulate(graph, x, keep_values=True)
    net = lower(graph)
    runs = Runs(tr, net, spikes, tor.output, ref.spikes, ref.output)
    return model, x, runs, graph, ref


def test_compiles_as_shipped_with_window_hosts_and_a_staged_schedule(official):
    model, _, runs, _, _ = official
    g = runs.trace.graph
    fns = [type(g.node(n).fn).__name__ for n in g.topo() if isinstance(g.node(n), Host)]
    assert fns == ["TimeMean", "Gelu", "LogSoftmax", "Sort", "IndexSelect"] * 3
    windows = [p for p in host_populations(runs.plan) if p.fn.window]
    assert len(windows) == 3 and all(isinstance(p, HostPopulation) for p in windows)
    stages = window_stages(runs.plan)
    assert sorted({stages[p.name] for p in windows}) == [1, 2, 3]
    summary = lowering_summary(runs.plan)
    assert summary["stages"]["count"] == 4 and sorted(summary["stages"]["barriers"]) == sorted(p.name for p in windows)
    # forward() returns (x, decisions): the decisions are named as not emitted, not dropped silently
    (note,) = g.meta["notes"]
    assert "returns several values" in note and "the other 3" in note
    tokens = {n.split(".")[1]: g.node(name).shape[0] for name in g.topo()
              if (n := g.node(name).source).endswith("attn.q_linear")}
    assert [tokens[str(i)] for i in range(4)] == kept_tokens(model, N) == [64, 57, 51, 46]


def test_reference_and_netlist_spikes_and_logits_equal_pytorch(official):
    _, x, runs, graph, ref = official
    rates = [s.mean() for s in runs.torch_spikes.values()]
    assert min(rates) > 0.05 and max(rates) < 0.6, "every layer fires, none saturates"
    after = [n for n, p in runs.trace.neuron_sources.items() if p.startswith(("block.1", "block.2", "block.3"))]
    assert len(after) == 21   # the neuron layers after the selectors are compared too
    # the trace itself (every neuron), then the optimized graph and its lowering (kept neurons)
    assert_same_spikes(runs.torch_spikes, simulate(runs.trace.graph, x).spikes, "reference vs PyTorch:")
    np.testing.assert_allclose(ref.output.mean(0), runs.torch_output, rtol=1e-9, atol=1e-9)
    assert_compiled_matches(runs, graph, runs.plan, x, simulate_netlist(runs.plan, x))


def _kept_inputs(model, x):
    """Float64 run of the source: block 1's input tokens before the selector and its predictor's scores."""
    m = copy.deepcopy(model).double().eval()
    seen = {}
    m.block[0].register_forward_hook(lambda mod, args, out: seen.update(tokens=out))
    m.predictor[0].register_forward_hook(lambda mod, args, out: seen.update(score=out))
    functional.reset_net(m)
    with torch.no_grad():
        m(torch.as_tensor(np.array(x[0], dtype=np.float64)))
    return seen["tokens"].numpy(), seen["score"][..., 0], m


def test_macs_equal_hooks_and_sops_after_the_selector_count_kept_tokens(official):
    model, x, runs, graph, ref = official
    rows = estimate_energy(graph, steps=T, values=ref.values).to_dict()["layers"]
    theirs = hook_counts(model, x, runs.trace.step_mode, runs.trace.graph.output_steps)
    synaptic = [r for r in rows if r["op"] in ("conv2d", "linear")]
    assert {r["source"] for r in synaptic} == set(theirs)
    for r in synaptic:
        assert r["macs"] == theirs[r["source"]]["macs"], r["source"]
        if r["sops"] is not None:
            assert r["sops"] == pytest.approx(theirs[r["source"]]["sops"], rel=1e-12), r["source"]
    # block 1's q_linear: a float64 count over the tokens the source's own argsort keeps (57 of 64)
    tokens, score, m = _kept_inputs(model, x)
    keep = torch.argsort(score, dim=1, descending=True)[:, :57].numpy()           # [B, 57]
    kept = np.take_along_axis(tokens, keep[None, :, :, None], axis=2)            # [T, B, 57, C]
    fan = (m.block[1].attn.q_linear.weight.detach().numpy() != 0).sum(0).astype(np.float64)
    row = next(r for r in rows if r["source"] == "block.1.attn.q_linear")
    assert row["sops"] == pytest.approx(float(np.einsum("tbnc,c->", kept, fan)) / B, rel=1e-12)
    assert row["sops"] < float(np.einsum("tbnc,c->", tokens, fan)) / B   # dropped tokens fire: the selector saves


def test_window_host_has_its_own_off_core_energy_row(official):
    _, x, runs, graph, ref = official
    d = estimate_energy(graph, steps=T, values=ref.values).to_dict()
    rows = {r["ir_name"]: r for r in d["layers"] if r.get("off_core")}   # module paths repeat per host op
    means = [r for r in rows.values() if r["op"].startswith("host:time_mean")]
    assert len(means) == 3
    first = min(means, key=lambda r: r["ir_name"])
    # spikes in at every step, the means out once (the predictor reads them once per sample)
    assert first["macs"] == T * N * 128 and first["transfers"] == T * N * 128 + N * 128
    # what reads only the means runs once per sample, as the source's x.mean(0) → predictor → argsort
    by_source = {r["source"]: r for r in d["layers"] if r.get("source")}
    gelu = next(r for r in rows.values() if r["name"] == "predictor.0.linear.1")
    assert gelu["transcendentals"] == N * 64   # 64 tokens × dim/2, once (not T times)
    fc = by_source["predictor.0.linear.0"]
    assert fc["macs"] == N * 128 * 64 and fc["snn_macs"] == fc["macs_sparse"]   # once, not T times
    sort = min((r for r in rows.values() if r["op"] == "host:sort"), key=lambda r: r["ir_name"])
    node = graph.node(sort["ir_name"])
    once = node.fn.cost([tuple(graph.node(s).shape) for s in graph.inputs(sort["ir_name"])], tuple(node.shape))
    assert sort["comparisons"] == once.comparisons > 0 and sort["transfers"] == 0
    host = d["variants"]["snn"]["breakdown_pj"]["host"]
    assert host == pytest.approx(sum(r["energy_pj"]["snn"] for r in rows.values()))
    assert 0 < host < d["variants"]["snn"]["energy_pj"]
    # the three gather selectors are priced against the same network keeping every token
    report = estimate_energy(graph, steps=T, values=ref.values)
    saving = stages.token_selection(graph, steps=T, x=x, values=ref.values, keep_ratio=None, report=report,
                                    cost_model="45nm")
    assert sorted(saving.kinds.values()) == ["gather"] * 3
    assert saving.kept_fraction == pytest.approx(np.mean([57 / 64, 51 / 57, 46 / 51]))
    assert saving.ann_macs < saving.ann_macs_all_tokens


def test_stepped_runs_refuse_the_window_host_by_name(official):
    _, _, runs, _, _ = official
    window = next(p for p in host_populations(runs.plan) if p.fn.window)
    with pytest.raises(SnnCompileError, match=rf"`{window.name}` is a window host \(time_mean") as e:
        build_kernel(runs.plan, window.name)
    assert e.value.exit_code == EXIT_UNSUPPORTED and "reference" in e.value.hint


@pytest.mark.lava
def test_staged_lava_run_agrees_spike_for_spike(official):
    """Four stages (three time barriers): each a Lava run over all T steps, the window hosts computed on
    the host between runs; every kept neuron, the logits and the predictions equal PyTorch's."""
    from backends.lava import run_lava

    _, x, runs, graph, _ = official
    lava = run_lava(runs.plan, x, timeout_s=300)
    assert set(runs.torch_spikes) <= set(lava.spikes)
    assert_compiled_matches(runs, graph, runs.plan, x, {**lava.spikes, OUTPUT: lava.output})
