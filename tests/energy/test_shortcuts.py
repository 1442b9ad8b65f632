"""Residual shortcuts of spikes straight into neurons are weight-1 synapses: the energy table
counts them as the lowered network has them (one per joined pair) and one SOP per spike."""

import numpy as np
import torch
from spikingjelly.activation_based import neuron
from torch import nn

from snncompile.energy import estimate_energy
from snncompile.frontend import trace_model
from snncompile.lower import lower
from snncompile.netlist import OUTPUT
from snncompile.passes import run_passes
from snncompile.sim import simulate


class Shortcut(nn.Module):
    def __init__(self, twice: bool) -> None:
        super().__init__()
        self.twice = twice
        self.fc0, self.s1 = nn.Linear(8, 16), neuron.IFNode(v_threshold=0.3)
        self.fc, self.s2 = nn.Linear(8, 16), neuron.IFNode(v_threshold=0.3)
        self.out = nn.Linear(16, 3)

    def forward(self, x):
        a = self.s1(self.fc0(x))
        return self.out(self.s2(a + a if self.twice else self.fc(x) + a))


def test_shortcut_rows_equal_the_lowered_projections_and_the_spikes_they_carry():
    for twice in (False, True):
        torch.manual_seed(0)
        g, _ = run_passes(trace_model(Shortcut(twice).double().eval(), (8,)).graph)
        x = np.random.default_rng(0).random((4, 5, 8))
        res = simulate(g, x, keep_values=True)
        rows = {r["name"]: r for r in estimate_energy(g, steps=4, values=res.values).to_dict()["layers"]}
        lowered = {(p.src, p.dst): int(p.matrix().nnz) for p in lower(g).projections
                   if p.dst != OUTPUT and not p.layers}
        assert lowered == {("s1", "s2"): 16}
        row = rows["s1→s2"]
        assert row["op"] == "shortcut" and row["synapses"] == 16 and row["macs"] == 0
        assert row["sops"] == np.asarray(res.spikes["s1"]).sum() / 5   # one event per spike (a + a: weight 2)
        assert row["energy_pj"]["snn"] > 0 and row["energy_pj"]["ann"] is None
