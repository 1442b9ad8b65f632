"""What a pass is, what it returns, and small graph-surgery helpers shared by passes.

A pass is a function ``IRGraph → PassStats`` that rewrites the graph in place, wrapped in
:class:`Pass` with the facts it ``requires`` and ``ensures`` (in the manner of torch.fx's
``PassResult`` and ``this_before_that`` constraints). The manager orders passes by these
facts and checks, after each pass, that every fact it ensures holds (:data:`FACTS`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from snncompile.ir import BatchNorm, Conv2d, IRGraph, Linear, Pool2d
from snncompile.ir.structure import binary_spikes


@dataclass
class PassStats:
    name: str
    nodes_removed: int = 0
    nodes_fused: int = 0
    synapses_removed: int = 0
    neurons_removed: int = 0
    bits_saved: int = 0
    notes: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)  # the report repeats these as notes

    @property
    def changed(self) -> bool:
        return any((self.nodes_removed, self.nodes_fused, self.synapses_removed,
                    self.neurons_removed, self.bits_saved))

    def to_dict(self) -> dict:
        return {"name": self.name, "changed": self.changed, "nodes_removed": self.nodes_removed,
                "nodes_fused": self.nodes_fused, "synapses_removed": self.synapses_removed,
                "neurons_removed": self.neurons_removed, "bits_saved": self.bits_saved,
                "notes": list(self.notes)}


@dataclass
class PassResult:
    """What running a pass gives back: the graph, whether it changed, and its statistics."""

    graph: IRGraph
    modified: bool
    stats: PassStats


def _no_foldable_batchnorm(graph: IRGraph) -> bool:
    for name in graph.of_type(BatchNorm):
        (src,) = graph.inputs(name)
        if isinstance(graph.node(src), (Conv2d, Linear)) and len(graph.users(src)) == 1:
            return False
    return True


def _synapses_pruned(graph: IRGraph) -> bool:
    return all(not np.any(node.mask & (node.weight == 0)) for _, node in graph.items()
               if isinstance(node, (Conv2d, Linear)))


def _binary_marked(graph: IRGraph) -> bool:
    return all(node.weight_bits == 1 for _, node in graph.items()
               if isinstance(node, (Conv2d, Linear)) and node.binary)


def _masks_absorbed(graph: IRGraph) -> bool:
    return graph.patch_mask is None


def _no_spike_max_pool(graph: IRGraph) -> bool:
    return not any(graph.node(n).mode == "max" and binary_spikes(graph, graph.inputs(n)[0])
                   for n in graph.of_type(Pool2d))


# The counts of the pass table ("synapses": live synapses, ir.counting.synapse_total;
# "neurons": kept neurons), which a pass may declare it keeps (Pass.keeps).
COUNT_NAMES = ("synapses", "neurons")


# Facts a pass may ensure, each with the check the manager runs after that pass.
FACTS: dict[str, Callable[[IRGraph], bool]] = {
    "batchnorm_folded": _no_foldable_batchnorm,        # no BatchNorm right after a lone synapse
    "stem_fused": _no_spike_max_pool,                  # max-pools of spikes are OR neurons
    "binary_marked": _binary_marked,                   # binary layers stored as 1-bit signs
    "patches_masked": _masks_absorbed,                 # static keep-masks applied as removed neurons
    "synapses_pruned": _synapses_pruned,               # a synapse exists only where its weight ≠ 0
    # "dead_neurons_removed" is registered by the dead_neurons pass (its own fixed point)
}


@dataclass(frozen=True)
class Pass:
    """A named IR → IR rewrite with the facts it needs before and establishes after, and the
    pass-table counts (:data:`COUNT_NAMES`) it never changes on a given graph: ``keeps``, a
    tuple, or a function of the graph before the pass (the manager then skips recounting;
    with IR verification on, it recounts and names a pass whose declaration was wrong)."""

    name: str
    fn: Callable[[IRGraph], PassStats]
    requires: tuple[str, ...] = ()   # facts to establish first, when a selected pass ensures them
    ensures: tuple[str, ...] = ()
    keeps: tuple[str, ...] | Callable[[IRGraph], tuple[str, ...]] = ()

    def kept(self, graph: IRGraph) -> tuple[str, ...]:
        """The counts this pass keeps when run on ``graph`` (asked before it runs)."""
        return self.keeps(graph) if callable(self.keeps) else self.keeps

    def __call__(self, graph: IRGraph) -> PassResult:
        stats = self.fn(graph)
        graph.facts.update(self.ensures)
        graph.passes.append(self.name)
        return PassResult(graph, stats.changed, stats)


def bypass(graph: IRGraph, name: str) -> None:
    """Remove single-input node ``name``; its users read its input instead."""
    (src,) = graph.inputs(name)
    for user in graph.users(name):
        graph.replace_input(user, name, src)
    graph.remove(name)


def sole_user(graph: IRGraph, name: str) -> str | None:
    users = graph.users(name)
    return users[0] if len(users) == 1 else None


