"""The pass manager orders passes by their declared facts and checks what they ensure."""

from __future__ import annotations

import numpy as np
import pytest

from snncompile.errors import SnnCompileError
from snncompile.passes import DEFAULT, FACTS, PASSES, order_passes, parse_passes, run_passes


def test_declared_facts_exist_and_default_order_respects_them():
    for p in PASSES.values():
        assert set(p.ensures) <= set(FACTS), p.name
        assert set(p.requires) <= set(FACTS), p.name
    for i, name in enumerate(DEFAULT):
        for later in DEFAULT[i + 1:]:  # nothing after a pass ensures what it requires
            assert not set(PASSES[later].ensures) & set(PASSES[name].requires), (name, later)


def test_typed_order_is_replaced_by_the_dependency_order():
    assert parse_passes("dead_neurons,prune_synapses,mask_patches") == \
        ["mask_patches", "prune_synapses", "dead_neurons"]
    assert order_passes(["binarize", "fold_batchnorm"]) == ["fold_batchnorm", "binarize"]


def test_contradicting_flags_and_unknown_passes():
    with pytest.raises(SnnCompileError, match="contradict"):
        parse_passes("binarize", disabled=True)
    with pytest.raises(SnnCompileError, match="unknown pass"):
        parse_passes("binarize,quantum")


def test_passes_return_results_and_establish_their_facts():
    from nets import conv_net

    from snncompile.frontend import trace_model

    g = trace_model(conv_net("s"), (1, 8, 8)).graph
    for _, node in g.items():  # a ticket: zeros the prune pass must drop
        w = getattr(node, "weight", None)
        if isinstance(w, np.ndarray) and w.ndim > 1:
            node.weight = np.where(np.random.default_rng(0).random(w.shape) < 0.8, 0.0, w)
    seen = []
    out, stats = run_passes(g, None, after_each=lambda name, graph: seen.append(set(graph.facts)))
    assert [s.name for s in stats] == list(DEFAULT) == out.passes
    assert all(FACTS[f](out) for f in out.facts)
    for name, facts in zip(DEFAULT, seen):
        assert set(PASSES[name].ensures) <= facts
    assert not g.facts, "run_passes works on a copy by default"
    result = PASSES["prune_synapses"](g)
    assert result.graph is g and result.modified and result.stats.name == "prune_synapses"


def _ticket(zero_scale: bool):
    """conv_net traced, 80 % of its weights zeroed (a ticket), optionally with a BatchNorm
    channel of scale 0 (folding then writes zeros into weights: the synapse count changes)."""
    from nets import conv_net

    from snncompile.frontend import trace_model
    from snncompile.ir import BatchNorm

    g = trace_model(conv_net("s"), (1, 8, 8)).graph
    for _, node in g.items():
        w = getattr(node, "weight", None)
        if isinstance(w, np.ndarray) and w.ndim > 1:
            node.weight = np.where(np.random.default_rng(0).random(w.shape) < 0.8, 0.0, w)
    if zero_scale:
        bn = g.node(g.of_type(BatchNorm)[0])
        bn.weight = np.where(np.arange(bn.weight.size) == 1, 0.0, bn.weight)
    return g


@pytest.mark.parametrize("zero_scale", [False, True])
def test_counts_a_pass_keeps_are_carried_over_and_equal_a_full_recount(monkeypatch, zero_scale):
    """Without verification, a pass that declares it keeps the live-synapse count (folding
    nonzero BatchNorm scales, binarizing) costs no sweep, and the dead-neuron pass reuses the
    manager's sweep of the same graph; the table is the one a recount after every pass gives
    (verification on recounts and checks each declaration)."""
    import snncompile.ir.structure as structure

    sweeps = []
    sweep = structure._sweep
    monkeypatch.setattr(structure, "_sweep", lambda g, mode: sweeps.append(mode) or sweep(g, mode))
    g = _ticket(zero_scale)
    names = ["fold_batchnorm", "fuse_convpep", "binarize", "prune_synapses", "dead_neurons"]
    _, fast = run_passes(g, names, verify=False)
    fast_sweeps, sweeps[:] = list(sweeps), []
    _, full = run_passes(g, names, verify=True)
    assert [s.to_dict() for s in fast] == [s.to_dict() for s in full]
    assert ("synapses" in PASSES["fold_batchnorm"].kept(g)) is not zero_scale
    # a max-pool of spikes becomes as many OR synapses: fusing keeps the count as folding does
    assert ("synapses" in PASSES["fuse_convpep"].kept(g)) is not zero_scale
    # after prune_synapses no stored synapse is zero: dead_neurons's "connect" rounds are the
    # manager's "pattern" sweeps of the same graphs (its last round's is the count after it)
    assert set(fast_sweeps) == {"pattern"}
    assert len(fast_sweeps) < len(sweeps) if not zero_scale else len(fast_sweeps) <= len(sweeps)
    assert any(s.synapses_removed for s in full) and any(s.neurons_removed for s in full)


def test_a_sweep_is_remembered_per_graph_state_and_shared_by_both_modes_once_pruned():
    from snncompile.ir import Conv2d
    from snncompile.ir.structure import liveness

    g = _ticket(False)
    stored_zeros = liveness(g, "connect")
    assert stored_zeros is not liveness(g) and liveness(g) is liveness(g)
    pruned, _ = run_passes(g, ["fold_batchnorm", "prune_synapses"], verify=False)
    live = liveness(pruned)
    assert liveness(pruned, "connect") is live
    node = pruned.node(pruned.of_type(Conv2d)[0])
    node.mask = np.array(node.mask)        # a new array: a new graph state, swept again
    assert liveness(pruned) is not live


def test_a_pass_that_changes_a_count_it_declares_kept_is_named(monkeypatch):
    from snncompile.ir import Conv2d
    from snncompile.passes.base import Pass, PassStats

    def cut_one(graph):
        node = graph.node(graph.of_type(Conv2d)[0])
        mask = np.array(node.mask)
        mask.flat[np.flatnonzero(mask)[0]] = False
        node.mask = mask
        return PassStats("cut_one", synapses_removed=1)

    monkeypatch.setitem(PASSES, "cut_one", Pass("cut_one", cut_one, keeps=("synapses",)))
    with pytest.raises(RuntimeError, match="pass cut_one declares it keeps the synapses count, but it changed"):
        run_passes(_ticket(False), ["cut_one"], verify=True)
