"""Property: the compiler's synapse, MAC, SOP and spike counts equal brute-force counts from
the PyTorch model (dense Jacobians of its layers, enumerated pooling windows, the values its
synaptic modules received in a float64 run)."""

from __future__ import annotations

import numpy as np
import torch
from hypothesis import assume, given, settings

from snncompile.api import lowering_summary
from snncompile.energy import estimate_energy
from snncompile.ir import Conv2d, Linear
from snncompile.ir.counting import layer_synapses
from snncompile.netlist import OUTPUT, host_populations
from snncompile.sim import simulate

from .netgen import NetSpec, net_specs
from .pipeline import Brute, Case, compile_case, fired, jacobian, kept, stage_names, window_matrix
from .profiles import budget


def _stage_of(source: str) -> tuple[int, str]:
    """(stage index, part) of an IR synaptic node from its module path: ("pre3.1") → (3, "syn"),
    ("head.0") → (0, "syn"), ("pool2") → (2, "or")."""
    head = source.split(".")[0]
    if head == "head":
        return 0, "syn"
    if head.startswith("pool"):
        return int(head[4:]), "or"
    return int(head[3:]), "syn"


def _or_window(spec: NetSpec, i: int) -> np.ndarray:
    """Window matrix of max-pool stage i."""
    s = spec.stages[i - 1]
    return window_matrix(spec.shape_of(s.src[0]), s.shape, s.kernel, s.stride, s.padding)


def expected_projection_synapses(case: Case, brute: Brute) -> dict[tuple[str, str], int]:
    """(source population, target) → (kept source, kept target) pairs joined by a nonzero
    effective weight, from the model's matrices."""
    spec, g = case.spec, case.graph
    names = stage_names(g)
    out: dict[tuple[str, str], int] = {}
    for i, s in enumerate(spec.stages, 1):
        rows = kept(g, names[i])
        for j in s.src:
            nz = brute.projection(i, j)
            out[(names[j], names[i])] = int(np.count_nonzero(nz[rows][:, kept(g, names[j])]))
    last = len(spec.stages)
    if spec.readout:
        for j in spec.readout.src:
            nz = brute.projection(0, j)
            out[(names[j], OUTPUT)] = int(np.count_nonzero(nz[:, kept(g, names[j])]))
    elif spec.stages[last - 1].mask:  # the output reads masked spikes: a value readout through the mask
        keep = np.broadcast_to(getattr(brute.m, f"keep{last}").numpy(), spec.stages[last - 1].shape).ravel()
        out[(names[last], OUTPUT)] = int(np.count_nonzero((keep != 0) & kept(g, names[last])))
    return out


def _all_ones(mod):
    """The module's map with every weight 1 (and no bias): its dense tap pattern."""
    ones = torch.ones_like(mod.weight.detach())
    if isinstance(mod, torch.nn.Conv2d):
        return lambda x: torch.nn.functional.conv2d(x, ones, stride=mod.stride, padding=mod.padding,
                                                    dilation=mod.dilation, groups=mod.groups)
    return lambda x: torch.nn.functional.linear(x, ones)


# ci: 100 examples, the budget in effect since this decorator sat on _all_ones by mistake
# (hypothesis' default), which keeps the run at ~75 s on 2 shared cores
@settings(max_examples=budget(ci=100, fuzz=800))
@given(spec=net_specs())
def test_counts_equal_brute_force(spec: NetSpec) -> None:
    """Netlist synapses per projection and in total, per-layer synapses, nonzero weights,
    MACs, exact SOPs and spikes of the energy report: all equal brute force."""
    case = compile_case(spec)
    assume(fired(case) > 0)
    # a max-pool of real values (a sum of spikes, masked spikes) is a host partition: the brute
    # force here models OR windows only; host counts are checked in tests/corpus/test_host_corpus.py
    assume(not host_populations(case.plan))
    g, plan, x = case.graph, case.plan, case.x
    T, N = x.shape[:2]
    brute = Brute(spec, case.model)
    names = stage_names(g)

    # netlist: every projection, its explicit matrix and the lowering total
    expected = expected_projection_synapses(case, brute)
    got = {(p.src, p.dst): p.nnz for p in plan.projections}
    for key in sorted(set(expected) | set(got)):
        assert got.get(key, 0) == expected.get(key, 0), f"synapses {key[0]} → {key[1]}: compiler " \
            f"{got.get(key, 0)}, brute force {expected.get(key, 0)}"
    for p in plan.projections:
        assert p.matrix().nnz == p.nnz, f"{p.src} → {p.dst}: explicit matrix has {p.matrix().nnz} " \
            f"entries, the count says {p.nnz}"
    assert lowering_summary(plan)["synapses"] == sum(expected.values())

    # per IR synaptic layer: live synapses (closed form), stored weights, MACs, SOPs
    values = simulate(g, x, keep_values=True).values
    energy = estimate_energy(g, steps=T, values=values).to_dict()
    rows = {r["ir_name"]: r for r in energy["layers"]}   # "name" is the module path
    closed = layer_synapses(g)
    rec = brute.record(x)
    for name, node in g.items():
        if not isinstance(node, (Conv2d, Linear)):
            continue
        i, part = _stage_of(node.source)
        row = rows[name]
        if part == "or":  # the synapses of a max-pool of spikes: its windows (depthwise)
            s = spec.stages[i - 1]
            m = _or_window(spec, i) != 0
            reached = np.zeros(m.shape[1], bool)
            for j in s.src:
                reached |= kept(g, names[j])
            reach = kept(g, names[i])  # OR neurons that reach nothing are removed too
            vals = rec.pool_in[i]
            nnz_w = spec.shape_of(s.src[0])[0] * s.kernel ** 2
            spiking = True
        else:
            m = brute.layer(i)
            reached = brute.reached_inputs(i, g, names)
            reach = kept(g, names[i]) if i else np.ones(m.shape[0], bool)
            vals = rec.syn_in[i]
            nnz_w = int(np.count_nonzero(brute.weights(i)))
            positions = int(np.prod(node.shape[1:])) if isinstance(node, Conv2d) else 1
            # MACs over kept outputs, without the taps on inputs from removed neurons (a padded
            # tap counts): removed neurons cost nothing in the ANN twin either
            w = brute.weights(i)
            pattern = jacobian(_all_ones(brute.synapse(i)), brute.synapse_in_shape(i)) != 0
            removed_in = ~(np.asarray(reached).reshape(-1) > 0)
            row_nnz = np.repeat(np.count_nonzero(w.reshape(w.shape[0], -1), axis=1), positions)
            fan_in = int(w[0].size)
            # a layer none of whose inputs is kept is a constant (its bias, folded downstream): no MACs
            live_in = float(not removed_in.all())
            assert row["macs"] == int(live_in * (reach * (fan_in - (pattern & removed_in).sum(axis=1))).sum()), \
                f"{name}: MACs"
            assert row["macs_sparse"] == int(live_in * (reach * (row_nnz - (m & removed_in).sum(axis=1))).sum()), \
                f"{name}: MACs of nonzero weights"
            stage = spec.stages[i - 1] if i else None
            spiking = 0 not in brute.sources(i) and not (stage and stage.avgpool)
        nz = m & reach[:, None]
        live = int((nz * reached[None, :]).sum())
        assert closed[name].synapses == live, f"{name}: closed-form synapses {closed[name].synapses}, brute {live}"
        assert row["synapses"] == live, f"{name}: energy-report synapses {row['synapses']}, brute {live}"
        assert row["weights_nnz"] == nnz_w, f"{name}: nonzero weights {row['weights_nnz']}, brute {nnz_w}"
        assert row["input"] == ("spikes" if spiking else "real"), f"{name}: input kind {row['input']}"
        if spiking:
            fan_out = nz.sum(axis=0)
            total = float(np.tensordot(vals.reshape(T, N, -1), fan_out, axes=([2], [0])).sum())
            assert abs(row["sops"] * N - total) <= 1e-9 * max(1.0, total), \
                f"{name}: SOPs per sample {row['sops']}, brute force {total / N} (Σ input × fan-out)"
        else:
            assert row["snn_macs"] == row["macs_sparse"] * T, f"{name}: SNN MACs {row['snn_macs']}"

    # spikes per neuron population (kept neurons), from PyTorch
    torch_spikes = case.runs.torch_spikes
    for i, s in enumerate(spec.stages, 1):
        name = names[i]
        row = rows[name]
        if s.kind == "maxpool":
            total = float(rec.pool_out[i][..., kept(g, name)].sum())
        else:
            total = float(torch_spikes[name].reshape(T, N, -1)[..., kept(g, name)].sum())
        assert row["neurons"] == int(kept(g, name).sum())
        assert abs(row["spikes"] * N - total) <= 1e-9 * max(1.0, total), \
            f"{name}: spikes per sample {row['spikes']}, PyTorch {total / N}"
