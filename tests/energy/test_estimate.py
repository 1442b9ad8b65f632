"""estimate_energy: the four variants, neuron updates, memory, cost models, report, plot.

Expected values are computed here from the definitions (spike counts from the simulator,
weights from the torch modules, figures from the cost-model tables), not by the estimator.
"""

import json
import math

import numpy as np
import pytest
import torch
from matplotlib.figure import Figure
from nets import ResidualNet, TicketNet
from rich.console import Console
from spikingjelly.activation_based import neuron
from torch import nn
from torch.nn.utils import prune

from snncompile.energy import estimate_energy, load_cost_model, measured_firing_rates, parse_firing_rates
from snncompile.energy.plot import plot_energy
from snncompile.energy.render import fmt_pj, render_energy
from snncompile.errors import SnnCompileError
from snncompile.frontend import trace_model
from snncompile.ir import Conv2d, Linear
from snncompile.netlist.ops import conv2d_taps
from snncompile.sim import simulate

VARIANTS = ("ann", "snn", "snn_binary", "bnn")


def E(bits: float) -> float:
    """Lemaire et al.: SRAM access energy of one word in a memory of ``bits`` bits."""
    return 1.09e-5 * bits + 13.2


def spikes_in(T: int, B: int, n: int, p: float, seed: int = 0) -> np.ndarray:
    return (np.random.default_rng(seed).random((T, B, n)) < p).astype(np.float64)


def run(model: nn.Module, shape: tuple[int, ...], x: np.ndarray | None, **kw):
    g = trace_model(model.eval(), shape).graph
    res = simulate(g, x, keep_values=True) if x is not None else None
    e = estimate_energy(g, steps=kw.pop("steps", x.shape[0] if x is not None else 4),
                        values=None if res is None else res.values, **kw)
    return g, res, e.to_dict()


def layer(e: dict, op: str, i: int = 0) -> dict:
    return [r for r in e["layers"] if r["op"] == op][i]


def binary_linear(keep: float | None = None, seed: int = 0) -> nn.Sequential:
    """IF on 0/1 input (spikes in = spikes out) → Linear 64→16 with weights ±0.3 → IF."""
    torch.manual_seed(seed)
    fc = nn.Linear(64, 16, bias=False)
    with torch.no_grad():
        fc.weight.copy_(torch.sign(torch.randn(16, 64)) * 0.3)
        if keep is not None:
            prune.custom_from_mask(fc, "weight", torch.rand(16, 64) < keep)
    return nn.Sequential(neuron.IFNode(), fc, neuron.IFNode())


def test_binary_weight_snn_uses_adds_and_one_bit_weights():
    x = spikes_in(4, 3, 64, 0.3)
    _, _, e = run(binary_linear(), (64,), x)
    row = layer(e, "linear")
    assert row["binary_weights"] and e["model_variant"] == "snn_binary"
    assert e["binary_weight_layers"] == [row["name"]]
    sops = x.sum() / 3 * 16                              # dense: every spike meets 16 weights
    assert row["sops"] == pytest.approx(sops)
    b = row["breakdown_pj"]
    assert b["snn_binary"]["synaptic"] == pytest.approx(sops * 0.1)   # INT32 add (Horowitz)
    assert b["snn"]["synaptic"] == pytest.approx(sops * 0.9)          # FP32 add
    assert b["snn_binary"]["mac"] == b["snn"]["mac"] == 0
    assert row["memory_bits"] == {"ann": 64 * 16 * 32, "snn": 64 * 16 * 32,
                                  "snn_binary": 64 * 16 + 16 * 32, "bnn": 64 * 16 + 16 * 32}
    assert e["memory"]["snn_binary"]["weights_bits"] == 64 * 16 + 16 * 32
    assert e["savings"]["snn_binary_vs_snn"] > 1
    # the same layer with its binary nature declared on the node (1-bit storage, as the
    # binarize pass leaves it): the full-precision twin still stores 32 bits
    g = trace_model(binary_linear().eval(), (64,)).graph
    node = g.node(g.of_type(Linear)[0])
    node.weight, node.weight_bits = np.sign(node.weight), 1
    out = g.node(g.users(g.of_type(Linear)[0])[0])
    out.dynamics = out.dynamics.with_params(v_threshold=out.dynamics.v_threshold / 0.3)   # α moved into the threshold
    e1 = estimate_energy(g, steps=4, values=simulate(g, x, keep_values=True).values).to_dict()
    assert layer(e1, "linear")["memory_bits"] == row["memory_bits"]
    assert e1["variants"]["snn_binary"]["energy_pj"] == pytest.approx(e["variants"]["snn_binary"]["energy_pj"])


def _storage(dense: int, nnz: int, rows: int, fan_in: int, bits: int) -> dict[str, int]:
    ptr = math.ceil(math.log2(nnz + 1))
    return {"dense": dense * (2 if bits == 1 else bits), "bitmap": dense + nnz * bits,
            "csr": nnz * (bits + math.ceil(math.log2(fan_in))) + (rows + 1) * ptr}


def test_pruned_layers_store_the_cheapest_sparse_format():
    model = binary_linear(keep=0.1)
    nnz = int(model[1].weight_mask.sum())
    x = spikes_in(4, 2, 64, 0.3, seed=1)
    _, _, e = run(model, (64,), x)
    row = layer(e, "linear")
    assert row["synapses"] == nnz and row["synapses_dense"] == 1024
    for variant, bits, alpha in (("snn", 32, 0), ("snn_binary", 1, 16 * 32)):
        options = _storage(1024, nnz, 16, 64, bits)
        fmt = min(options, key=options.get)
        assert row["weight_format"][variant] == fmt == "csr"
        assert row["memory_bits"][variant] == options[fmt] + alpha
    assert row["weight_format"]["ann"] == "dense" and row["memory_bits"]["ann"] == 1024 * 32
    # SOPs: each input spike meets its column's kept weights
    fan = model[1].weight_mask.numpy().sum(axis=0)
    assert row["sops"] == pytest.approx((x * fan).sum() / 2)
    sparse = estimate_energy(trace_model(model.eval(), (64,)).graph, steps=4, ann_sparse=True).to_dict()
    srow = layer(sparse, "linear")
    assert srow["weight_format"]["ann"] == "csr" and sparse["variants"]["ann"]["macs"] == nnz
    assert e["variants"]["ann"]["macs"] == 1024


def conv_stack() -> nn.Sequential:
    torch.manual_seed(2)
    m = nn.Sequential(nn.Conv2d(2, 4, 3, padding=1), neuron.IFNode(),
                      nn.Conv2d(4, 6, 3, stride=2, padding=1, bias=False), neuron.LIFNode(tau=2.0),
                      nn.Flatten(), nn.Linear(6 * 4 * 4, 5), neuron.IFNode(v_reset=None))
    with torch.no_grad():
        for mod in m.modules():
            if isinstance(mod, (nn.Conv2d, nn.Linear)):
                mod.weight.mul_(5.0)
    return m


def test_bnn_counts_bops_over_64_and_keeps_the_first_layer_real():
    _, _, e = run(conv_stack(), (2, 8, 8), None)
    macs = [4 * 8 * 8 * 2 * 9, 6 * 4 * 4 * 4 * 9, 96 * 5]
    bnn = e["variants"]["bnn"]
    assert bnn["macs"] == macs[0] and bnn["bops"] == macs[1] + macs[2]
    assert bnn["ops"] == bnn["bops"] / 64 + bnn["macs"]                 # Bi-Real / ReActNet OPs
    n = 4 * 64 + 6 * 16 + 5
    assert bnn["activations"] == n
    b = bnn["breakdown_pj"]
    assert b["synaptic"] == pytest.approx(bnn["bops"] / 64 * 4.6)      # E_BOP = E_MAC / 64
    assert b["mac"] == pytest.approx(macs[0] * 4.6)
    assert bnn["energy_pj"] == pytest.approx(4.6 * bnn["ops"] + 0.9 * n)
    ann = e["variants"]["ann"]
    assert ann["macs"] == sum(macs) and ann["energy_pj"] == pytest.approx(4.6 * sum(macs) + 0.9 * n)
    assert e["savings"]["bnn_vs_ann"] == pytest.approx(ann["energy_pj"] / bnn["energy_pj"])
    assert e["memory"]["bnn"]["weights_bits"] == 4 * 2 * 9 * 32 + (6 * 4 * 9 + 6 * 32) + (96 * 5 + 5 * 32)
    assert e["variants"]["snn"] is None and e["savings"]["snn_vs_ann"] is None
    assert any("no spikes or firing rates" in note for note in e["notes"])


@pytest.mark.parametrize("cost", ["45nm", "loihi"])
def test_neuron_updates_from_simulated_spikes(cost):
    T, B = 5, 2
    x = np.random.default_rng(4).random((T, B, 2, 8, 8))
    g, res, e = run(conv_stack(), (2, 8, 8), x, cost_model=cost)
    c = load_cost_model(cost)
    total = 0.0
    for name, spikes in res.spikes.items():
        n = spikes[0, 0].size
        S = spikes.sum() / B
        row = next(r for r in e["layers"] if r["ir_name"] == name)
        assert row["neuron_updates"] == n * T and row["spikes"] == pytest.approx(S)
        if cost == "loihi":      # active (fired) / inactive updates + routing each spike
            want = 81 * S + 52 * (n * T - S) + 1.7 * S
        else:                    # integrate + compare every step, leak (LIF), reset per spike
            leak = n * T if row["model"] == "lif" else 0
            want = n * T * (0.9 + 0.9) + leak * 3.7 + S * 0.9
        assert row["breakdown_pj"]["snn"]["neuron"] == pytest.approx(want)
        assert row["breakdown_pj"]["ann"]["neuron"] == pytest.approx(n * c.pj("cmp"))
        total += want
    snn = e["variants"]["snn"]
    assert snn["breakdown_pj"]["neuron"] == pytest.approx(total)
    assert snn["neuron_updates"] == T * (4 * 64 + 6 * 16 + 5)
    assert snn["macs"] == T * 4 * 8 * 8 * 2 * 9       # the first conv reads the image every step
    assert e["mac_layers"] == [layer(e, "conv2d")["name"]]


def test_lemaire_memory_accounting_of_a_linear_snn():
    torch.manual_seed(3)
    model = nn.Sequential(neuron.IFNode(), nn.Linear(20, 10), neuron.LIFNode(tau=2.0))
    with torch.no_grad():
        model[1].weight.mul_(4.0)
    T, B = 4, 2
    x = spikes_in(T, B, 20, 0.4, seed=5)
    g, res, e = run(model, (20,), x, cost_model="lemaire")
    theta = x.sum() / B
    sop = theta * 10
    s_in, s_out = (s.sum() / B for s in res.spikes.values())
    n_w, n_v = 200 * 32 + 10 * 32, 10 * 32
    syn = layer(e, "linear")["breakdown_pj"]["snn"]
    assert syn["synaptic"] == pytest.approx(sop * 0.1)
    # weight read per event, membrane read + write per event, bias read per neuron and step
    assert syn["memory"] == pytest.approx(sop * E(n_w) + 2 * sop * E(n_v) + T * 10 * E(n_w))
    out = layer(e, "neuron", 1)["breakdown_pj"]["snn"]
    assert out["memory"] == pytest.approx(2 * T * 10 * E(n_v))
    assert out["neuron"] == pytest.approx(T * 10 * (0.1 + 0.1) + T * 10 * 3.1 + s_out * 0.1)
    inp = layer(e, "neuron", 0)["breakdown_pj"]["snn"]
    assert inp["memory"] == pytest.approx(2 * T * 20 * E(20 * 32))
    assert inp["neuron"] == pytest.approx(T * 20 * 0.2 + s_in * 0.1)
    ann = layer(e, "linear")["breakdown_pj"]["ann"]
    assert ann["mac"] == pytest.approx(200 * 3.2)
    # input read and weight read per MAC, output write and bias read per output
    assert ann["memory"] == pytest.approx(200 * E(20 * 32) + 200 * E(n_w) + 10 * E(n_v) + 10 * E(n_w))
    assert e["variants"]["snn"]["energy_pj"] == pytest.approx(
        sop * 0.1 + syn["memory"] + out["memory"] + out["neuron"] + inp["memory"] + inp["neuron"])


def test_lemaire_conv_addressing_per_input_spike():
    torch.manual_seed(6)
    model = nn.Sequential(neuron.IFNode(), nn.Conv2d(3, 4, 3, padding=1, bias=False), neuron.IFNode())
    T, B = 3, 2
    x = (np.random.default_rng(6).random((T, B, 3, 6, 6)) < 0.3).astype(np.float64)
    g, res, e = run(model, (3, 6, 6), x, cost_model="lemaire")
    conv = g.node(g.of_type(Conv2d)[0])
    rows, cols, _, _ = conv2d_taps(conv, (3, 6, 6), conv.mask.astype(float), conv.mask)
    fan = np.bincount(cols, minlength=3 * 36)        # brute-force fan-out (padding excluded)
    sop = (x.reshape(T, B, -1) * fan).sum() / B
    theta = x.sum() / B
    row = layer(e, "conv2d")
    assert row["sops"] == pytest.approx(sop) and row["input_spikes"] == pytest.approx(theta)
    n_w, n_v = 4 * 3 * 9 * 32, 4 * 36 * 32
    want = sop * E(n_w) + 2 * sop * E(n_v) + 2 * theta * 3.2 + 9 * theta * 0.1
    assert row["breakdown_pj"]["snn"]["memory"] == pytest.approx(want)


def test_firing_rates_by_neuron_layer_and_default():
    model = ResidualNet().eval()
    g = trace_model(model, (20,)).graph
    e = estimate_energy(g, steps=6, firing_rates={"sn1": 0.2, "sn2": 0.1}).to_dict()
    fc2, fc3 = layer(e, "linear", 1), layer(e, "linear", 2)
    assert fc2["firing_rate_in"] == 0.2 and fc2["sops"] == pytest.approx(0.2 * 6 * 16 * 16)
    assert fc3["firing_rate_in"] == pytest.approx(0.3)          # a + b: the rates add
    assert fc3["sops"] == pytest.approx(0.3 * 6 * 16 * 6)
    assert layer(e, "linear", 0)["input"] == "real" and e["variants"]["snn"]["macs"] == 6 * 20 * 16
    assert layer(e, "neuron", 0)["spikes"] == pytest.approx(0.2 * 6 * 16)
    assert layer(e, "neuron", 2)["spikes"] is None and e["variants"]["snn"]["spikes"] is None
    assert any("resets not counted" in n for n in e["notes"]) and e["mode"] == "analytic"
    by_layer = estimate_energy(g, steps=6, firing_rates={"fc2": 0.2, "fc3": 0.3, "*": 0.05}).to_dict()
    assert layer(by_layer, "linear", 1)["sops"] == fc2["sops"]
    assert layer(by_layer, "neuron", 2)["spikes"] == pytest.approx(0.05 * 6 * 6)


@pytest.mark.parametrize("rates,needle", [
    ({"sn1": 0.2, "bogus": 0.1}, "unknown layer(s) 'bogus'"),
    ({"sn1": 0.2}, "no firing rate for the spiking input of"),
    ({"*": -0.1}, "not a finite, non-negative number"),
    ({"*": float("nan")}, "not a finite, non-negative number"),
    ({"sn1": 1.5, "*": 0.1}, "> 1"),
])
def test_bad_firing_rates(rates, needle):
    g = trace_model(ResidualNet().eval(), (20,)).graph
    with pytest.raises(SnnCompileError) as err:
        estimate_energy(g, steps=4, firing_rates=rates)
    assert needle in err.value.message and err.value.exit_code == 2


def test_usage_errors():
    x = spikes_in(4, 2, 64, 0.3)
    g, res, _ = run(binary_linear(), (64,), x)
    with pytest.raises(SnnCompileError, match="both simulated spikes and firing rates"):
        estimate_energy(g, steps=4, values=res.values, firing_rates={"*": 0.1})
    with pytest.raises(SnnCompileError, match="cover 4 steps, not 5"):
        estimate_energy(g, steps=5, values=res.values)
    with pytest.raises(SnnCompileError, match="positive integer"):
        estimate_energy(g, steps=0)
    with pytest.raises(SnnCompileError, match="unknown energy model"):
        estimate_energy(g, steps=4, cost_model="5nm")


def test_analytic_with_measured_rates_reproduces_exact_on_uniform_fan_out():
    x = spikes_in(4, 3, 64, 0.3)
    g, res, exact = run(binary_linear(), (64,), x)
    analytic = estimate_energy(g, steps=4, firing_rates=measured_firing_rates(g, res.values)).to_dict()
    for v in VARIANTS:
        assert analytic["variants"][v]["energy_pj"] == pytest.approx(exact["variants"][v]["energy_pj"])


def test_report_schema_totals_and_json():
    x = np.random.default_rng(7).random((4, 2, 2, 8, 8))
    _, _, e = run(conv_stack(), (2, 8, 8), x, model_name="stack")
    json.loads(json.dumps(e))               # plain JSON types only
    for key in ("model", "cost_model", "source", "unverified", "first_layer", "steps", "variants",
                "savings", "memory", "layers"):
        assert key in e
    assert e["model"] == "stack" and e["first_layer"] == "mac" and e["steps"] == 4
    assert set(e["variants"]) == set(VARIANTS) and e["mode"] == "exact"
    assert set(e["variants"]["snn"]) >= {"sops", "macs", "neuron_updates", "energy_pj"}
    for v in VARIANTS:
        total = sum(r["energy_pj"][v] for r in e["layers"])
        assert e["variants"][v]["energy_pj"] == pytest.approx(total)
        assert e["memory"][v]["total_bits"] == sum(x for k, x in e["memory"][v].items() if k != "total_bits")
    s = e["savings"]
    assert s["snn_vs_ann"] == pytest.approx(e["variants"]["ann"]["energy_pj"] / e["variants"]["snn"]["energy_pj"])
    assert s["snn_binary_vs_ann"] == pytest.approx(s["snn_vs_ann"] * s["snn_binary_vs_snn"])
    for r in e["layers"]:
        assert {"name", "op", "macs", "sops", "firing_rate_in", "synapses", "synapses_dense",
                "energy_pj"} <= set(r)


def test_max_pool_of_real_values_is_counted_without_lowering():
    torch.manual_seed(8)
    stem = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.MaxPool2d(3, 2, 1),
                         neuron.IFNode(), nn.Conv2d(4, 4, 3, padding=1), neuron.IFNode())
    x = np.random.default_rng(8).random((3, 2, 1, 8, 8)) * 4
    _, _, e = run(stem, (1, 8, 8), x)
    assert [r["input"] for r in e["layers"] if r["op"] == "conv2d"] == ["real", "spikes"]
    direct = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.MaxPool2d(2), nn.Conv2d(4, 4, 3), neuron.IFNode())
    _, _, e2 = run(direct, (1, 8, 8), x)
    convs = [r for r in e2["layers"] if r["op"] == "conv2d"]
    assert [r["input"] for r in convs] == ["real", "real"]    # a max of real values is real
    assert e2["variants"]["snn"]["macs"] == 3 * sum(r["macs"] for r in convs)
    assert e2["variants"]["snn"]["sops"] == 0


def test_plot_of_a_model_with_a_host_partition(tmp_path):
    """The `host` category (GELU on the host) has its bar and legend entry (it was a KeyError)."""
    model = nn.Sequential(nn.Flatten(), nn.Linear(16, 8), nn.GELU(), nn.Linear(8, 4), neuron.LIFNode()).eval()
    e = estimate_energy(trace_model(model, (1, 4, 4)).graph, steps=2)
    assert e.variants.get("ann").breakdown.host > 0
    png = plot_energy(e, tmp_path / "energy.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_render_and_plot(tmp_path, monkeypatch):
    x = np.random.default_rng(9).random((4, 2, 2, 8, 8))
    g = trace_model(conv_stack().eval(), (2, 8, 8)).graph
    e = estimate_energy(g, steps=4, values=simulate(g, x, keep_values=True).values, cost_model="lemaire")
    con = Console(record=True, width=240)
    render_energy(e, con)
    text = con.export_text()
    for needle in ("│ 0 ", "LIF hard", "real", "SNN binary-weight", "BNN", "UNVERIFIED", "Lemaire",
                   "bop 0.05 pJ UNVERIFIED", "memory.word_bits 32 UNVERIFIED", "SOPs exact"):
        assert needle in text, needle
    con = Console(record=True, width=100)                  # narrower than the table: never cropped
    render_energy(e, con)
    table = [ln.rstrip() for ln in con.export_text().splitlines() if ln[:1] in "┏┃┡│├└"]
    assert all(ln[-1] in "┓┃┩│┤┘" for ln in table) and any(ln.endswith(" BNN ┃") for ln in table)
    (total,) = [ln for ln in table if ln.startswith("│ total ")]      # whole numbers, not squeezed
    assert all(f" {fmt_pj(e.variants.energy(v))} │" in total for v in VARIANTS), total
    static = estimate_energy(trace_model(conv_stack().eval(), (2, 8, 8)).graph, steps=4)
    con = Console(record=True, width=240)
    render_energy(static, con)
    assert "needs spikes or firing rates" in con.export_text()

    png = plot_energy(e, tmp_path / "plots" / "energy.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000
    assert sorted(p.name for p in png.parent.iterdir()) == ["energy.png"]     # no temp files left
    with pytest.raises(SnnCompileError, match="not a .png"):
        plot_energy(e, tmp_path / "energy.jpg")

    def failing_savefig(self, fname, **kw):   # a write that fails halfway
        if hasattr(fname, "write"):
            fname.write(b"partial")
        else:
            with open(fname, "wb") as fh:
                fh.write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(Figure, "savefig", failing_savefig)
    with pytest.raises(SnnCompileError, match="disk full"):
        plot_energy(e, tmp_path / "broken.png")
    assert not (tmp_path / "broken.png").exists() and not list(tmp_path.glob(".tmp-*"))


def _source_live(g, src):
    """Which elements of ``src`` can carry a spike: walk back through views and masks to
    the neuron layer and keep its live, unmasked neurons (written out for this test)."""
    from snncompile.ir import Mask, Reshape
    node = g.node(src)
    if isinstance(node, Reshape):
        return _source_live(g, g.inputs(src)[0]).reshape(node.shape)
    if isinstance(node, Mask):
        return _source_live(g, g.inputs(src)[0]) & node.keep
    alive = getattr(node, "alive", None)
    return np.ones(node.shape, dtype=bool) if alive is None else alive


def _kept_macs(g, name):
    """ANN MACs of layer ``name`` into its user's live neurons from live sources, written
    out: padding reads as a live input (published tables count padded taps)."""
    node, src = g.node(name), g.inputs(name)[0]
    (user,) = g.users(name)
    alive = g.node(user).alive
    out_live = np.ones(node.shape, bool) if alive is None else alive.reshape(node.shape)
    live_in = torch.from_numpy(_source_live(g, src).astype(np.float64))
    if isinstance(node, Conv2d):
        (py, px), (sy, sx) = node.padding, node.stride
        x = torch.nn.functional.pad(live_in[None], (px, px, py, py), value=1.0)
        ones = torch.ones(node.weight.shape, dtype=torch.float64)
        taps = torch.nn.functional.conv2d(x, ones, stride=(sy, sx), dilation=node.dilation, groups=node.groups)[0]
    else:
        taps = live_in.reshape(-1).sum().expand(*node.shape)
    return int(round(float((taps.numpy() * out_live).sum())))


def test_compiled_ticket_net_after_passes():
    """After the default passes (BN folded, max-pool → OR neurons, binarized, masked
    patches removed, zeros pruned, dead neurons removed), exact SOPs still equal the
    brute-force count over the remaining synapses into live neurons."""
    from snncompile.netlist.ops import linear_matrix
    from snncompile.passes import run_passes

    raw = trace_model(TicketNet().eval(), (1, 8, 8)).graph
    g, _ = run_passes(raw)
    T, B = 4, 3
    x = np.random.default_rng(10).random((T, B, 1, 8, 8)) * 3
    res = simulate(g, x, keep_values=True)
    e = estimate_energy(g, steps=T, values=res.values).to_dict()
    assert e["model_variant"] == "snn_binary"
    # removed neurons cost nothing in any variant: the ANN twin computes neither their inputs
    # nor the MACs with their outputs (a padded tap still counts, as in MAC tables)
    assert e["variants"]["ann"]["macs"] == sum(_kept_macs(g, r["ir_name"]) for r in e["layers"]
                                               if r["op"] != "neuron" and r["role"] != "or")
    assert e["variants"]["ann"]["macs"] < estimate_energy(raw, steps=T).variants.ann.macs
    assert e["variants"]["ann"]["activations"] == sum(r["neurons"] for r in e["layers"]
                                                      if r["op"] == "neuron" and r["role"] != "or")
    or_rows = [r for r in e["layers"] if r.get("role") == "or"]
    assert or_rows and all(r["macs"] == 0 and r["energy_pj"]["ann"] == 0 for r in or_rows)
    checked = 0
    for r in e["layers"]:
        if r["op"] == "neuron" or r["input"] != "spikes":
            continue
        node, src = g.node(r["ir_name"]), g.inputs(r["ir_name"])[0]
        in_shape = tuple(g.node(src).shape)
        if isinstance(node, Conv2d):
            rows, cols, _, _ = conv2d_taps(node, in_shape, node.mask.astype(float), node.mask)
        else:
            m = linear_matrix(node, in_shape).tocoo()
            rows, cols = m.row, m.col
        (user,) = g.users(r["ir_name"])
        alive = g.node(user).alive
        if alive is not None:
            keep = alive.reshape(-1)[rows]
            rows, cols = rows[keep], cols[keep]
        # synapses from removed or masked-out neurons are not part of the network
        keep = _source_live(g, src).reshape(-1)[cols]
        rows, cols = rows[keep], cols[keep]
        fan = np.bincount(cols, minlength=int(np.prod(in_shape)))
        brute = (res.values[src].reshape(T, B, -1) * fan).sum() / B
        assert r["sops"] == pytest.approx(brute), r["name"]
        assert r["synapses"] == len(cols)
        checked += 1
    assert checked >= 3
    removed = [r for r in e["layers"] if r["op"] == "neuron" and r["removed"]]
    assert removed          # the patch mask removed neurons: they are not updated
    for r in removed:
        assert r["neuron_updates"] == (r["neurons"]) * T < int(np.prod(r["out_shape"])) * T


def test_parse_firing_rates_forms(tmp_path):
    assert parse_firing_rates("0.1") == {"*": 0.1}
    assert parse_firing_rates("sn1=0.2, fc3 = 0.3,*=0.05") == {"sn1": 0.2, "fc3": 0.3, "*": 0.05}
    for bad in ("sn1", "sn1=high", "=0.1", ","):
        with pytest.raises(SnnCompileError) as err:
            parse_firing_rates(bad)
        assert err.value.exit_code == 2
    (tmp_path / "r.json").write_text('{"sn1": 0.2, "*": 0.1}')
    assert parse_firing_rates(str(tmp_path / "r.json")) == {"sn1": 0.2, "*": 0.1}
    with pytest.raises(SnnCompileError, match="cannot read"):
        parse_firing_rates(str(tmp_path / "missing.json"))
    # a report of an exact run: its measured rates drive the analytic mode to the same SOPs
    x = spikes_in(4, 3, 64, 0.3)
    g, _, exact = run(binary_linear(), (64,), x)
    (tmp_path / "report.json").write_text(json.dumps({"model": "m", "energy": exact}))
    rates = parse_firing_rates(str(tmp_path / "report.json"))
    again = estimate_energy(g, steps=4, firing_rates=rates).to_dict()
    assert again["variants"]["snn"]["sops"] == pytest.approx(exact["variants"]["snn"]["sops"])
    assert again["variants"]["snn"]["spikes"] == pytest.approx(exact["variants"]["snn"]["spikes"])


class _HostAndShortcut(nn.Module):
    """A max-pool of BN output (a host row) feeding IF neurons whose spikes also skip straight into
    the next neurons (a shortcut row)."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.MaxPool2d(3, 2, 1))
        self.sn1, self.sn2 = neuron.IFNode(v_threshold=0.3), neuron.IFNode(v_threshold=0.3)

    def forward(self, x):
        a = self.sn1(self.stem(x))
        return self.sn2(a + a)


def test_every_row_kind_names_its_module_path_and_keeps_its_ir_node():
    from snncompile.energy.report import HostRow, ShortcutRow
    from snncompile.ir.labels import labels
    torch.manual_seed(8)
    g = trace_model(_HostAndShortcut().eval(), (1, 8, 8)).graph
    x = np.random.default_rng(8).random((3, 2, 1, 8, 8)) * 4
    report = estimate_energy(g, steps=3, values=simulate(g, x, keep_values=True).values)
    names = labels(g)
    kinds = {type(r) for r in report.layers}
    assert {HostRow, ShortcutRow} <= kinds
    for r in report.layers:
        ir = r.ir_name.split("→")                         # a shortcut joins two IR nodes
        assert all(n in names for n in ir) and r.to_dict()["ir_name"] == r.ir_name
        assert r.name == "→".join(names[n] for n in ir)
    host = next(r for r in report.layers if isinstance(r, HostRow))
    assert host.name == "stem.2" and host.ir_name != host.name
