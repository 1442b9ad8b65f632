"""The pass manager: passes ordered by the facts they require and ensure, IR → IR.

Passes never lower the network. The pass table's synapse and neuron deltas come from the
closed-form per-layer counts of :mod:`snncompile.ir.counting` (live neurons on both
sides, conv positions and padding exact), computed before and after each pass that may
change them: a count a pass declares it keeps (``Pass.keeps``) is carried over, since the
live-synapse count is a whole-graph sweep (seconds on a paper-size model). With IR
verification on (tests, ``--check``) every declaration is checked by recounting.
"""

from __future__ import annotations

import os
from collections.abc import Callable

import networkx as nx

from snncompile.errors import EXIT_USAGE, SnnCompileError
from snncompile.ir import IRGraph
from snncompile.ir.counting import neuron_total, synapse_total
from snncompile.passes.base import COUNT_NAMES, FACTS, Pass, PassResult, PassStats
from snncompile.passes.binarize import binarize
from snncompile.passes.dead_neurons import dead_neurons
from snncompile.passes.fold_batchnorm import fold_batchnorm, folding_keeps
from snncompile.passes.fuse_convpep import fuse_convpep, fusing_keeps
from snncompile.passes.mask_patches import mask_patches
from snncompile.passes.prune_synapses import prune_synapses

_ALL = (
    Pass("fold_batchnorm", fold_batchnorm, ensures=("batchnorm_folded",), keeps=folding_keeps),
    Pass("fuse_convpep", fuse_convpep, ensures=("stem_fused",), keeps=fusing_keeps),
    # α is read from the weights: BatchNorm scales must be in them already
    Pass("binarize", binarize, requires=("batchnorm_folded", "stem_fused"), ensures=("binary_marked",),
         keeps=("synapses", "neurons")),   # sign(w): the same stored synapses, no neuron touched
    Pass("mask_patches", mask_patches, ensures=("patches_masked",)),
    Pass("prune_synapses", prune_synapses, requires=("batchnorm_folded",), ensures=("synapses_pruned",)),
    # the cascade must start from every removal the other passes make
    Pass("dead_neurons", dead_neurons, requires=("patches_masked", "synapses_pruned"),
         ensures=("dead_neurons_removed",)),
)
PASSES: dict[str, Pass] = {p.name: p for p in _ALL}

# Verify the IR before the first pass and after each one (``IRGraph.verify``) when a caller
# does not say: on under the test suite (tests/conftest.py sets the variable), off otherwise.
VERIFY_ENV = "SNNCOMPILE_VERIFY_IR"


def verify_by_default() -> bool:
    return os.environ.get(VERIFY_ENV, "") not in ("", "0")


def order_passes(names: list[str]) -> list[str]:
    """``names`` in an order where every pass runs after the selected passes that ensure
    what it requires; ties keep the registration order. A cycle is a bug."""
    dep = nx.DiGraph()
    dep.add_nodes_from(names)
    for a in names:
        for b in names:
            if a != b and set(PASSES[a].ensures) & set(PASSES[b].requires):
                dep.add_edge(a, b)
    rank = {n: i for i, n in enumerate(PASSES)}
    try:
        return list(nx.lexicographical_topological_sort(dep, key=rank.__getitem__))
    except nx.NetworkXUnfeasible:  # pragma: no cover - declarations are checked by a test
        raise RuntimeError(f"pass requirements form a cycle among {names}") from None


DEFAULT = tuple(order_passes(list(PASSES)))


def parse_passes(spec: str | None, disabled: bool = False) -> list[str]:
    if disabled:
        if spec is not None:
            raise SnnCompileError("--passes and --no-passes contradict each other",
                                  "give one of them", EXIT_USAGE)
        return []
    if spec is None:
        return list(DEFAULT)
    names = [s.strip() for s in spec.split(",") if s.strip()]
    unknown = [n for n in names if n not in PASSES]
    if unknown:
        raise SnnCompileError(f"unknown pass(es): {', '.join(unknown)}",
                              f"choose from {', '.join(PASSES)}", EXIT_USAGE)
    return order_passes(list(dict.fromkeys(names)))  # the dependency order, whatever was typed


COUNTS: dict[str, Callable[[IRGraph], int]] = {"synapses": synapse_total, "neurons": neuron_total}
assert tuple(COUNTS) == COUNT_NAMES


def run_passes(graph: IRGraph, names: list[str] | None = None,
               after_each: Callable[[str, IRGraph], None] | None = None,
               copy: bool = True, verify: bool | None = None) -> tuple[IRGraph, list[PassStats]]:
    """Run ``names`` (default: all) in dependency order on ``graph`` (on a copy unless
    ``copy=False``). Each pass's stats gain the change in live synapses and kept neurons.
    ``after_each(name, graph)`` is called after every pass (tests check equivalence there).
    ``verify`` (default: :func:`verify_by_default`): verify the IR first and after each pass,
    and every pass's declaration of the counts it keeps; the error names the pass after
    which the graph broke.
    """
    g = graph.copy() if copy else graph
    verify = verify_by_default() if verify is None else verify
    if verify:
        g.verify("the frontend (before any pass)")
    results = []
    counts: dict[str, int] = {}   # the counts of the graph as it is now, computed when first needed
    for name in order_passes(list(names) if names is not None else list(DEFAULT)):
        keeps = set(PASSES[name].kept(g))
        for c in COUNT_NAMES:   # a count the pass may change: needed before it runs
            if c not in counts and (c not in keeps or verify):
                counts[c] = COUNTS[c](g)
        result: PassResult = PASSES[name](g)
        for fact in PASSES[name].ensures:
            if not FACTS[fact](g):  # pragma: no cover - a pass that breaks its promise is a bug
                raise RuntimeError(f"pass {name} did not establish {fact!r}")
        counts = _counts_after(name, g, result, counts, keeps, verify)
        results.append(result.stats)
        if verify:
            g.verify(f"pass {name}")
        if after_each is not None:
            after_each(name, g)
    return g, results


def _counts_after(name: str, g: IRGraph, result: PassResult, before: dict[str, int], keeps: set[str],
                  verify: bool) -> dict[str, int]:
    """The counts after pass ``name`` (an unmodified graph, or a count the pass keeps, is
    carried over), with the pass's stats set from the change."""
    after = dict(before)
    if result.modified:
        for c in COUNT_NAMES:
            if c in before and (c not in keeps or verify):
                after[c] = COUNTS[c](g)
                if c in keeps and after[c] != before[c]:   # pragma: no cover - a wrong declaration is a bug
                    raise RuntimeError(f"pass {name} declares it keeps the {c} count, but it changed "
                                       f"{before[c]:,} → {after[c]:,}")
    if "synapses" in before:
        result.stats.synapses_removed = before["synapses"] - after["synapses"]
    if "neurons" in before:
        result.stats.neurons_removed = max(result.stats.neurons_removed, before["neurons"] - after["neurons"])
    return after
