"""The IR graph: a networkx DiGraph whose nodes hold typed IR nodes, with ordered inputs."""

from __future__ import annotations

import heapq
from collections import Counter
from collections.abc import Iterator
from typing import Any

import networkx as nx
import numpy as np

from snncompile.ir.nodes import Delay, Input, Node, Output
from snncompile.ir.verify import verify_graph


class IRGraph:
    """A spiking network, one time step per evaluation: feed-forward, or with recurrent
    loops each closed by a :class:`~snncompile.ir.nodes.Delay` (see :meth:`schedule`).

    ``g.nx`` is the underlying ``networkx.DiGraph``; each node has attributes ``node``
    (the IR node) and ``inputs`` (ordered predecessor names). Graph-level facts are typed
    attributes, written by the frontend and the pass manager; ``meta`` holds provenance
    only (e.g. ``source_model``) and no stage reads it to decide anything.
    """

    def __init__(self, name: str = "model") -> None:
        self.name = name
        self.nx = nx.DiGraph()
        self.input_shape: tuple[int, ...] = ()     # per-sample input shape
        # source model's calling convention (frontend.timefold): "s" per step, "m" [T, B, ...],
        # "static-m"/"loop": one call on a static sample, the model runs ``model_steps`` itself
        self.step_mode: str = "s"
        self.model_steps: int | None = None
        self.output_steps: bool = False            # "loop": forward() returns a list of per-step outputs
        self.output_time_reduced: bool = False     # the source model's output is reduced over T
        self.patch_mask: np.ndarray | None = None  # static keep-mask still to apply (mask_patches)
        self.facts: set[str] = set()               # properties passes established (see passes.base)
        self.passes: list[str] = []                # passes run, in order
        self.meta: dict = {}

    # -- building ----------------------------------------------------------------------
    def add(self, name: str, node: Node, inputs: list[str] | tuple[str, ...] = ()) -> str:
        if name in self.nx:
            raise ValueError(f"duplicate IR node name {name!r}")
        for src in inputs:
            if src not in self.nx:
                raise ValueError(f"IR node {name!r} reads unknown node {src!r}")
        self.nx.add_node(name, node=node, inputs=list(inputs))
        for port, src in enumerate(inputs):
            self.nx.add_edge(src, name, port=port)
        return name

    def unique_name(self, base: str) -> str:
        base = base.replace(".", "_") or "node"
        name, k = base, 1
        while name in self.nx:
            k += 1
            name = f"{base}_{k}"
        return name

    def remove(self, name: str) -> None:
        self.nx.remove_node(name)

    def replace_input(self, name: str, old: str, new: str) -> None:
        ins = [new if s == old else s for s in self.inputs(name)]
        self.set_inputs(name, ins)

    def set_inputs(self, name: str, inputs: list[str]) -> None:
        for src in list(self.nx.predecessors(name)):
            self.nx.remove_edge(src, name)
        self.nx.nodes[name]["inputs"] = list(inputs)
        for port, src in enumerate(inputs):
            self.nx.add_edge(src, name, port=port)

    # -- reading -----------------------------------------------------------------------
    # read through ``nx._node`` (networkx's node-attribute dict, what ``nx.nodes[name]``
    # returns): the view's lookup costs as much again, and an estimate reads ~1300 nodes
    def node(self, name: str) -> Node:
        return self.nx._node[name]["node"]

    def inputs(self, name: str) -> list[str]:
        return list(self.nx._node[name]["inputs"])

    def users(self, name: str) -> list[str]:
        return list(self.nx.successors(name))

    def schedule(self) -> list[list[str]]:
        """Evaluation order as groups: a single node, or a recurrent component (nodes joined
        by a cycle) to be stepped through time together. Groups come in dependency order;
        inside a component, nodes come in the order that ignores the edges into its Delays
        (a Delay's output at t is its input at t − steps). Ties follow insertion order.
        Raises ValueError for a cycle that passes through no Delay (an algebraic loop)."""
        order = self._acyclic_now()
        if order is not None:
            return [[n] for n in order]
        index = {n: i for i, n in enumerate(self.nx.nodes)}
        cond = nx.condensation(self.nx)
        members = {c: cond.nodes[c]["members"] for c in cond}
        groups = []
        for c in nx.lexicographical_topological_sort(cond, key=lambda c: min(index[m] for m in members[c])):
            names = members[c]
            if len(names) == 1 and not any(self.nx.has_edge(n, n) for n in names):
                groups.append(list(names))
                continue
            sub = nx.DiGraph(self.nx.subgraph(names))
            sub.remove_edges_from([(u, v) for u, v in list(sub.edges) if isinstance(self.node(v), Delay)])
            if not nx.is_directed_acyclic_graph(sub):
                loop = " → ".join(u for u, _ in nx.find_cycle(sub))
                raise ValueError(f"recurrent loop without a delay: {loop}")
            groups.append(list(nx.lexicographical_topological_sort(sub, key=index.__getitem__)))
        return groups

    def _acyclic_order(self, index: dict[str, int]) -> list[str] | None:
        """Every node after its inputs, the ready node first in ``index`` order (networkx's
        lexicographical_topological_sort, without its generic machinery: ~3x faster); None
        if the graph has a cycle."""
        succ = self.nx._succ
        waiting = {n: len(p) for n, p in self.nx._pred.items()}
        ready = [(index[n], n) for n, k in waiting.items() if k == 0]
        heapq.heapify(ready)
        order = []
        while ready:
            _, n = heapq.heappop(ready)
            order.append(n)
            for m in succ[n]:
                waiting[m] -= 1
                if waiting[m] == 0:
                    heapq.heappush(ready, (index[m], m))
        return order if len(order) == len(waiting) else None

    # The order of an acyclic graph depends on its nodes and edges alone: kept while they
    # stay as they are (the estimate and the lowering ask for it a dozen times, and whether
    # the graph has a loop three times). The key: the nodes and each one's successors, in order.
    def _order_key(self) -> tuple:
        succ = self.nx._succ
        return tuple(succ), tuple(tuple(s) for s in succ.values())

    def _dag_order_now(self) -> list[str] | None:
        """The order :meth:`schedule` found for the graph as it is now, if it is acyclic."""
        cached = self.__dict__.get("_dag_order")
        return cached[1] if cached is not None and cached[0] == self._order_key() else None

    def _acyclic_now(self) -> list[str] | None:
        """The order of the graph as it is now (kept for the next caller), None if it has a loop."""
        order = self._dag_order_now()
        if order is None:
            order = self._acyclic_order({n: i for i, n in enumerate(self.nx.nodes)})
            if order is not None:
                self._dag_order = (self._order_key(), order)
        return order

    def recurrent(self) -> bool:
        """True if the graph has a loop (closed by a Delay)."""
        return self._acyclic_now() is None

    def topo(self) -> list[str]:
        """Evaluation order (:meth:`schedule` flattened): every node after its inputs, except
        a Delay on a loop, which comes before the node it delays."""
        order = self._dag_order_now()
        if order is not None:
            return list(order)
        return [n for group in self.schedule() for n in group]

    def delayed_reads(self, order: list[str] | None = None) -> set[tuple[str, str]]:
        """Edges (source, Delay) whose source comes later in :meth:`topo` (or ``order``, that
        order already computed): the loops' back edges."""
        if not self.recurrent():
            return set()
        pos = {n: i for i, n in enumerate(self.topo() if order is None else order)}
        return {(u, v) for u, v in self.nx.edges if isinstance(self.node(v), Delay) and pos[u] >= pos[v]}

    def items(self) -> Iterator[tuple[str, Node]]:
        for name in self.topo():
            yield name, self.node(name)

    def items_releasing(self, values: dict[str, Any]) -> Iterator[tuple[str, Node]]:
        """Like :meth:`items`, for a caller that stores each node's value in ``values``:
        once a node is handled, the inputs no later node reads are dropped from ``values``,
        so an evaluation holds the values of one frontier, not of the whole graph. A loop's
        back edge (:meth:`delayed_reads`) is not a read here: its Delay takes the source's
        value when the source is produced."""
        order = self.topo()
        back = self.delayed_reads(order)
        left = Counter(s for n in self.nx for s in self.inputs(n) if (s, n) not in back)
        for name in order:
            yield name, self.node(name)
            for s in self.inputs(name):
                if (s, name) in back:
                    continue
                left[s] -= 1
                if left[s] == 0:
                    values.pop(s, None)

    def of_type(self, cls: type) -> list[str]:
        return [n for n, node in self.items() if isinstance(node, cls)]

    @property
    def input_name(self) -> str:
        names = self.of_type(Input)
        if len(names) != 1:
            raise ValueError(f"graph has {len(names)} inputs; exactly one is supported")
        return names[0]

    @property
    def output_name(self) -> str:
        names = self.of_type(Output)
        if len(names) != 1:
            raise ValueError(f"graph has {len(names)} outputs; exactly one is supported")
        return names[0]

    def verify(self, stage: str = "") -> None:
        """Check every node's arity, shapes, dtypes and parameter ranges against its inputs
        (:mod:`snncompile.ir.verify`); raises ``IRVerificationError`` naming the node, its
        source module, the problem and ``stage`` (e.g. the pass that ran last)."""
        verify_graph(self, stage)

    def __len__(self) -> int:
        return self.nx.number_of_nodes()

    def copy(self) -> IRGraph:
        import copy

        return copy.deepcopy(self)
