"""What every pass returns, and small graph-surgery helpers shared by passes."""

from __future__ import annotations

from dataclasses import dataclass, field

from snncompile.energy.counts import static_counts
from snncompile.ir import IRGraph, Neuron


@dataclass
class PassStats:
    name: str
    nodes_removed: int = 0
    nodes_fused: int = 0
    synapses_removed: int = 0
    neurons_removed: int = 0
    bits_saved: int = 0
    notes: list[str] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return any((self.nodes_removed, self.nodes_fused, self.synapses_removed,
                    self.neurons_removed, self.bits_saved))

    def to_dict(self) -> dict:
        return {"name": self.name, "changed": self.changed, "nodes_removed": self.nodes_removed,
                "nodes_fused": self.nodes_fused, "synapses_removed": self.synapses_removed,
                "neurons_removed": self.neurons_removed, "bits_saved": self.bits_saved,
                "notes": list(self.notes)}


def bypass(graph: IRGraph, name: str) -> None:
    """Remove single-input node ``name``; its users read its input instead."""
    (src,) = graph.inputs(name)
    for user in graph.users(name):
        graph.replace_input(user, name, src)
    graph.remove(name)


def sole_user(graph: IRGraph, name: str) -> str | None:
    users = graph.users(name)
    return users[0] if len(users) == 1 else None


def synapse_total(graph: IRGraph) -> int:
    return sum(c.synapses for c in static_counts(graph))


def neuron_total(graph: IRGraph) -> int:
    return sum(graph.node(n).kept for n in graph.of_type(Neuron))
