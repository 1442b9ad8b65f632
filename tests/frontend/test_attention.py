"""Spiking self-attention: Spikformer's SSA (spike matmuls) and the Spike-driven
Transformer's Hadamard form trace to MatMul nodes and simulate exactly like PyTorch."""

import numpy as np
from equivalence import assert_backend_matches, assert_equivalent_after_each, run_all
from nets import SDSANet, binary_spike_inputs, spikformer_net

from snncompile.ir import BatchNorm, MatMul, Reduce, Transpose
from snncompile.lower import lower
from snncompile.netlist import ProductPopulation
from snncompile.sim.netlist import simulate_netlist


def test_spikformer_traces_ssa_and_matches_torch():
    x = np.random.default_rng(0).random((4, 5, 1, 8, 8))
    runs = run_all(spikformer_net(), x, (1, 8, 8))
    g = runs.trace.graph
    mm = [g.node(n) for n in g.of_type(MatMul)]
    assert [(m.mode, m.shape) for m in mm] == [("matmul", (16, 16)), ("matmul", (16, 32))]
    assert g.of_type(Reduce) and g.output_time_reduced
    assert all(s.any() for s in runs.ref_spikes.values()), "a layer never fired: vacuous test"
    for name, s in runs.torch_spikes.items():
        np.testing.assert_array_equal(runs.ref_spikes[name], s, err_msg=name)


def test_spikformer_passes_fold_transposed_bn_and_stay_equivalent():
    x = np.random.default_rng(1).random((4, 5, 1, 8, 8))
    runs = run_all(spikformer_net(), x, (1, 8, 8))
    g, stats = assert_equivalent_after_each(runs, x)
    assert not g.of_type(BatchNorm)
    # every Linear→T→BN→T chain folded: only the token transpose of the patch embedding and
    # the Kᵀ of the attention remain
    assert len(g.of_type(Transpose)) == 2
    assert stats["mask_patches"].neurons_removed == 4 * 32  # 4 masked tokens × 32 OR channels
    plan = lower(g)
    assert sum(isinstance(p, ProductPopulation) for p in plan.populations.values()) == 2
    out = simulate_netlist(plan, x)
    full = {n: plan.populations[n].expand(out[n]) for n in runs.torch_spikes}
    for n, s in runs.torch_spikes.items():
        keep = g.node(n).alive
        sel = (slice(None), slice(None)) if keep is None else (slice(None), slice(None), keep.ravel())
        np.testing.assert_array_equal(full[n].reshape(5 * 4, -1).reshape(4, 5, -1)[sel],
                                      s.reshape(4, 5, -1)[sel], err_msg=n)


def test_hadamard_attention_matches_torch():
    x = binary_spike_inputs(6, 7, (5, 8), p=0.4, seed=3)
    runs = run_all(SDSANet(), x, (5, 8))
    g = runs.trace.graph
    assert [g.node(n).mode for n in g.of_type(MatMul)] == ["hadamard", "hadamard"]
    assert all(s.any() for s in runs.ref_spikes.values())
    for name, s in runs.torch_spikes.items():
        np.testing.assert_array_equal(runs.ref_spikes[name], s, err_msg=name)
    assert_backend_matches(runs, simulate_netlist(runs.plan, x))
