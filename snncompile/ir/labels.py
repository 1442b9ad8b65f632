"""User-facing layer names: the module path each IR node came from.

IR node names are identifiers the tracer made (``features.0`` → ``features_0``, a
Sequential index ``0`` → ``conv2d_0``); reports, exports and plots name layers by the
user's module path (``node.source``) instead. A node without a module path (a functional
op, the input, the output) keeps its IR name. Names stay unique: when several nodes come
from one module (a max-pool lowered to OR synapses + OR neurons, a module called twice),
the first keeps the path and the others add the part of their IR name that tells them
apart (``6.or_syn``) or a call number (``sn1#2``).
"""

from __future__ import annotations

import re

from snncompile.ir.graph import IRGraph
from snncompile.ir.nodes import Input, Neuron, Output

_PATH = re.compile(r"^[A-Za-z0-9_]+(\.[A-Za-z0-9_]+)*$")


def _base(name: str, node) -> str:
    src = getattr(node, "source", "") or ""
    if isinstance(node, (Input, Output)) or not _PATH.match(src):
        return name
    return src


def labels(graph: IRGraph) -> dict[str, str]:
    """IR name → user-facing name, for every node of ``graph`` (unique)."""
    groups: dict[str, list[str]] = {}
    for name, node in graph.items():
        groups.setdefault(_base(name, node), []).append(name)
    out: dict[str, str] = {}
    for base, names in groups.items():
        # the neuron keeps the bare path (it is the layer a user names in --firing-rates)
        first = next((n for n in names if isinstance(graph.node(n), Neuron)), names[0])
        out[first] = base
        calls = 1
        for n in names:
            if n == first:
                continue
            owner = next((m for m in names if m != n and n.startswith(m + "_")), None)
            if owner is not None:   # a node a pass derived from another (``lif2_delay``)
                out[n] = n if base == owner else f"{base}.{n[len(owner) + 1:]}"
            else:
                calls += 1
                out[n] = f"{base}#{calls}"
    for n, lab in list(out.items()):   # a path equal to another node's IR name would read as that node
        if lab != n and lab in out and out[lab] != lab:
            out[n] = n
    return out


def label_of(graph: IRGraph, name: str) -> str:
    return labels(graph).get(name, name)
