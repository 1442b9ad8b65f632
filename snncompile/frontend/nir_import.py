"""NIR frontend: a NIR graph (HDF5, read with ``nir.read``) becomes an IR graph.

Discretisation rule (forward Euler with step ``dt``, NIR's reading of its equations; every
framework that writes LIF to NIR — snnTorch, Norse — integrates this way):

    LIF:  v[t] = v[t−1] + (dt/τ)·(v_leak − v[t−1] + r·x[t]),  z = v > v_th,  v ← v_reset
    IF:   v[t] = v[t−1] + r·x[t]      (no dt: snnTorch, Norse write r = 1; r = 1/dt, spikingjelly's
                                         export, is read as v += x when dt is known)
    Threshold: z[t] = x[t] > θ
    LI:   as LIF without threshold and reset; the output is v   (non-spiking)
    I:    v[t] = v[t−1] + r·x[t], the output is v               (non-spiking; no dt, as IF)
    CubaLIF: I[t] = I[t−1] + (dt/τ_syn)·(w_in·x[t] − I[t−1])   (the current first,
             v[t] = v[t−1] + (dt/τ_mem)·(v_leak − v[t−1] + r·I[t])   then v reads the new I)
             z = v > v_th, v ← v_reset (I is not reset)
    CubaLI:  CubaLIF without threshold and reset; the output is v

A current-based neuron becomes ``cubalif``/``cubali`` with q_s = dt/τ_syn and
I = I − I·q_s + g·x: g = q_s·w_in (1 when q_s·w_in = 1, snnTorch's ``Synaptic``: its
exporter writes w_in = τ_syn/dt), applied by a Scale before the neuron together with r
when the membrane uses ``decay_input`` (r·dt/τ_mem ≠ 1). LI and CubaLI are the same
without spikes.

An LIF becomes a ``plif`` Neuron with q = dt/τ: ``decay_input=False`` (H = V − V·q + X)
when r·dt/τ = 1 within 1e-6 (snnTorch's export, r = τ/dt), ``decay_input=True``
(H = V + (X − V)·q) otherwise, with r ≠ 1 applied by a Scale node before the neuron.
Neurons fire on v > v_th (``strict``). ``dt`` is not stored in NIR: ``--nir-dt``, or
τ/r when every LIF has r ≠ 1 (snnTorch's convention), or the ``snncompile`` metadata our
own export writes (which also keeps the exact floating-point form for a round trip).
Zero weights of dense NIR arrays are absent synapses (``mask`` False), as in a pruned ticket.

Recurrence. A NIR ``Delay`` of τ is an IR Delay of τ/dt steps (whole numbers; per element
allowed). Any other cycle gets one step of delay on the spikes of a neuron on it: a
depth-first walk from the Input (nodes in file order) finds the edge that closes the cycle;
the delay moves up from there through nodes with one input that feed only the loop (the
recurrent Linear/Conv) to the neuron, and sits on its output. So snnTorch's ``RLeaky``
(LIF → w_rec → LIF) reads w_rec·s[t−1] + b, its bias acting from t = 0 as in snnTorch. A loop
with no neuron on it keeps the delay on the closing edge (a delayed real value).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import networkx as nx
import numpy as np

from snncompile.errors import EXIT_UNSUPPORTED, EXIT_USAGE, SnnCompileError
from snncompile.frontend.nir_check import check_declared_sizes, check_dt, check_nodes, check_shape
from snncompile.frontend.nir_nodes import META_KEY, UNIT_TOL, Builder, as_array, table, unsupported
from snncompile.ir import IRGraph
from snncompile.ir.nodes import Input
from snncompile.limits import check_regular_file

__all__ = ["META_KEY", "Imported", "flatten_graph", "import_nir", "is_nir", "read_graph"]


def is_nir(path: str | Path) -> bool:
    return Path(path).suffix.lower() == ".nir"


def read_graph(path: str | Path) -> Any:
    """``nir.read`` with type checks, then without (files of older NIR versions)."""
    import nir

    path = check_regular_file(path, "NIR graph")
    if not path.is_file():
        raise SnnCompileError(f"NIR file not found: {path}", "check the path", EXIT_USAGE)
    try:
        import h5py

        if not h5py.is_hdf5(path):
            raise SnnCompileError(f"{path} is not a NIR file (not HDF5)", "write it with nir.write(path, graph)",
                                  EXIT_USAGE)
    except ImportError:  # nir needs h5py: nir.read below says so
        pass
    check_declared_sizes(path)
    errors = []
    for type_check in (True, False):
        try:
            return nir.read(path, type_check=type_check)
        except Exception as exc:  # noqa: BLE001 - anything nir raises on a file it cannot read
            errors.append(f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}")
    raise SnnCompileError(f"cannot read NIR graph {path}: {errors[-1]}",
                          "the file is corrupt or uses node types this nir package does not know; "
                          "re-export it with a current nir", EXIT_USAGE)


def flatten_graph(graph: Any, prefix: str = "") -> tuple[dict[str, Any], list[tuple[str, str]]]:
    """Inline nested NIR graphs: nodes by dotted name and edges between them."""
    import nir

    nodes: dict[str, Any] = {}
    edges: list[tuple[str, str]] = []
    entry: dict[str, list[str]] = {}
    exit_: dict[str, list[str]] = {}
    for name, node in graph.nodes.items():
        full = prefix + name
        if isinstance(node, nir.NIRGraph):
            sub_nodes, sub_edges = flatten_graph(node, full + ".")
            nodes.update(sub_nodes)
            edges.extend(sub_edges)
            entry[name] = [n for n, v in sub_nodes.items() if isinstance(v, nir.Input) and n.count(".") == full.count(".") + 1]
            exit_[name] = [n for n, v in sub_nodes.items() if isinstance(v, nir.Output) and n.count(".") == full.count(".") + 1]
        else:
            nodes[full] = node
    for src, dst in graph.edges:
        s_head, d_head = src.split(".")[0], dst.split(".")[0]
        srcs = exit_.get(src, [prefix + src]) if src in exit_ else [prefix + src]
        dsts = entry.get(dst, [prefix + dst]) if dst in entry else [prefix + dst]
        if s_head in exit_ and src not in exit_:
            srcs = [prefix + src]
        if d_head in entry and dst not in entry:
            dsts = [prefix + dst]
        edges.extend((s, d) for s in srcs for d in dsts)
    return nodes, edges


@dataclass
class Imported:
    """An imported NIR graph: the IR, the time step used, IR neuron → NIR node name."""

    graph: IRGraph
    dt: float | None
    neuron_sources: dict[str, str] = field(default_factory=dict)
    meta: dict = field(default_factory=dict)


def import_nir(path: str | Path, *, dt: float | None = None,
               input_shape: tuple[int, ...] | None = None) -> Imported:
    """Read ``path`` and build the IR (see the module docstring for the rules)."""
    import nir

    raw = read_graph(path)
    nodes, edges = flatten_graph(raw)
    check_nodes(nodes)
    g = _edge_graph(path, nodes, edges)
    ins = [n for n, v in nodes.items() if isinstance(v, nir.Input) and g.in_degree(n) == 0]
    outs = [n for n, v in nodes.items() if isinstance(v, nir.Output) and g.out_degree(n) == 0]
    if len(ins) != 1 or len(outs) != 1:
        raise SnnCompileError(f"NIR graph {path} has {len(ins)} inputs and {len(outs)} outputs",
                              "snncompile compiles graphs with exactly one Input and one Output node",
                              EXIT_UNSUPPORTED)
    b = Builder(IRGraph(Path(path).stem), _time_step(nodes, dt, raw))
    b.output = outs[0]
    delays = {n: _delay_steps(b, n, v) for n, v in nodes.items() if isinstance(v, nir.Delay)}
    _contract_identities(g, nodes, {ins[0], outs[0]}, delays)
    delayed = {(s, d) for s, d in g.edges if _delayed(delays.get(d, 0))} | _loop_delays(g, nodes, ins[0], delays)
    _convert(b, g, nodes, ins[0], input_shape, delays, delayed)
    b.join_delays()
    graph = b.g
    graph.step_mode = "s"
    graph.meta["source_model"] = str(path)
    graph.meta["nir_dt"] = b.dt
    return Imported(graph, b.dt, b.neurons, {"name": graph.name})


def _edge_graph(path: str | Path, nodes: dict[str, Any], edges: list[tuple[str, str]]) -> nx.DiGraph:
    """The flattened NIR graph as a networkx graph (every edge between known nodes)."""
    g = nx.DiGraph()
    g.add_nodes_from(nodes)
    for s, d in edges:
        for end in (s, d):
            if end not in nodes:
                raise SnnCompileError(f"NIR graph {path}: edge {s} → {d} names unknown node `{end}`",
                                      "the file is inconsistent; re-export it", EXIT_USAGE)
        g.add_edge(s, d)
    return g


def _convert(b: Builder, g: nx.DiGraph, nodes: dict[str, Any], start: str, input_shape: tuple[int, ...] | None,
             delays: dict[str, int | np.ndarray], delayed: set[tuple[str, str]]) -> None:
    """Convert every node in dependency order (file order among equals), the delayed edges
    left out of the order: a delay's source is joined once built (``Builder.join_delays``)."""
    index = {n: i for i, n in enumerate(nodes)}
    order_graph = nx.DiGraph(g)
    order_graph.remove_edges_from(delayed)
    for name in nx.lexicographical_topological_sort(order_graph, key=index.__getitem__):
        node = nodes[name]
        conv = table().get(type(node))
        if conv is None:
            raise unsupported(name, f"{type(node).__name__} has no mapping to snncompile's IR",
                              "supported: " + ", ".join(sorted(c.__name__ for c in table())))
        if name == start:
            shape = check_shape(name, "input shape", input_shape or node.input_type["input"])
            b.names[name] = b.g.add(b.g.unique_name(name), Input(shape, name))
            b.g.input_shape = shape
            continue
        preds = sorted(g.predecessors(name), key=index.__getitem__)
        if not preds:
            raise unsupported(name, "the node has no input", "connect it or remove it")
        if _delayed(delays.get(name, 0)):   # an explicit delay: its inputs are joined once they exist
            b.names[name] = b.delay(name, _out_shape(b, g, nodes, name), delays[name], preds)
            continue
        srcs = [b.delay(p, _out_shape(b, g, nodes, p), 1, [p]) if (p, name) in delayed else b.names[p]
                for p in preds]
        b.names[name] = conv(b, name, node, b.summed(name, srcs))


def _delay_steps(b: Builder, name: str, node: Any) -> int | np.ndarray:
    """A NIR Delay's τ as whole steps of dt: one int, or one per element (all ≥ 1)."""
    tau = as_array(node.delay)
    if tau.size == 0 or not np.any(tau):
        return 0
    if b.dt is None:
        raise SnnCompileError(f"NIR node `{name}`: a delay of {tau.max():g} needs the time step dt to count steps",
                              "pass --nir-dt (the step the exporting framework simulated with)", EXIT_USAGE)
    steps = tau / b.dt
    whole = np.round(steps)
    bad = (tau < 0) | (np.abs(steps - whole) > UNIT_TOL * np.maximum(1.0, steps))
    if np.any(bad):
        t = float(tau.ravel()[np.flatnonzero(bad.ravel())[0]])
        raise unsupported(name, f"delay {t:g} is {t / b.dt:g} steps of dt = {b.dt:g}, not a whole number",
                          "pass the --nir-dt the delay was written for, or round the delay to whole steps")
    if np.all(whole == whole.ravel()[0]):
        return int(whole.ravel()[0])
    if np.min(whole) < 1:
        raise unsupported(name, "per-neuron delays of 0 and more steps together: an element of 0 steps "
                          "passes its input at once, the others later", "give every element at least one "
                          "step of delay (or split the layer)")
    return whole.astype(np.int64)


def _delayed(steps: int | np.ndarray) -> bool:
    return bool(np.max(steps) > 0)


def _out_shape(b: Builder, g: nx.DiGraph, nodes: dict[str, Any], name: str) -> tuple[int, ...]:
    """The per-sample output shape of NIR node ``name``: as built; for an elementwise node (a
    neuron, Scale, Delay) its input's; else as the node declares it. Walked with a stack, not
    recursion: a loop may pass through thousands of elementwise nodes."""
    import nir

    elementwise = (nir.IF, nir.LIF, nir.CubaLIF, nir.Threshold, nir.LI, nir.I, nir.CubaLI, nir.Scale, nir.Delay)
    stack, seen = [name], set()
    while stack:
        n = stack.pop()
        if n in b.names:
            return b.shape(b.names[n])
        if n in seen:
            continue
        seen.add(n)
        if isinstance(nodes[n], elementwise):
            stack.extend(reversed([p for p in g.predecessors(n) if p not in seen]))
            continue
        declared = _declared_shape(nodes[n])
        if declared is not None:
            return declared
    declared = _declared_shape(nodes[name])
    if declared is None:
        raise unsupported(name, "its output shape is needed to delay it (it closes a recurrent loop) but "
                          "the node declares none", "re-export the graph with a current nir (output_type set)")
    return declared


def _declared_shape(node: Any) -> tuple[int, ...] | None:
    declared = getattr(node, "output_type", None) or {}
    shape = next(iter(declared.values()), None) if isinstance(declared, dict) else None
    shape = np.asarray(shape if shape is not None else []).ravel()
    if shape.size == 0 or shape.dtype.kind not in "iuf" or np.any(shape <= 0):
        return None
    return tuple(int(v) for v in shape)


def _contract_identities(g: nx.DiGraph, nodes: dict[str, Any], keep: set[str],
                         delays: dict[str, int | np.ndarray]) -> None:
    """Remove pass-through nodes (a nested graph's inner Input/Output, Identity, a zero Delay):
    their sources feed their users directly, so a loop's delay can reach the neuron behind
    them. A node whose removal would merge two edges (a sum counted once) stays."""
    import nir

    passing = tuple(c for c in (nir.Input, nir.Output, getattr(nir, "Identity", None)) if c is not None)
    for name in list(g.nodes):
        node = nodes[name]
        if name in keep or not (isinstance(node, passing) or (isinstance(node, nir.Delay)
                                                              and not _delayed(delays.get(name, 0)))):
            continue
        preds, succs = list(g.predecessors(name)), list(g.successors(name))
        if name in preds or not preds:
            continue
        joined = [(p, s) for p in preds for s in succs]
        if any(g.has_edge(p, s) for p, s in joined):
            continue
        g.remove_node(name)
        g.add_edges_from(joined)


def _loop_delays(g: nx.DiGraph, nodes: dict[str, Any], start: str, delays: dict[str, int]) -> set[tuple[str, str]]:
    """The edges that carry a recurrent loop's one-step delay (module docstring: "Recurrence")."""
    import nir

    ff = nx.DiGraph(g)
    ff.remove_edges_from([(s, d) for s, d in g.edges if _delayed(delays.get(d, 0))])
    index = {n: i for i, n in enumerate(nodes)}
    back: list[tuple[str, str]] = []
    state: dict[str, int] = {}          # 1 = on the DFS stack, 2 = done
    for root in [start] + [n for n in nodes if n in ff]:
        if root in state:
            continue
        stack = [(root, iter(sorted(ff.successors(root), key=index.__getitem__)))]
        state[root] = 1
        while stack:
            node, it = stack[-1]
            nxt = next(it, None)
            if nxt is None:
                state[node] = 2
                stack.pop()
            elif state.get(nxt) == 1:
                back.append((node, nxt))
            elif nxt not in state:
                state[nxt] = 1
                stack.append((nxt, iter(sorted(ff.successors(nxt), key=index.__getitem__))))
    neurons = (nir.IF, nir.LIF, nir.CubaLIF, nir.Threshold, nir.LI, nir.I, nir.CubaLI)
    placed = set()
    for u, v in back:
        # move the delay up to the spikes: through single-input nodes that feed only this loop
        s, d, seen = u, v, {u}
        while not isinstance(nodes[s], neurons) and ff.in_degree(s) == 1 and ff.out_degree(s) == 1:
            (prev,) = ff.predecessors(s)   # on the loop: s is reached from inside it only
            if prev in seen:
                break
            s, d = prev, s
            seen.add(s)
        placed.add((s, d) if isinstance(nodes[s], neurons) else (u, v))
    return placed


def _time_step(nodes: dict[str, Any], dt: float | None, raw: Any) -> float | None:
    """``dt`` as given, from our own export's metadata, or snnTorch's τ/r."""
    import nir

    if dt is not None:
        return check_dt(dt, "--nir-dt")
    stored = (getattr(raw, "metadata", None) or {}).get(f"{META_KEY}.dt")
    if stored is not None:
        return check_dt(stored, f"the NIR graph's {META_KEY}.dt metadata")
    lifs = {n: v for n, v in nodes.items() if isinstance(v, (nir.LIF, nir.LI, nir.CubaLIF, nir.CubaLI))}
    if not lifs:
        return None
    guesses = []
    for v in lifs.values():
        tau = np.asarray(getattr(v, "tau", getattr(v, "tau_mem", None)), np.float64)
        r = np.asarray(v.r, np.float64)
        if np.any(r == 1):
            guesses = []
            break
        guesses.append((tau / r).ravel())
    if guesses:
        d = np.concatenate(guesses)
        if np.allclose(d, d[0], rtol=UNIT_TOL):
            return check_dt(d[0], "the NIR graph's time step τ/r (from its leaky neurons)")
    raise SnnCompileError("the NIR graph has leaky neurons but stores no time step dt: its LIF nodes give "
                          "tau and r, and r = 1 (or tau/r differs between nodes), so dt cannot be read from it",
                          "pass --nir-dt with the step the exporting code simulated with (it is in that code, "
                          "not in the file)", EXIT_USAGE)
