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
