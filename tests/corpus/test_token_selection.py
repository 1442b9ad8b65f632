"""What a token selector saves, for every selector kind (issue 24): the every-token baseline of
gather selectors (argsort/top-k indices, layers after them k tokens wide) against a hand count of
the SparseSpikformer paper pattern (the CIFAR-10 configuration scaled down; the DVS128 Gesture
configuration at full size and scaled down, through the CLI and spike for spike); every count of
the exact report following the kept tokens (SOPs, neuron updates) against float64 counts of the
PyTorch source; a selector the network cannot be rebuilt without named, never guessed."""

from __future__ import annotations

import copy
import json
from dataclasses import replace

import numpy as np
import pytest
import torch
from corpus.host import SparseSpikformerRef, calibrate_bn_, prune_
from corpus.host_select import MaskedTokenSpikformerRef
from corpus.sparse_paper import CONFIGS, DVS128, SparseSpikformerPaper, powers
from corpus.test_corpus import hook_counts
from equivalence import assert_compiled_matches, assert_same_spikes, run_all
from spikingjelly.activation_based import neuron
from spikingjelly.clock_driven import functional
from torch import nn

import snncompile
from snncompile.cli import main
from snncompile.energy.estimate import estimate_energy
from snncompile.energy.every_token import NoEveryTokenNetwork, _reshape, find_selectors, keep_every_token
from snncompile.energy.tokens import token_saving
from snncompile.frontend import trace_model
from snncompile.passes import run_passes
from snncompile.sim import simulate
from snncompile.sim.netlist import simulate_netlist

T, DIM = 2, 32


def _hand_macs(d: int, blocks: list[int], scored: list[int], classes: int = 10, cin: int = 3,
               res: tuple[int, ...] = (32, 32, 32, 16)) -> int:
    """One pass, one sample: the paper SPS stem (its four stages at resolutions ``res``: 32 px
    pooled after the third and fourth; DVS 128 px pooled after each) and the relative-position
    conv at 8 × 8, each block on its n tokens (q, k, v, proj, an MLP of 4d, Q·Kᵀ and (Q·Kᵀ)·V:
    2·n²·d), each predictor on the tokens it scores, the head."""
    ch = [cin, d // 8, d // 4, d // 2, d]
    stem = sum(r * r * b * a * 9 for r, a, b in zip(res, ch, ch[1:])) + 8 * 8 * d * d * 9
    block = sum(4 * n * d * d + 2 * n * d * 4 * d + 2 * n * n * d for n in blocks)
    return stem + block + sum(n * (d * d // 2 + d // 2 * 2) for n in scored) + d * classes


DVS_RES = (128, 64, 32, 16)


def test_gather_selectors_gflops_equal_a_hand_count_with_and_without_the_selector(capsys, tmp_path):
    """The paper's pattern (argsort + batch_index_select before blocks 1 and 2, keep rates of the
    initial 64 tokens): 64 → 48 → 32 tokens, priced without input (k/N is the model's)."""
    model = SparseSpikformerPaper(T=T, dim=DIM, heads=4, depth=3, pruning_loc=(1, 2), keep_rates=(0.75, 0.5)).eval()
    graph = trace_model(model, (3, 32, 32)).graph
    found, unknown = find_selectors(graph)
    assert unknown == [] and [(s.kind, s.k, s.n) for s in found] == [("gather", 48, 64), ("gather", 32, 48)]
    sel = token_saving(graph, steps=T)
    assert sel.mode == "static" and sel.kept_fraction == pytest.approx((48 / 64 + 32 / 48) / 2)
    assert sel.ann_macs == _hand_macs(DIM, [64, 48, 32], [64, 48])
    assert sel.ann_macs_all_tokens == _hand_macs(DIM, [64, 64, 64], [64, 64])
    assert sel.ann_gflops == pytest.approx(2 * sel.ann_macs / 1e9)
    full = keep_every_token(graph)
    assert full.node(found[0].k_node).stop == 64 and graph.node(found[0].k_node).stop == 48   # graph untouched
    # through the CLI (every pass), no input and no ratio needed for gathers: the --json section
    torch.save(model, tmp_path / "m.pt")
    capsys.readouterr()
    assert main(["energy", str(tmp_path / "m.pt"), "--trust-pickle", "--input-shape", "3,32,32", "--json"]) == 0
    d = json.loads(capsys.readouterr().out)["energy"]["token_selection"]
    assert d["selector_kinds"] == {"index_select": "gather", "index_select_2": "gather"}
    assert d["ann_gflops_all_tokens"] == pytest.approx(2 * _hand_macs(DIM, [64] * 3, [64, 64]) / 1e9)
    assert 0 < d["ann_mac_saving"] < 1 and d["ann_gflops"] < d["ann_gflops_all_tokens"]


def test_dvs128_configuration_selectors_found_and_priced_against_a_hand_count():
    """The official DVS128 Gesture configuration (batch-first 2 × 128 × 128 frames, dim 256, four
    max-pools in the stem: 64 tokens; keep 0.7, 0.49, 0.343 → 44, 31, 21): traced batch-first,
    its three gathers found with their k of N, its GFLOPs with and without them a hand count."""
    model = SparseSpikformerPaper(**DVS128).eval()
    graph = trace_model(model, CONFIGS["dvs128"]["input_shape"]).graph
    assert graph.step_mode == "m-bf"
    found, unknown = find_selectors(graph)
    assert unknown == [] and [(s.kind, s.k, s.n) for s in found] == [("gather", 44, 64), ("gather", 31, 44),
                                                                      ("gather", 21, 31)]
    sel = token_saving(graph, steps=16)
    hand = _hand_macs(256, [64, 44, 31, 21], [64, 44, 31], classes=11, cin=2, res=DVS_RES)
    hand_all = _hand_macs(256, [64] * 4, [64] * 3, classes=11, cin=2, res=DVS_RES)
    assert sel.ann_macs == hand and sel.ann_macs_all_tokens == hand_all
    assert sel.ann_mac_saving == pytest.approx(1 - hand / hand_all)


def test_a_scaled_down_dvs_instance_through_the_cli(capsys, tmp_path):
    """The DVS model at dim 32 (128 px, [B, T, 2, H, W] frames, T = 16), keep rates [0.5, 0.25]
    before blocks 1 and 2 (the evaluation model's base rate): the CLI's token_selection section
    equals the hand count with and without the selectors."""
    model = SparseSpikformerPaper(**dict(DVS128, dim=32, heads=4, depth=3, pruning_loc=(1, 2),
                                         keep_rates=powers(0.5)[:2])).eval()
    torch.save(model, tmp_path / "dvs.pt")
    capsys.readouterr()
    assert main(["energy", str(tmp_path / "dvs.pt"), "--trust-pickle", "--input-shape", "2,128,128", "--steps", "16",
                 "--json"]) == 0
    d = json.loads(capsys.readouterr().out)["energy"]["token_selection"]
    hand = _hand_macs(32, [64, 32, 16], [64, 32], classes=11, cin=2, res=DVS_RES)
    hand_all = _hand_macs(32, [64] * 3, [64, 64], classes=11, cin=2, res=DVS_RES)
    assert d["mode"] == "static" and d["kept_fraction"] == pytest.approx((32 / 64 + 16 / 32) / 2)
    assert d["ann_macs"] == hand and d["ann_macs_all_tokens"] == hand_all
    assert d["ann_gflops"] == pytest.approx(2 * hand / 1e9)


def test_a_scaled_down_dvs_instance_agrees_with_pytorch_spike_for_spike():
    """The DVS model (batch-first 2 × 128 × 128 event frames, the stem pooling after each stage,
    gathers before blocks 1 and 2), 90 % pruned and calibrated on the frames: the reference
    simulator and the lowered netlist spike as PyTorch does, the gathers keeping 32 and 16 tokens."""
    torch.manual_seed(0)
    model = prune_(SparseSpikformerPaper(**dict(DVS128, dim=32, heads=4, depth=3, pruning_loc=(1, 2),
                                                keep_rates=powers(0.5)[:2])))
    frames = np.random.default_rng(4).poisson(0.3, (2, 4, 2, 128, 128)).astype(np.float32)   # [B, T, ...]
    calibrate_bn_(model, torch.from_numpy(frames))
    x = np.ascontiguousarray(frames.transpose(1, 0, 2, 3, 4))                               # [T, B, ...]
    runs = run_all(model, x, (2, 128, 128))
    assert runs.trace.graph.step_mode == "m-bf"
    assert min(s.mean() for s in runs.torch_spikes.values()) > 0.01, "a silent layer would prove little"
    assert_same_spikes(runs.torch_spikes, runs.ref_spikes, "reference vs PyTorch:")
    out = simulate_netlist(runs.plan, x)
    assert_compiled_matches(runs, runs.trace.graph, runs.plan, x, out)
    tokens = {n.split("_")[1]: s.shape[2] for n, s in runs.ref_spikes.items() if n.startswith("blocks_")}
    assert tokens == {"0": 64, "1": 32, "2": 16}   # [T, B, tokens, C] in every block after each gather


def _lif_updates(model: nn.Module, x: np.ndarray) -> dict[str, float]:
    """Per LIF module of a float64 run of the source: neuron updates per sample (the elements it
    integrates, summed over its calls: T × its width, the tokens it sees)."""
    m = copy.deepcopy(model).double().eval()
    seen: dict[str, float] = {}
    for path, mod in m.named_modules():
        if type(mod).__name__ == "MultiStepLIFNode":
            mod.register_forward_hook(lambda mm, a, o, p=path: seen.__setitem__(p, seen.get(p, 0.0)
                                                                                + a[0].numel() / x.shape[1]))
    functional.reset_net(m)
    with torch.no_grad():
        m(torch.as_tensor(np.array(x[0], dtype=np.float64)))
    return seen


def _neuron_rows(report, paths) -> dict[str, dict]:
    return {r["source"]: r for r in report.to_dict()["layers"] if r["op"] == "neuron" and r["source"] in paths}


@pytest.fixture(scope="module")
def gathered():
    """The paper pattern, 90 % pruned, calibrated to fire: one selector keeping 24 of 64 tokens."""
    torch.manual_seed(0)
    kw = dict(T=T, dim=DIM, heads=4, depth=2, pruning_loc=(1,))
    model = prune_(SparseSpikformerPaper(keep_rates=(0.375,), **kw))
    img = np.random.default_rng(2).random((2, 3, 32, 32)).astype(np.float32)
    calibrate_bn_(model, torch.from_numpy(img))
    every = SparseSpikformerPaper(keep_rates=(1.0,), **kw)   # the same weights keeping every token
    every.load_state_dict(model.state_dict())
    return model, every.eval(), np.broadcast_to(img[None], (T, 2, 3, 32, 32))


def test_exact_counts_after_a_gather_follow_the_kept_tokens(gathered):
    model, every, x = gathered
    graph, _ = run_passes(trace_model(model, (3, 32, 32)).graph, ["fold_batchnorm", "prune_synapses"])
    values = simulate(graph, x, keep_values=True).values
    report = estimate_energy(graph, steps=T, values=values)
    sel = token_saving(graph, steps=T, x=x, report=report, values=values)
    # neuron updates: every LIF population, 24 tokens wide after the selector (float64 source run)
    updates = _lif_updates(model, x)
    rows = _neuron_rows(report, updates)
    assert set(rows) == set(updates)
    for path, n in updates.items():
        assert rows[path]["neuron_updates"] == n, path
    assert updates["blocks.1.0.q_lif"] == T * 24 * DIM and updates["blocks.0.0.q_lif"] == T * 64 * DIM
    # SOPs of the layers after the gather, and of the same layers keeping every token: hook counts
    kept, full = (hook_counts(m, x, "static-m", False) for m in (model, every))
    layers = {p.name: p for p in sel.layers}
    assert set(layers) == {n for n in kept if n.startswith("blocks.1")}
    for name, p in layers.items():
        assert p.sops == pytest.approx(kept[name]["sops"], rel=1e-12), name
        assert p.sops_all_tokens == pytest.approx(full[name]["sops"], rel=1e-12), name
        assert p.sops > 0 and p.macs_kept * 64 == p.macs_all * 24
    assert sel.kept_fraction == 24 / 64 and sel.snn_pj < sel.snn_pj_all_tokens


def test_neurons_after_a_keep_mask_update_for_every_token():
    """A mask selector multiplies dropped tokens by 0: the layer reading them counts kept tokens'
    SOPs only, but the neurons after it exist for all 64 tokens and update every step (a dropped
    token's neuron still gets its bias and leaks, as the source computes it)."""
    torch.manual_seed(0)
    model = prune_(SparseSpikformerRef(T=T, dim=DIM, keep=16))
    img = np.random.default_rng(3).random((1, 3, 32, 32)).astype(np.float32)
    calibrate_bn_(model, torch.from_numpy(img))
    x = np.broadcast_to(img[None], (T, 1, 3, 32, 32))
    graph = trace_model(model, (3, 32, 32)).graph
    values = simulate(graph, x, keep_values=True).values
    report = estimate_energy(graph, steps=T, values=values)
    updates = _lif_updates(model, x)
    rows = _neuron_rows(report, updates)
    assert updates["attn.q_lif"] == T * 64 * DIM and set(rows) == set(updates)
    for path, n in updates.items():
        assert rows[path]["neuron_updates"] == n, path
    kept = float(np.asarray(values["scatter"]).mean())
    assert kept == 16 / 64
    sel = token_saving(graph, steps=T, x=x, report=report, values=values)
    assert {s: k for s, k in sel.kinds.items()} == {"product": "mask"}
    q = next(p for p in sel.layers if p.name == "attn.q_linear")
    assert q.macs_kept == q.macs_all * kept and q.sops < q.sops_all_tokens


def test_a_selector_without_a_k_is_named_in_a_note_never_guessed():
    model = MaskedTokenSpikformerRef(T=T).eval()   # masked_fill by the predictor's vote: no k to set to N
    energy = snncompile.compile(model, "energy", input_shape=(3, 32, 32), steps=T, keep_ratio=0.5).energy
    assert energy.token_selection is None
    (note,) = [n for n in energy.notes if n.startswith("token selection not priced")]
    assert "`where` at `selector`" in note and "data-dependent" in note


@pytest.mark.parametrize("how, token_mask", [("masked_fill", True), ("elementwise_where", False)])
def test_only_a_mask_over_whole_tokens_is_named_as_a_token_selector(how, token_mask):
    from corpus.test_host_select import Ranked

    graph = trace_model(Ranked(how).eval(), (6, 4)).graph
    found, unknown = find_selectors(graph)
    assert found == [] and len(unknown) == token_mask
    if token_mask:
        assert "a boolean token mask" in unknown[0]


def test_reshape_targets_follow_the_token_axis_or_refuse():
    assert _reshape((24, 4, 8), (24, 32), (64, 32)) == (64, 4, 8)          # heads split off the channels
    assert _reshape((4, 24, 8), (4, 8, 24), (4, 8, 64)) is None             # tokens mixed into another axis
    assert _reshape((24 * 32,), (24, 32), (64, 32)) == (64 * 32,)           # flattened whole
    assert _reshape((2, 12, 32), (24, 32), (64, 32)) is None                # tokens split: no k → N


class _Top16(nn.Module):
    """Spikes of 64 tokens, the top 16 by spike count gathered (``topk`` + ``gather``)."""

    def __init__(self, tail: nn.Module) -> None:
        super().__init__()
        self.embed, self.sn = nn.Linear(4, 8), neuron.IFNode(step_mode="m")
        self.tail, self.sn2 = tail, neuron.IFNode(step_mode="m")

    def gathered(self, x: torch.Tensor) -> torch.Tensor:   # x: [T, B, 64, 4] → [T·B, 16, 8]
        flat = self.sn(self.embed(x)).flatten(0, 1)
        idx = flat.sum(-1).topk(16, dim=1)[1]
        return torch.gather(flat, 1, idx.unsqueeze(-1).expand(-1, -1, flat.shape[-1]))


class GridAfterGather(_Top16):
    """The 16 tokens laid out on a 4 × 4 grid and convolved: no every-token twin."""

    def __init__(self) -> None:
        super().__init__(nn.Conv2d(8, 4, 3, 1, 1))

    def forward(self, x):
        T, B = x.shape[:2]
        kept = self.gathered(x)
        return self.sn2(self.tail(kept.transpose(1, 2).reshape(T * B, 8, 4, 4)).reshape(T, B, -1))


def test_a_network_without_an_every_token_twin_is_refused_naming_the_node():
    graph = trace_model(GridAfterGather().eval(), (64, 4)).graph
    assert [s.kind for s in find_selectors(graph)[0]] == ["gather"]
    with pytest.raises(NoEveryTokenNetwork, match=r"`reshape` node `reshape` \(\(8, 16\) → \(8, 4, 4\)\) cannot take \(8, 64\)"):
        keep_every_token(graph)
    with pytest.raises(NoEveryTokenNetwork):
        token_saving(graph, steps=T)


class LinearAfterGather(_Top16):
    """The 16 tokens through a linear layer into a neuron per token and channel."""

    def __init__(self) -> None:
        super().__init__(nn.Linear(8, 4))

    def forward(self, x):
        T, B = x.shape[:2]
        return self.sn2(self.tail(self.gathered(x)).reshape(T, B, 16, -1))


@pytest.mark.parametrize("per_token", [False, True])
def test_per_neuron_thresholds_are_regrown_to_every_token_or_refused(per_token):
    """A neuron's per-neuron threshold the same at every token position is regrown to N tokens
    (and simulates); one that differs between positions has no every-token twin."""
    graph = trace_model(LinearAfterGather().eval(), (64, 4)).graph
    (name,) = [n for n in graph.topo() if graph.node(n).op == "neuron" and graph.node(n).shape == (16, 4)]
    node = graph.node(name)
    th = np.broadcast_to(np.array([0.5, 1.0, 1.5, 2.0]), node.shape).copy()
    if per_token:
        th[3, 1] = 0.75
    graph.nx.nodes[name]["node"] = replace(node, dynamics=replace(node.dynamics, v_threshold=th))
    if per_token:
        with pytest.raises(NoEveryTokenNetwork, match=r"parameter `v_threshold` that differs between token positions"):
            keep_every_token(graph)
        return
    full = keep_every_token(graph)
    grown = full.node(name).dynamics.v_threshold
    assert grown.shape == (64, 4) and (grown == th[0]).all()
    x = np.random.default_rng(0).random((T, 2, 64, 4))
    assert simulate(full, x).spikes[name].shape[-2:] == (64, 4)
