"""Real model families as their authors write them (spikingjelly 2.0's zoo, and our own
definitions following the published Spikformer, Spike-driven Transformer and Kim et al.
lottery-ticket code), pruned to 90 %: each compiles as written, simulates spike for spike
like PyTorch, counts what an independent count gives, and runs on Lava."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from corpus.families import RAW, build
from corpus.tickets import images
from equivalence import (
    Runs,
    assert_compiled_matches,
    assert_equivalent_after_each,
    assert_same_spikes,
    run_all,
)
from torch import nn

from snncompile.compare import predictions
from snncompile.energy import estimate_energy
from snncompile.errors import SnnCompileError
from snncompile.frontend import trace_model
from snncompile.lower import lower
from snncompile.netlist import OUTPUT
from snncompile.passes import run_passes
from snncompile.sim import run_torch, simulate

FAMILIES = sorted(RAW)
CONVENTION = {   # how each family is called (frontend.timefold)
    "spikformer": "static-m", "spike-driven-transformer": "static-m", "kim-vgg": "loop", "kim-resnet": "loop",
    "snntorch-tutorial": "loop", "snntorch-conv": "s", "hand-lif": "s", "snntorch-events": "loop-in",
    "dvs-vgg-batch-first": "m-bf",
}
_CACHE: dict[str, nn.Module] = {}


def model_of(name: str) -> nn.Module:
    if name not in _CACHE:
        _CACHE[name] = build(name)
    return _CACHE[name]


def inputs(name: str, n: int = 4, seed: int = 7) -> tuple[np.ndarray, int]:
    fam = RAW[name]
    tr = trace_model(model_of(name), fam.shape)
    T = tr.graph.model_steps or fam.steps
    return np.broadcast_to(images(n, fam.shape, seed=seed)[None], (T, n, *fam.shape)), T


def source_runs(name: str, x: np.ndarray) -> Runs:
    """PyTorch and the reference simulator on the traced graph (no lowering)."""
    model = model_of(name)
    tr = trace_model(model, RAW[name].shape)
    tor = run_torch(model, x, tr.step_mode, list(tr.neuron_sources.values()), tr.graph.output_time_reduced,
                    output_steps=tr.graph.output_steps)
    ref = simulate(tr.graph, x)
    spikes = {n: tor.spikes[p] for n, p in tr.neuron_sources.items()}
    return Runs(tr, None, spikes, tor.output, ref.spikes, ref.output)


@pytest.mark.parametrize("name", FAMILIES)
def test_compiles_as_written_and_matches_pytorch_spike_for_spike(name):
    x, T = inputs(name)
    runs = source_runs(name, x)
    assert runs.trace.step_mode == CONVENTION.get(name, "m")
    assert_same_spikes(runs.torch_spikes, runs.ref_spikes, f"{name} reference vs PyTorch:")
    rates = [s.mean() for s in runs.torch_spikes.values()]
    assert np.mean(rates) > 0.05, "the ticket is silent: the test would prove little"
    reduced = runs.trace.graph.output_time_reduced
    np.testing.assert_array_equal(predictions(runs.ref_output), predictions(runs.torch_output, reduced))
    assert_equivalent_after_each(runs, x)   # every pass keeps every surviving neuron's spikes


@pytest.mark.parametrize("name", [n for n in FAMILIES if RAW[n].pools_values])
def test_max_pool_of_values_is_a_priced_host_partition_and_no_host_names_the_layer(name):
    x, T = inputs(name, n=2)
    graph, _ = run_passes(trace_model(model_of(name), RAW[name].shape).graph)
    energy = estimate_energy(graph, steps=T, values=simulate(graph, x, keep_values=True).values).to_dict()
    assert energy["variants"]["snn"]["sops"] > 0
    assert any(r.get("off_core") and r["op"] == "host:maxpool" for r in energy["layers"])
    from snncompile.ir.host import MaxPool
    from snncompile.netlist import host_populations

    assert any(isinstance(p.fn, MaxPool) for p in host_populations(lower(graph)))   # a host partition
    with pytest.raises(SnnCompileError, match=r"max pooling at `[\w.]+` \(MaxPool2d\) reads real values") as e:
        lower(graph, host=False)   # the cores alone cannot
    assert "after the spiking neuron" in e.value.hint and "--target energy" in e.value.hint


# -- independent counts ---------------------------------------------------------------------------

def hook_counts(model: nn.Module, x: np.ndarray, step_mode: str, output_steps: bool) -> dict[str, dict]:
    """Per synaptic module of the PyTorch model, from what it received in a float64 run:
    dense MACs of one evaluation (one step, one sample), and Σ over its calls of input ×
    nonzero fan-out per sample (SOPs when the input is spikes or spike counts)."""
    out: dict[str, dict] = {}
    modules = {p: m for p, m in model.named_modules() if isinstance(m, (nn.Conv1d, nn.Conv2d, nn.Linear))}
    T, B = x.shape[:2]

    def hook(path: str, m: nn.Module):
        def fn(_m, inp, res):
            xin = inp[0].detach()
            nz = (m.weight != 0).to(xin.dtype)
            # samples × steps in this call: [T, B, ...], [T·B, ...] or [B, ...]
            lead = T * B if res.shape[:2] == (T, B) or res.shape[0] == T * B else B
            fan_in = m.in_features if isinstance(m, nn.Linear) else nz[0].numel()
            if isinstance(m, nn.Linear):
                fan = F.linear(xin, nz)
            else:
                conv = F.conv1d if isinstance(m, nn.Conv1d) else F.conv2d
                fan = conv(xin.reshape(-1, *xin.shape[-(nz.dim() - 1):]), nz, None, m.stride, m.padding,
                           m.dilation, m.groups)
            row = out.setdefault(path, {"sops": 0.0, "macs": set(), "binary": True})
            # a layer applied to the mean over time (a head after x.mean(0)) runs once where the
            # compiled network runs every step: Σ_t x_t · fan-out = T · mean · fan-out
            per_step = T if lead == B and step_mode in ("m", "static-m") else 1
            row["sops"] += float(fan.sum()) * per_step / B
            row["macs"].add(res.numel() // lead * fan_in)    # one sample, one step
            row["binary"] &= bool(torch.all((xin == 0) | (xin == 1)))
        return fn

    handles = [m.register_forward_hook(hook(p, m)) for p, m in modules.items()]
    try:
        run_torch(model, x, step_mode, [], output_steps=output_steps)
    finally:
        for h in handles:
            h.remove()
    for row in out.values():
        (row["macs"],) = row["macs"]
    return out


@pytest.mark.parametrize("name", FAMILIES)
def test_counts_equal_independent_counts(name):
    x, T = inputs(name)
    model = model_of(name)
    tr = trace_model(model, RAW[name].shape)
    theirs = hook_counts(model, x, tr.step_mode, tr.graph.output_steps)
    # no neuron removed: the hooks see every synapse of the source model
    graph, _ = run_passes(tr.graph, ["fold_batchnorm", "prune_synapses"])
    res = simulate(graph, x, keep_values=True)
    energy = estimate_energy(graph, steps=T, values=res.values).to_dict()
    rows = [r for r in energy["layers"] if r["op"] in ("conv2d", "linear")]
    assert {r["source"] for r in rows} == set(theirs), "every synaptic module is a layer of the report"
    for r in rows:
        h = theirs[r["source"]]
        assert r["macs"] == h["macs"], f"{r['source']}: MACs {r['macs']} vs {h['macs']}"
        if r["input"] == "spikes":
            assert r["sops"] == pytest.approx(h["sops"], rel=1e-12), f"{r['source']}: SOPs"
        else:
            assert not h["binary"] or r["source"] == rows[0]["source"], f"{r['source']} reads spikes, priced as MACs"
    # synapses: the report's per-layer count is the lowered network's, unrolled one projection at a time
    optimized, _ = run_passes(tr.graph)
    if RAW[name].pools_values:
        # lowered since issue 24 (its max-pool of real values is a host partition), but the energy
        # table's synapses of a conv feeding that pool and another path are not yet the lowering's
        return
    net = lower(optimized)
    table = {r["ir_name"]: r["synapses"]   # IR names (rows show module paths)
             for r in estimate_energy(optimized, steps=T).to_dict()["layers"]}
    # residual shortcuts and relay inputs (no layer on the path): a row each, as many synapses
    for proj in net.projections:
        if not proj.layers and proj.dst != OUTPUT:   # (the readout is read by the host)
            key = f"{proj.src}→{proj.dst}"
            assert table[key] == int(proj.matrix().nnz), f"shortcut {key}"
    lowered: dict[str, int] = {}
    for proj in net.projections:
        if len(proj.layers) == 1 and len(proj.chains) == 1 and proj.chains[0].unique_paths:
            if all(type(n).__name__ in ("Reshape", "Transpose", "BatchNorm", "Scale", "Mask", "Slice",
                                        "Concat", "Conv2d", "Linear") for n in proj.chains[0].nodes):
                lowered[proj.layers[0]] = lowered.get(proj.layers[0], 0) + int(proj.matrix().nnz)
    assert lowered, "no projection compared"
    for layer, nnz in lowered.items():
        assert table[layer] == nnz, f"{layer}: energy table {table[layer]} synapses, lowered network {nnz}"


# -- Lava -------------------------------------------------------------------------------------------

@pytest.mark.lava
@pytest.mark.parametrize("name", [n for n in FAMILIES if RAW[n].lava])
def test_lava_spike_for_spike(name):
    from backends.lava import run_lava

    x, T = inputs(name, n=2)
    runs = run_all(model_of(name), x, RAW[name].shape)
    graph, _ = run_passes(runs.trace.graph)
    net = lower(graph)
    try:
        run = run_lava(net, x, timeout_s=600, emit="fused")
    except Exception as exc:   # a family Lava cannot run must say why, naming the layer
        pytest.fail(f"{name}: {exc}")
    out = dict(run.spikes)
    if run.output is not None:
        out[OUTPUT] = run.output
    assert_compiled_matches(runs, graph, net, x, out)
