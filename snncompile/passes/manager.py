"""The pass manager: named passes in a fixed order, each graph → stats (in place on a copy)."""

from __future__ import annotations

from collections.abc import Callable

from snncompile.errors import EXIT_USAGE, SnnCompileError
from snncompile.ir import IRGraph
from snncompile.passes.base import PassStats, neuron_total
from snncompile.passes.binarize import binarize
from snncompile.passes.dead_neurons import dead_neurons
from snncompile.passes.fold_batchnorm import fold_batchnorm
from snncompile.passes.fuse_convpep import fuse_convpep
from snncompile.passes.mask_patches import mask_patches
from snncompile.passes.prune_synapses import prune_synapses

Pass = Callable[[IRGraph], PassStats]

# Order matters: BN must be folded before binary scales are read; patches are masked and
# zeros pruned before the dead-neuron analysis looks at what is left.
PASSES: dict[str, Pass] = {
    "fold_batchnorm": fold_batchnorm,
    "fuse_convpep": fuse_convpep,
    "binarize": binarize,
    "mask_patches": mask_patches,
    "prune_synapses": prune_synapses,
    "dead_neurons": dead_neurons,
}
DEFAULT = tuple(PASSES)


def live_synapses(graph: IRGraph) -> int:
    """Synapses of the lowered network (exact: positions, padding, removed neurons)."""
    from snncompile.lower.populations import plan_network

    try:
        plan = plan_network(graph, dense=not graph.meta.get("pruned", False))
    except SnnCompileError:
        from snncompile.passes.base import synapse_total

        return synapse_total(graph)
    return sum(p.nnz for p in plan.projections)


def parse_passes(spec: str | None, disabled: bool = False) -> list[str]:
    if disabled:
        return []
    if spec is None:
        return list(DEFAULT)
    names = [s.strip() for s in spec.split(",") if s.strip()]
    unknown = [n for n in names if n not in PASSES]
    if unknown:
        raise SnnCompileError(f"unknown pass(es): {', '.join(unknown)}",
                              f"choose from {', '.join(PASSES)}", EXIT_USAGE)
    return sorted(names, key=list(PASSES).index)  # the dependency order, whatever was typed


def run_passes(graph: IRGraph, names: list[str] | None = None,
               after_each: Callable[[str, IRGraph], None] | None = None) -> tuple[IRGraph, list[PassStats]]:
    """Run ``names`` (default: all, in order) on a copy of ``graph``.

    Each pass's stats gain the exact change in lowered synapses and kept neurons.
    ``after_each(name, graph)`` is called after every pass (tests check equivalence there).
    """
    g = graph.copy()
    results = []
    for name in names if names is not None else DEFAULT:
        syn0, neu0 = live_synapses(g), neuron_total(g)
        stats = PASSES[name](g)
        stats.synapses_removed = syn0 - live_synapses(g)
        stats.neurons_removed = max(stats.neurons_removed, neu0 - neuron_total(g))
        results.append(stats)
        if after_each is not None:
            after_each(name, g)
    g.meta["passes"] = [s.name for s in results]
    return g, results
