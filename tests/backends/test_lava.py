"""Lava (floating_pt CPU) spikes equal PyTorch's, layer by layer, on every covered network."""

import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch
from equivalence import assert_backend_matches, assert_same_spikes, run_all
from nets import CASES as NETWORK_CASES
from nets import (
    binary_spike_inputs,
    exact_threshold_net,
    snntorch_soft_reset_net,
)
from torch import nn

from backends.lava import compat, run_lava
from snncompile.errors import SnnCompileError
from snncompile.netlist import NeuronPopulation, OrPopulation, ProductPopulation
from snncompile.sim import simulate

CASES = dict(NETWORK_CASES)
for _reset in (0.0, -0.5, None):
    for _model, _di in (("if", True), ("lif", True), ("lif", False), ("plif", False)):
        CASES[f"exact_{_model}_{_di}_{_reset}"] = (
            lambda r=_reset, m=_model, d=_di: exact_threshold_net(r, m, d), (8,),
            lambda: binary_spike_inputs(8, 12, (8,), seed=4))


@pytest.mark.lava
@pytest.mark.parametrize("emit", ["fused", "stock"])
@pytest.mark.parametrize("case", ["conv_s", "conv_m", "seq_container", "residual", "readout"])
def test_lava_matches_torch(case, emit):
    make, shape, inputs = CASES[case]
    x = inputs()
    runs = run_all(make(), x, shape)
    lava = run_lava(runs.plan, x, timeout_s=300, emit=emit)
    out = dict(lava.spikes)
    if lava.output is not None:
        from snncompile.netlist import OUTPUT

        out[OUTPUT] = lava.output
    assert_backend_matches(runs, out)
    # OR populations (max-pool) equal the reference simulator's pooled spikes
    ref = simulate(runs.trace.graph, x, keep_values=True)
    for name, pop in runs.plan.populations.items():
        if isinstance(pop, OrPopulation):
            np.testing.assert_array_equal(lava.spikes[name].reshape(ref.values[name].shape), ref.values[name])


class _Branches(nn.Module):
    """Independent networks side by side on one input, outputs concatenated: one Lava network
    (so one Lava start-up) checks every branch's populations at once."""

    def __init__(self, nets: list[nn.Module]) -> None:
        super().__init__()
        self.nets = nn.ModuleList(nets)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([n(x) for n in self.nets], dim=-1)


@pytest.fixture(scope="module")
def exact_options_runs():
    """The 12 exact-threshold networks (reset modes × neuron models × decay_input) as branches
    of one network, compiled once for both emissions."""
    names = [k for k in CASES if k.startswith("exact_")]
    assert len(names) == 12
    x = CASES[names[0]][2]()
    assert all(np.array_equal(CASES[n][2](), x) for n in names)  # one input feeds every branch
    runs = run_all(_Branches([CASES[n][0]() for n in names]).eval(), x, (8,))
    return runs, x


@pytest.mark.lava
@pytest.mark.parametrize("emit", ["fused", "stock"])
def test_lava_exact_thresholds_all_neuron_options(emit, exact_options_runs):
    """All reset modes × neuron models × decay_input, thresholds hit exactly: the 12 networks
    run as independent branches of one Lava network, every population spike for spike."""
    runs, x = exact_options_runs
    dyn = [p.params for p in runs.plan.populations.values() if isinstance(p, NeuronPopulation)]
    options = {(type(d).__name__, d.v_reset, getattr(d, "decay_input", None)) for d in dyn}
    assert len(dyn) == 24 and len(options) == 12, options   # every option keeps its own population
    assert len(runs.torch_spikes) == 24
    lava = run_lava(runs.plan, x, timeout_s=300, emit=emit)
    assert_same_spikes(runs.torch_spikes, lava.spikes, "exact thresholds:")


@pytest.mark.lava
@pytest.mark.parametrize("emit", ["fused", "stock"])
def test_lava_soft_reset_by_amount_matches_snntorch(emit):
    """A soft reset by ρ ≠ V_th (snnTorch's default subtract: ρ = θ/β) and by 0 ("none"),
    in float, equals snnTorch spike for spike."""
    pytest.importorskip("snntorch")
    x = binary_spike_inputs(10, 12, (8,), seed=5)
    runs = run_all(snntorch_soft_reset_net(), x, (8,))
    assert sorted(p.params.reset_by for p in runs.plan.populations.values() if isinstance(p, NeuronPopulation)) == [0.0, 2.0]
    lava = run_lava(runs.plan, x, timeout_s=300, emit=emit)
    assert_backend_matches(runs, dict(lava.spikes))


@pytest.mark.lava
def test_lava_timeout_kills_the_run():
    make, shape, inputs = CASES["conv_s"]
    runs = run_all(make(), inputs(), shape)
    with pytest.raises(SnnCompileError, match="did not finish within"):
        run_lava(runs.plan, inputs(), timeout_s=0.5)


def test_compat_patch_rewrites_mutable_defaults():
    src = textwrap.dedent("""\
        from __future__ import annotations
        from dataclasses import dataclass
        @dataclass
        class A:
            x: ByteEncoder = ByteEncoder()
            n: int = 3
        """)
    out = compat.patch_source(src)
    assert "x: ByteEncoder = field(default_factory=ByteEncoder)" in out
    assert "n: int = 3" in out
    assert out.splitlines()[0] == "from __future__ import annotations"
    assert "from dataclasses import field" in out


@pytest.mark.parametrize("hook", [False, True])
def test_lava_imports_only_with_hook(hook):
    code = ("from backends.lava import compat; compat.install()\n" if hook else "") + \
        "import lava.magma.compiler.var_model\nfrom lava.proc.lif.process import LIF\nprint('imported')"
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=str(__import__("pathlib").Path(__file__).resolve().parents[2]))
    if hook:
        assert res.returncode == 0 and "imported" in res.stdout, res.stderr[-500:]
    else:  # on Python 3.11 the unpatched module fails exactly as the hook's docstring says
        assert res.returncode != 0
        assert "mutable default" in res.stderr and "ByteEncoder" in res.stderr


@pytest.mark.lava
@pytest.mark.parametrize("which", ["spikformer", "sdsa"])
def test_lava_attention_matches_torch(which):
    """SSA / SDSA products run in the SpikeMatMul process, spike for spike (all passes on)."""
    from equivalence import assert_equivalent_after_each
    from nets import SDSANet, spikformer_net

    from snncompile.compare import spike_agreement
    from snncompile.lower import lower

    if which == "spikformer":
        model, shape = spikformer_net(), (1, 8, 8)
        x = np.random.default_rng(7).random((4, 6, 1, 8, 8))
    else:
        model, shape = SDSANet(), (5, 8)
        x = binary_spike_inputs(6, 7, (5, 8), p=0.4, seed=3)
    runs = run_all(model, x, shape)
    g, _ = assert_equivalent_after_each(runs, x)
    plan = lower(g)
    assert any(isinstance(p, ProductPopulation) for p in plan.populations.values())
    lava = run_lava(plan, x, timeout_s=300)
    full = {n: plan.populations[n].expand(lava.spikes[n]) for n in runs.torch_spikes}
    keep = {n: g.node(n).alive for n in full if g.node(n).alive is not None}
    agree, per_layer = spike_agreement(runs.torch_spikes, full, keep)
    assert agree == 1.0, per_layer
    if lava.output is not None:
        np.testing.assert_allclose(lava.output.mean(0), runs.torch_output, atol=1e-9)


@pytest.mark.lava
def test_reference_style_spikformer_on_lava_float_and_fixed():
    """The paper's SSA form — multi-head reshapes/permutes, ``(q @ kᵀ) * scale @ v``, SPS
    stem with relative-position residual — lowers, runs spike for spike in float and bit for
    bit against the integer reference in fixed point."""
    import sys
    from pathlib import Path

    import torch
    from equivalence import assert_equivalent_after_each
    from nets import randomize_bn

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "energy"))
    from spikformer import Spikformer

    from snncompile.compare import spike_agreement
    from snncompile.fixedpoint.quantize import quantize_plan
    from snncompile.lower import lower
    from snncompile.sim.integer import simulate_int

    torch.manual_seed(0)
    m = Spikformer(1, 32, 10, imagenet=False, heads=2, in_channels=1)
    with torch.no_grad():
        for mod in m.modules():
            if isinstance(mod, (torch.nn.Conv2d, torch.nn.Linear)):
                mod.weight.mul_(8.0)
    m.blocks[0].attn.attn_lif.v_threshold = 0.05
    randomize_bn(m)
    x = np.random.default_rng(0).random((4, 3, 1, 16, 16))
    runs = run_all(m, x, (1, 16, 16))
    assert all(s.any() for s in runs.torch_spikes.values())
    g, _ = assert_equivalent_after_each(runs, x)
    plan = lower(g)
    assert sorted(o.scale for p in plan.populations.values() if isinstance(p, ProductPopulation)
                  for o in p.operands) == [0.125, 1, 1, 1]
    lava = run_lava(plan, x, timeout_s=300)
    full = {n: plan.populations[n].expand(lava.spikes[n]) for n in runs.torch_spikes}
    keep = {n: g.node(n).alive for n in full if g.node(n).alive is not None}
    assert spike_agreement(runs.torch_spikes, full, keep)[0] == 1.0
    q, _ = quantize_plan(plan, x)
    ints, fixed = simulate_int(q, x), run_lava(q, x, timeout_s=300)
    for name, s in fixed.spikes.items():
        np.testing.assert_array_equal(s, ints[name], err_msg=name)
