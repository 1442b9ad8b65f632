"""The estimator reads the lowering's decisions: synapses per layer between kept neurons,
shortcut projections, OR targets. Checked against the netlist and the IR's own sweep."""

import numpy as np
import torch
from nets import SDSANet, TicketNet, spikformer_net

from snncompile.energy import estimate_energy
from snncompile.energy.structure import Layers, SweepStructure, layers_of
from snncompile.frontend import trace_model
from snncompile.ir import Conv2d, Linear
from snncompile.lower import lower
from snncompile.netlist import OUTPUT
from snncompile.passes import run_passes


def _graphs():
    torch.manual_seed(0)
    yield run_passes(trace_model(TicketNet().eval(), (1, 8, 8)).graph)[0]
    yield run_passes(trace_model(spikformer_net().eval(), (1, 8, 8)).graph)[0]
    yield run_passes(trace_model(SDSANet().eval(), (5, 8)).graph)[0]


def test_layer_synapses_from_the_netlist_equal_the_ir_sweep():
    for g in _graphs():
        net, sweep = layers_of(g), SweepStructure(g)
        assert net.net is not None
        for name in g.topo():
            if isinstance(g.node(name), (Conv2d, Linear)):
                assert net.synapses(name) == sweep.synapses(name), name
                assert np.array_equal(net.reaching(name), sweep.reaching(name)), name
                assert net.role(name) == sweep.role(name), name


def test_shortcut_rows_are_the_lowered_projections_one_synapse_per_pair():
    g = next(g for g in _graphs() if "kv_lif" in g.nx)   # Σ over tokens of k ⊙ v into kv_lif
    rows = {r.name: r for r in estimate_energy(g, steps=4, firing_rates={"*": 0.1}).layers if r.op == "shortcut"}
    lowered = {f"{p.src}→{p.dst}": p.synapses for p in lower(g).projections
               if not p.layers and p.dst != OUTPUT and p.src != "input"}
    assert {n: r.synapses for n, r in rows.items()} == lowered
    assert rows["hadamard→kv_lif"].synapses == 5 * 8   # 5 tokens into each of 8 neurons: 40 pairs


def test_a_given_netlist_gives_the_same_report_and_a_refused_graph_is_swept():
    g = next(_graphs())
    assert estimate_energy(g, steps=4, net=lower(g)).to_dict() == estimate_energy(g, steps=4).to_dict()
    assert isinstance(Layers(g, None).sweep, SweepStructure) and Layers(g, None).shortcuts() == []
