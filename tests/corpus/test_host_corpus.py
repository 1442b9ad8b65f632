"""Host partitions (issue 24): models with real-valued, data-dependent parts compiled as written,
checked spike for spike against PyTorch on real inputs, priced with a host row, and their token
selection's saving counted exactly."""

from __future__ import annotations

import copy
import re

import numpy as np
import pytest
import torch
from corpus.host import GatedCNN, MaxPoolBNCNN, SparseSpikformerRef, TPSpikformerRef, calibrate_bn_, prune_
from corpus.host_select import ArgsortSpikformerRef, MaskedTokenSpikformerRef
from corpus.test_corpus import hook_counts
from equivalence import assert_compiled_matches, assert_same_spikes, run_all
from spikingjelly.clock_driven import functional

import snncompile
from snncompile.energy.estimate import estimate_energy
from snncompile.energy.tokens import token_saving
from snncompile.errors import EXIT_UNSUPPORTED, SnnCompileError
from snncompile.frontend import trace_model
from snncompile.ir import Host
from snncompile.lower import lower
from snncompile.netlist import OUTPUT, HostPopulation, host_populations
from snncompile.passes import run_passes
from snncompile.sim import simulate
from snncompile.sim.netlist import simulate_netlist

T, B, KEEP, DIM = 2, 2, 40, 64


@pytest.fixture(scope="module")
def sparse():
    """A SparseSpikformer-style model (CIFAR 32 px, 64 tokens, 90 % pruned), its images and runs."""
    torch.manual_seed(0)
    model = prune_(SparseSpikformerRef(T=T, dim=DIM, keep=KEEP))
    img = np.random.default_rng(0).random((B, 3, 32, 32)).astype(np.float32)
    calibrate_bn_(model, torch.from_numpy(img))
    x = np.broadcast_to(img[None], (T, B, 3, 32, 32))
    return model, x, run_all(model, x, (3, 32, 32))


def test_sparse_spikformer_traces_its_selector_as_host_operations(sparse):
    _, _, runs = sparse
    g = runs.trace.graph
    fns = [type(g.node(n).fn).__name__ for n in g.topo() if isinstance(g.node(n), Host)]
    assert fns == ["Gelu", "LogSoftmax", "TopK", "ScatterOnes", "Product"]
    hosts = host_populations(runs.plan)
    assert {p.name for p in hosts} >= {"gelu", "log_softmax", "topk", "scatter", "product"}
    assert all(isinstance(p, HostPopulation) for p in hosts)


def test_sparse_spikformer_reference_and_netlist_agree_with_pytorch(sparse):
    _, x, runs = sparse
    rates = [s.mean() for s in runs.torch_spikes.values()]
    assert min(rates) > 0.05, "a silent layer would prove little"
    assert_same_spikes(runs.torch_spikes, runs.ref_spikes, "reference vs PyTorch:")
    out = simulate_netlist(runs.plan, x)
    assert_compiled_matches(runs, runs.trace.graph, runs.plan, x, out)
    kept = out["scatter"].reshape(-1, 64).sum(-1)
    assert np.all(kept == KEEP)   # every step of every sample keeps exactly k tokens


def test_sparse_spikformer_optimized_and_lowered_still_agrees(sparse):
    """Every pass, then the lowering: the kept neurons' spikes still equal PyTorch's (one run,
    not one per pass: the budget of the suite)."""
    _, x, runs = sparse
    graph, _ = run_passes(runs.trace.graph)
    net = lower(graph)
    assert host_populations(net)
    assert_compiled_matches(runs, graph, net, x, simulate_netlist(net, x))


def _selector_io(model, x):
    """Float64 run of the source: the selector's input tokens and its predictor's scores."""
    m = copy.deepcopy(model).double().eval()
    seen = {}
    m.selector.register_forward_hook(lambda mod, args, out: seen.update(tokens=args[0]))
    m.selector.predictor.register_forward_hook(lambda mod, args, out: seen.update(score=out))
    functional.reset_net(m)
    with torch.no_grad():
        m(torch.as_tensor(np.array(x[0], dtype=np.float64)))
    return seen["tokens"].numpy(), seen["score"][..., 0], m


def test_sops_of_token_pruned_layers_count_kept_tokens_only(sparse):
    model, x, runs = sparse
    graph, _ = run_passes(runs.trace.graph, ["fold_batchnorm", "prune_synapses"])
    values = simulate(graph, x, keep_values=True).values
    report = estimate_energy(graph, steps=T, values=values)
    tokens, score, m = _selector_io(model, x)
    # the source's own choice: torch.topk on its float64 scores (saturated scores tie at 1.0)
    kept = np.zeros(tuple(score.shape), dtype=bool)
    np.put_along_axis(kept, torch.topk(score, KEEP, dim=-1).indices.numpy(), True, axis=-1)
    kept = kept.reshape(T, B, -1)
    fan = (m.attn.q_linear.weight.detach().numpy() != 0).sum(0).astype(np.float64)   # stored synapses per input
    want = float(np.einsum("tbnc,c,tbn->", tokens, fan, kept.astype(np.float64))) / B
    every = float(np.einsum("tbnc,c->", tokens, fan)) / B
    row = next(r for r in report.layers if getattr(r, "ir_name", "") == "attn_q_linear")
    assert row.sops == pytest.approx(want, rel=1e-12)
    assert want < every   # dropped tokens do fire: the selector saves their SOPs
    saving = token_saving(graph, steps=T, x=x, report=report)
    q = next(p for p in saving.layers if p.name == row.name)   # the module path
    assert q.sops_all_tokens == pytest.approx(every, rel=1e-12)
    assert saving.kept_fraction == KEEP / 64
    assert q.macs_kept == pytest.approx(q.macs_all * KEEP / 64)
    assert saving.snn_pj < saving.snn_pj_all_tokens and saving.ann_mac_saving > 0
    stated = token_saving(graph, steps=T, keep_ratio=KEEP / 64)
    assert stated.ann_mac_saving == pytest.approx(saving.ann_mac_saving)


def test_host_row_prices_operations_and_boundary_transfers(sparse):
    _, x, runs = sparse
    values = simulate(runs.trace.graph, x, keep_values=True).values
    d = estimate_energy(runs.trace.graph, steps=T, values=values).to_dict()
    rows = {r["ir_name"]: r for r in d["layers"] if r.get("off_core")}
    assert set(rows) == {"gelu", "log_softmax", "topk", "scatter", "product"}
    assert rows["gelu"]["name"] == "selector.predictor.1"   # rows show module paths, as every table does
    gelu = rows["gelu"]
    assert gelu["transcendentals"] == T * 64 * DIM // 2 and gelu["transfers"] == T * 2 * 64 * DIM // 2
    assert rows["topk"]["transfers"] == 0   # host to host: nothing crosses the boundary
    host = d["variants"]["snn"]["breakdown_pj"]["host"]
    assert host == pytest.approx(sum(r["energy_pj"]["snn"] for r in rows.values()))
    assert d["variants"]["ann"]["breakdown_pj"]["host"] < host   # the ANN moves no values across
    # the ANN twin evaluates once per sample: its GELU once, where the SNN's runs every step
    once = (gelu["macs"] * 4.6 + gelu["comparisons"] * 0.9 + gelu["transcendentals"] * 8 * 4.6) / T
    assert gelu["energy_pj"]["ann"] == pytest.approx(once, rel=1e-12)


def test_no_host_refuses_each_host_operation_by_name_and_module_path():
    model = SparseSpikformerRef(T=T, dim=32, keep=8).eval()
    with pytest.raises(SnnCompileError, match=r"`gelu` at `selector\.predictor\.1` is a host operation") as err:
        snncompile.compile(model, "energy", input_shape=(3, 32, 32), steps=T, no_host=True)
    assert err.value.exit_code == EXIT_UNSUPPORTED and "--no-host" in err.value.hint


@pytest.mark.parametrize("cls, fns, gain", [
    (TPSpikformerRef, ["TopK", "Broadcast", "Gather"], 2.5),     # topk + gather of tokens
    (GatedCNN, ["Sigmoid", "Product"], 2.5),                      # spikes × sigmoid(FC(mean spikes))
    (MaxPoolBNCNN, [], 1.0),                                      # max-pool of BN output (IR Pool2d)
    (ArgsortSpikformerRef, ["Gelu", "LogSoftmax", "Sort", "IndexSelect"], 2.5),   # argsort + batch_index_select
    (MaskedTokenSpikformerRef, ["Gelu", "Max", "Compare", "Where", "Max", "Compare", "Where"], 2.5),
])
def test_published_host_patterns_compile_as_written_and_match_pytorch(cls, fns, gain):
    torch.manual_seed(0)
    model = prune_(cls(T=T))
    img = np.random.default_rng(1).random((3, 3, 32, 32)).astype(np.float32)
    calibrate_bn_(model, torch.from_numpy(img), gain=gain)
    x = np.broadcast_to(img[None], (T, 3, 3, 32, 32))
    runs = run_all(model, x, (3, 32, 32))
    g = runs.trace.graph
    assert [type(g.node(n).fn).__name__ for n in g.topo() if isinstance(g.node(n), Host)] == fns
    assert host_populations(runs.plan), "the data-dependent part runs as a host partition"
    rates = [s.mean() for s in runs.torch_spikes.values()]
    assert min(rates) > 0.01 and 0.05 < np.mean(rates) < 0.6, "every layer fires, none saturates"
    assert_same_spikes(runs.torch_spikes, runs.ref_spikes, "reference vs PyTorch:")
    assert_compiled_matches(runs, g, runs.plan, x, simulate_netlist(runs.plan, x))
    pruned, _ = run_passes(g, ["fold_batchnorm", "prune_synapses"])
    rows = estimate_energy(pruned, steps=T, values=simulate(pruned, x, keep_values=True).values).to_dict()["layers"]
    assert {r["ir_name"] for r in rows if r.get("off_core")} == {p.name for p in host_populations(runs.plan)
                                                               if not re.search(r"\.in\d+$", p.name)}   # relays
    theirs = hook_counts(model, x, runs.trace.step_mode, g.output_steps)   # what the PyTorch layers received
    synaptic = [r for r in rows if r["op"] in ("conv2d", "linear")]
    assert {r["source"] for r in synaptic} == set(theirs)
    for r in synaptic:
        assert r["macs"] == theirs[r["source"]]["macs"], r["source"]
        if r["input"] == "spikes":
            assert r["sops"] == pytest.approx(theirs[r["source"]]["sops"], rel=1e-12), r["source"]


@pytest.mark.lava
def test_sparse_spikformer_on_lava_agrees_spike_for_spike(sparse):
    """The fused Lava emission runs every host partition as a graded Python process (float64)."""
    from backends.lava import run_lava

    _, x, runs = sparse
    lava = run_lava(runs.plan, x, timeout_s=300)
    assert_compiled_matches(runs, runs.trace.graph, runs.plan, x, {**lava.spikes, OUTPUT: lava.output})
    with pytest.raises(SnnCompileError, match=r"`gelu` is a host partition \(gelu at `selector\.predictor\.1`\)"):
        run_lava(runs.plan, x, timeout_s=300, emit="stock")


def test_firing_rates_do_not_mix_into_the_exact_token_saving():
    """With --input and --firing-rates the report's SOPs are analytic; the every-token network is
    simulated: the selector's SNN saving prices both networks from the simulation (it compared
    the rates' energy with the simulated one: a 'saving' of −35 %)."""
    model = SparseSpikformerRef(T=T, dim=32, keep=8).eval()
    x = np.random.default_rng(1).random((2, 3, 32, 32)).astype(np.float32)
    kw = dict(input_shape=(3, 32, 32), steps=T, input=x)
    exact = snncompile.compile(model, "energy", **kw).energy.token_selection
    rated = snncompile.compile(model, "energy", firing_rates="0.2", **kw).energy
    assert rated.mode == "analytic" and rated.token_selection.mode == "exact"
    assert rated.token_selection.snn_pj == pytest.approx(exact.snn_pj, rel=1e-12)
    assert rated.token_selection.snn_pj_all_tokens == pytest.approx(exact.snn_pj_all_tokens, rel=1e-12)


def test_keep_ratio_beside_an_input_is_named_as_unused():
    model = SparseSpikformerRef(T=T, dim=32, keep=8).eval()
    x = np.random.default_rng(1).random((2, 3, 32, 32)).astype(np.float32)
    energy = snncompile.compile(model, "energy", input_shape=(3, 32, 32), steps=T, input=x, keep_ratio=0.5).energy
    assert energy.token_selection.mode == "exact"
    assert "--keep-ratio 0.5 not used: the tokens kept are measured from --input" in energy.notes


def test_keep_ratio_prices_the_selector_without_input():
    model = SparseSpikformerRef(T=T, dim=32, keep=8).eval()
    d = snncompile.compile(model, "energy", input_shape=(3, 32, 32), steps=T, keep_ratio=0.5).to_dict()["energy"]
    sel = d["token_selection"]
    assert sel["mode"] == "keep ratio" and sel["kept_fraction"] == 0.5 and sel["snn_saving"] is None
    assert [r["name"] for r in sel["layers"]] == ["attn.q_linear", "attn.k_linear", "attn.v_linear"]   # module paths
    assert all(r["macs_kept_tokens"] * 2 == r["macs_all_tokens"] for r in sel["layers"])
    assert sel["ann_macs_all_tokens"] - sel["ann_macs"] == sum(r["macs_all_tokens"] / 2 for r in sel["layers"])


def test_loihi_mapping_lists_host_partitions_as_needing_the_embedded_cpu():
    from snncompile.mapping import load_chip, map_to_cores

    graph, _ = run_passes(trace_model(prune_(GatedCNN(T=T, ch=8)).eval(), (3, 32, 32)).graph)
    cmap = map_to_cores(lower(graph), load_chip("loihi2")).to_dict()
    # named by module path, as every report names layers (the gate's product is written in forward)
    assert cmap["off_core"] == {"excite.2": "sigmoid at `excite.2`: needs the embedded CPU / host",
                                "forward": "product at `forward`: needs the embedded CPU / host"}
    assert {"excite.2", "forward"} <= set(cmap["unmapped"])
