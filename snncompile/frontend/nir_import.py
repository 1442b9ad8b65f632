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

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import networkx as nx
import numpy as np

from snncompile.errors import EXIT_UNSUPPORTED, EXIT_USAGE, SnnCompileError
from snncompile.ir import IRGraph
from snncompile.ir.dynamics import IF, LI, PLIF, CubaLI, CubaLIF, Dynamics, Integrator, Threshold, make
from snncompile.ir.nodes import (
    Add,
    BatchNorm,
    Conv2d,
    Delay,
    Input,
    Linear,
    Neuron,
    Output,
    Pool2d,
    Reshape,
    Scale,
)

META_KEY = "snncompile"   # node metadata written by backends.nir: the exact IR neuron
UNIT_TOL = 1e-6           # r·dt/τ within this of 1 is 1 (exporters write r = τ/dt, which rounds)


def is_nir(path: str | Path) -> bool:
    return Path(path).suffix.lower() == ".nir"


def _unsupported(node: str, why: str, hint: str) -> SnnCompileError:
    return SnnCompileError(f"NIR node `{node}`: {why}", hint, EXIT_UNSUPPORTED)


def read_graph(path: str | Path) -> Any:
    """``nir.read`` with type checks, then without (files of older NIR versions)."""
    import nir

    path = Path(path)
    if not path.is_file():
        raise SnnCompileError(f"NIR file not found: {path}", "check the path", EXIT_USAGE)
    try:
        import h5py

        if not h5py.is_hdf5(path):
            raise SnnCompileError(f"{path} is not a NIR file (not HDF5)", "write it with nir.write(path, graph)",
                                  EXIT_USAGE)
    except ImportError:  # nir needs h5py: nir.read below says so
        pass
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
    g = nx.DiGraph()
    g.add_nodes_from(nodes)
    for s, d in edges:
        for end in (s, d):
            if end not in nodes:
                raise SnnCompileError(f"NIR graph {path}: edge {s} → {d} names unknown node `{end}`",
                                      "the file is inconsistent; re-export it", EXIT_USAGE)
        g.add_edge(s, d)
    ins = [n for n, v in nodes.items() if isinstance(v, nir.Input) and g.in_degree(n) == 0]
    outs = [n for n, v in nodes.items() if isinstance(v, nir.Output) and g.out_degree(n) == 0]
    if len(ins) != 1 or len(outs) != 1:
        raise SnnCompileError(f"NIR graph {path} has {len(ins)} inputs and {len(outs)} outputs",
                              "snncompile compiles graphs with exactly one Input and one Output node",
                              EXIT_UNSUPPORTED)
    b = _Builder(IRGraph(Path(path).stem), _time_step(nodes, dt, raw))
    b.output = outs[0]
    index = {n: i for i, n in enumerate(nodes)}
    delays = {n: _delay_steps(b, n, v) for n, v in nodes.items() if isinstance(v, nir.Delay)}
    _contract_identities(g, nodes, {ins[0], outs[0]}, delays)
    delayed = {(s, d) for s, d in g.edges if _delayed(delays.get(d, 0))} | _loop_delays(g, nodes, ins[0], delays)
    order_graph = nx.DiGraph(g)
    order_graph.remove_edges_from(delayed)
    for name in nx.lexicographical_topological_sort(order_graph, key=index.__getitem__):
        node = nodes[name]
        conv = _CONVERT.get(type(node))
        if conv is None:
            raise _unsupported(name, f"{type(node).__name__} has no mapping to snncompile's IR",
                               "supported: " + ", ".join(sorted(c.__name__ for c in _CONVERT)))
        if name == ins[0]:
            shape = tuple(int(v) for v in (input_shape or np.asarray(node.input_type["input"]).ravel()))
            b.names[name] = b.g.add(b.g.unique_name(name), Input(shape, name))
            b.g.input_shape = shape
            continue
        preds = sorted(g.predecessors(name), key=index.__getitem__)
        if not preds:
            raise _unsupported(name, "the node has no input", "connect it or remove it")
        if _delayed(delays.get(name, 0)):   # an explicit delay: its inputs are joined once they exist
            b.names[name] = b.delay(name, _out_shape(b, g, nodes, name), delays[name], preds)
            continue
        srcs = [b.delay(p, _out_shape(b, g, nodes, p), 1, [p]) if (p, name) in delayed else b.names[p]
                for p in preds]
        b.names[name] = conv(b, name, node, b.summed(name, srcs))
    b.join_delays()
    graph = b.g
    graph.step_mode = "s"
    graph.meta["source_model"] = str(path)
    graph.meta["nir_dt"] = b.dt
    return Imported(graph, b.dt, b.neurons, {"name": graph.name})


def _delay_steps(b: _Builder, name: str, node: Any) -> int | np.ndarray:
    """A NIR Delay's τ as whole steps of dt: one int, or one per element (all ≥ 1)."""
    tau = _arr(node.delay)
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
        raise _unsupported(name, f"delay {t:g} is {t / b.dt:g} steps of dt = {b.dt:g}, not a whole number",
                           "pass the --nir-dt the delay was written for, or round the delay to whole steps")
    if np.all(whole == whole.ravel()[0]):
        return int(whole.ravel()[0])
    if np.min(whole) < 1:
        raise _unsupported(name, "per-neuron delays of 0 and more steps together: an element of 0 steps "
                           "passes its input at once, the others later", "give every element at least one "
                           "step of delay (or split the layer)")
    return whole.astype(np.int64)


def _delayed(steps: int | np.ndarray) -> bool:
    return bool(np.max(steps) > 0)


def _out_shape(b: _Builder, g: nx.DiGraph, nodes: dict[str, Any], name: str,
               _seen: frozenset = frozenset()) -> tuple[int, ...]:
    """The per-sample output shape of NIR node ``name``: as built; for an elementwise node (a
    neuron, Scale, Delay) its input's; else as the node declares it."""
    import nir

    if name in b.names:
        return b.shape(b.names[name])
    node = nodes[name]
    elementwise = (nir.IF, nir.LIF, nir.CubaLIF, nir.Threshold, nir.LI, nir.I, nir.CubaLI, nir.Scale, nir.Delay)
    if isinstance(node, elementwise) and name not in _seen:
        for p in g.predecessors(name):
            try:
                return _out_shape(b, g, nodes, p, _seen | {name})
            except SnnCompileError:
                continue
    declared = getattr(node, "output_type", None) or {}
    shape = next(iter(declared.values()), None) if isinstance(declared, dict) else None
    shape = np.asarray(shape if shape is not None else []).ravel()
    if shape.size == 0 or np.any(shape <= 0):
        raise _unsupported(name, "its output shape is needed to delay it (it closes a recurrent loop) but "
                           "the node declares none", "re-export the graph with a current nir (output_type set)")
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
        return float(dt)
    stored = (getattr(raw, "metadata", None) or {}).get(f"{META_KEY}.dt")
    if stored is not None:
        return float(np.asarray(stored))
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
            return float(d[0])
    raise SnnCompileError("the NIR graph has leaky neurons but stores no time step dt",
                          "pass --nir-dt (Norse exports with dt=0.001, snnTorch with 0.0001)", EXIT_USAGE)


class _Builder:
    def __init__(self, g: IRGraph, dt: float | None) -> None:
        self.g = g
        self.dt = dt
        self.names: dict[str, str] = {}      # NIR node → IR node holding its output
        self.neurons: dict[str, str] = {}    # IR neuron → NIR node
        self.output = ""                     # the graph's Output node (inner ones pass through)
        self.delays: dict[tuple, str] = {}   # (NIR sources, steps) → IR Delay, inputs joined last

    def shape(self, ir_name: str) -> tuple[int, ...]:
        return tuple(self.g.node(ir_name).shape)

    def add(self, nir_name: str, node: Any, inputs: list[str], suffix: str = "") -> str:
        return self.g.add(self.g.unique_name(nir_name + suffix), node, inputs)

    def delay(self, name: str, shape: tuple[int, ...], steps: int | np.ndarray, srcs: list[str]) -> str:
        """An IR Delay of the sum of NIR nodes ``srcs`` (which may not be built yet)."""
        k = np.asarray(steps)
        key = (tuple(srcs), k.tobytes(), k.shape)
        if key not in self.delays:
            suffix = "" if len(srcs) > 1 or srcs[0] != name else "_delay"
            if k.ndim and k.size != int(np.prod(shape)):
                raise _unsupported(name, f"{k.size} delays for {int(np.prod(shape))} elements",
                                   "the delay array must match the layer's size")
            node = Delay(shape, name, steps=k.reshape(shape) if k.ndim else int(k))
            self.delays[key] = self.add(name, node, [], suffix)
        return self.delays[key]

    def join_delays(self) -> None:
        """Connect every Delay to its (now built) sources."""
        for (srcs, *_), ir_name in self.delays.items():
            src = self.summed(srcs[0], [self.names[s] for s in srcs])
            if self.shape(src) != self.shape(ir_name):
                raise _unsupported(srcs[0], f"the delayed output has shape {self.shape(src)}, its node declares "
                                   f"{self.shape(ir_name)}", "check the exported shapes")
            self.g.set_inputs(ir_name, [src])

    def summed(self, name: str, srcs: list[str]) -> str:
        """NIR sums the inputs of a node: a chain of Add nodes."""
        out = srcs[0]
        for other in srcs[1:]:
            if self.shape(other) != self.shape(out):
                raise _unsupported(name, f"its inputs have shapes {self.shape(out)} and {self.shape(other)}",
                                   "every edge into a NIR node must carry the same shape")
            out = self.add(name, Add(self.shape(out), name), [out, other], "_sum")
        return out


def _arr(v: Any) -> np.ndarray:
    return np.asarray(v, dtype=np.float64)


def _uniform(name: str, what: str, v: Any) -> float:
    a = _arr(v).ravel()
    if a.size == 0 or not np.all(a == a[0]):
        raise _unsupported(name, f"per-neuron {what} is not supported (values differ)",
                           f"use one {what} for the whole layer")
    return float(a[0])


def _per_neuron(name: str, what: str, v: Any, shape: tuple[int, ...]) -> float | np.ndarray:
    a = _arr(v)
    if a.size == 1 or np.all(a == a.ravel()[0]):
        return float(a.ravel()[0])
    if a.size != int(np.prod(shape)):
        raise _unsupported(name, f"{what} has {a.size} values for {int(np.prod(shape))} neurons",
                           "the parameter arrays must match the layer's size")
    return a.reshape(shape)


def _scaled(b: _Builder, name: str, src: str, factor: Any) -> str:
    """x·factor elementwise: Scale (uniform), BatchNorm (per channel) or diagonal Linear (1-d)."""
    shape = b.shape(src)
    f = _arr(factor)
    if f.size == 1 or np.all(f == f.ravel()[0]):
        c = float(f.ravel()[0])
        return src if c == 1.0 else b.add(name, Scale(shape, name, factor=c), [src], "_scale")
    full = np.broadcast_to(f, shape) if f.ndim <= len(shape) else f.reshape(shape)
    per_c = full.reshape(shape[0], -1)
    if len(shape) > 1 and np.all(per_c == per_c[:, :1]):
        ch = per_c[:, 0].copy()
        bn = BatchNorm(shape, name, mean=np.zeros_like(ch), var=np.ones_like(ch), weight=ch,
                       bias=np.zeros_like(ch), eps=0.0)
        return b.add(name, bn, [src], "_scale")
    if len(shape) == 1:
        w = np.diag(full.astype(np.float64))
        return b.add(name, Linear(shape, name, weight=w, mask=np.eye(shape[0], dtype=bool)), [src], "_scale")
    raise _unsupported(name, "an elementwise scale that varies within a channel", "flatten before scaling")


def _affine(b: _Builder, name: str, node: Any, src: str) -> str:
    w = _arr(node.weight)
    bias = _arr(node.bias) if getattr(node, "bias", None) is not None else None
    shape = b.shape(src)
    if w.ndim != 2 or shape[-1] != w.shape[1]:
        raise _unsupported(name, f"weight {w.shape} does not fit its input {shape}", "check the exported shapes")
    if bias is not None and not np.any(bias):
        bias = None
    lin = Linear((*shape[:-1], w.shape[0]), name, weight=w, bias=bias, mask=w != 0)
    return b.add(name, lin, [src])


def _pair(v: Any) -> tuple[int, int]:
    a = np.asarray(v).ravel()
    return (int(a[0]), int(a[0])) if a.size == 1 else (int(a[0]), int(a[1]))


def _padding(name: str, pad: Any, kernel: tuple[int, int], dilation: tuple[int, int]) -> tuple[int, int]:
    if isinstance(pad, bytes):
        pad = pad.decode()
    if isinstance(pad, str):
        if pad == "valid":
            return (0, 0)
        total = [d * (k - 1) for k, d in zip(kernel, dilation)]
        if any(t % 2 for t in total):
            raise _unsupported(name, "padding 'same' with an even kernel pads asymmetrically",
                               "pad explicitly with an odd kernel")
        return (total[0] // 2, total[1] // 2)
    return _pair(pad)


def _conv2d(b: _Builder, name: str, node: Any, src: str) -> str:
    w = _arr(node.weight)
    shape = b.shape(src)
    if len(shape) != 3 or shape[0] != w.shape[1] * int(node.groups):
        raise _unsupported(name, f"weight {w.shape} does not fit its input {shape} (C, H, W)",
                           "check the exported shapes (NIR Conv2d reads C, H, W per sample)")
    k = (w.shape[2], w.shape[3])
    stride, dil = _pair(node.stride), _pair(node.dilation)
    pad = _padding(name, node.padding, k, dil)
    ho = (shape[1] + 2 * pad[0] - dil[0] * (k[0] - 1) - 1) // stride[0] + 1
    wo = (shape[2] + 2 * pad[1] - dil[1] * (k[1] - 1) - 1) // stride[1] + 1
    bias = _arr(node.bias) if node.bias is not None and np.any(node.bias) else None
    conv = Conv2d((w.shape[0], ho, wo), name, weight=w, bias=bias, stride=stride, padding=pad, dilation=dil,
                  groups=int(node.groups), mask=w != 0)
    return b.add(name, conv, [src])


def _conv1d(b: _Builder, name: str, node: Any, src: str) -> str:
    """Conv1d over (C, L) as a Conv2d over (C, 1, L) between two reshapes."""
    shape = b.shape(src)
    if len(shape) != 2:
        raise _unsupported(name, f"Conv1d reads (C, L), got {shape}", "check the exported shapes")
    w = _arr(node.weight)
    up = b.add(name, Reshape((shape[0], 1, shape[1]), name), [src], "_2d")
    pad = node.padding
    if not isinstance(pad, (str, bytes)):
        pad = (0, int(np.asarray(pad).ravel()[0]))
    node2 = type("Conv", (), dict(weight=w[:, :, None, :], stride=(1, int(np.asarray(node.stride).ravel()[0])),
                                  dilation=(1, int(np.asarray(node.dilation).ravel()[0])), padding=pad,
                                  groups=node.groups, bias=node.bias))
    c = _conv2d(b, name, node2, up)
    cs = b.shape(c)
    return b.add(name, Reshape((cs[0], cs[2]), name), [c], "_1d")


def _flatten(b: _Builder, name: str, node: Any, src: str) -> str:
    shape = b.shape(src)
    start, end = int(node.start_dim), int(node.end_dim)
    nd = len(shape)
    s = start + nd if start < 0 else start
    e = end + nd if end < 0 else end
    out = (*shape[:s], int(np.prod(shape[s:e + 1])), *shape[e + 1:]) if 0 <= s <= e < nd else (int(np.prod(shape)),)
    return b.add(name, Reshape(tuple(out), name), [src])


def _pool(mode: str) -> Callable[..., str]:
    def conv(b: _Builder, name: str, node: Any, src: str) -> str:
        shape = b.shape(src)
        k, s, p = _pair(node.kernel_size), _pair(node.stride), _pair(node.padding)
        ho, wo = ((shape[i + 1] + 2 * p[i] - k[i]) // s[i] + 1 for i in (0, 1))
        pool = Pool2d((shape[0], ho, wo), name, mode=mode, kernel=k, stride=s, padding=p, count_include_pad=True)
        return b.add(name, pool, [src])
    return conv


def _scale(b: _Builder, name: str, node: Any, src: str) -> str:
    out = _scaled(b, name, src, node.scale)
    return out if out != src else b.add(name, Reshape(b.shape(src), name), [src])


def _identity(b: _Builder, name: str, node: Any, src: str) -> str:
    if name == b.output:
        return b.add(name, Output(b.shape(src), name), [src])
    return src


def _stored(node: Any) -> dict | None:
    meta = getattr(node, "metadata", None) or {}
    return meta.get(META_KEY)


def _membrane(b: _Builder, name: str, node: Any, tau: Any, r: Any) -> tuple[float, bool, Any]:
    """(q, decay_input, input factor) of a leaky membrane: q = dt/τ; decay_input False when
    r·q = 1 (snnTorch: V − V·q + X), else True with the input scaled by r."""
    if np.any(_arr(node.v_leak) != 0):
        raise _unsupported(name, "v_leak ≠ 0 (a constant drive) is not supported", "export with v_leak = 0")
    q = b.dt / _uniform(name, "tau", tau)
    r = _arr(r)
    if np.all(np.abs(r * q - 1.0) <= UNIT_TOL):
        return q, False, 1.0
    return q, True, r


def _neuron(b: _Builder, name: str, node: Any, src: str) -> str:
    import nir

    shape = b.shape(src)
    kind = type(node).__name__
    spiking = isinstance(node, (nir.IF, nir.LIF, nir.CubaLIF, nir.Threshold))
    th: Any = 1.0
    if spiking:
        th = _per_neuron(name, "v_threshold", node.threshold if isinstance(node, nir.Threshold)
                         else node.v_threshold, shape)
    if isinstance(node, nir.Threshold):
        n = Neuron(shape, name, dynamics=Threshold(v_threshold=th, v_reset=0.0, strict=True))
        return _add_neuron(b, name, n, src)
    v_reset = _uniform(name, "v_reset", node.v_reset) if spiking else 0.0
    stored = _stored(node)
    if v_reset != 0.0 and stored is None:
        raise _unsupported(name, f"v_reset = {v_reset:g}: snncompile's neurons start at v_reset, NIR's at 0",
                           "export with v_reset = 0")
    if stored is not None:  # our own export: the exact IR neuron, equal to the NIR equations
        alive = stored.get("alive")
        if alive is not None:   # removed neurons were written with an infinite threshold
            alive = np.asarray(alive).astype(bool).reshape(shape)
            if isinstance(th, np.ndarray):
                th = np.where(alive, th, np.max(th[alive], initial=1.0))
                th = float(th.ravel()[0]) if np.all(th == th.ravel()[0]) else th
            alive = None if alive.all() else alive
        params = {"decay_input": True, "strict": True, **{k: v for k, v in stored.items() if k != "alive"},
                  "v_threshold": th, "v_reset": v_reset}
        n = Neuron(shape, name, dynamics=_stored_dynamics(name, params), alive=alive)
        return _add_neuron(b, name, n, src)
    if kind in ("IF", "I", "Integrator"):
        n = Neuron(shape, name, dynamics=IF(v_threshold=th, v_reset=0.0, strict=True) if kind == "IF"
                   else Integrator(v_reset=0.0))
        r = _arr(node.r)
        if b.dt is not None and np.all(np.abs(r * b.dt - 1.0) <= UNIT_TOL):
            r = np.ones(1)   # r = 1/dt: v += dt·r·x = x (spikingjelly's export)
        return _add_neuron(b, name, n, _scaled(b, name, src, r))
    if kind in ("LIF", "LI"):
        q, decay_input, factor = _membrane(b, name, node, node.tau, node.r)
        n = Neuron(shape, name, dynamics=PLIF(v_threshold=th, v_reset=0.0, decay=q, decay_input=decay_input,
                                              strict=True) if kind == "LIF"
                   else LI(v_reset=0.0, decay=q, decay_input=decay_input))
        return _add_neuron(b, name, n, _scaled(b, name, src, factor))
    # CubaLIF, CubaLI
    q, decay_input, factor = _membrane(b, name, node, node.tau_mem, node.r)
    q_s = b.dt / _uniform(name, "tau_syn", node.tau_syn)
    gain = q_s * _arr(node.w_in)
    if np.all(np.abs(gain - 1.0) <= UNIT_TOL):
        gain = 1.0
    n = Neuron(shape, name, dynamics=CubaLIF(v_threshold=th, v_reset=0.0, decay=q, syn_decay=q_s,
                                             decay_input=decay_input, strict=True) if kind == "CubaLIF"
               else CubaLI(v_reset=0.0, decay=q, syn_decay=q_s, decay_input=decay_input))
    return _add_neuron(b, name, n, _scaled(b, name, src, _arr(gain) * _arr(factor)))


def _stored_dynamics(name: str, params: dict) -> Dynamics:
    """The exact dynamics our export wrote in the node metadata (``model`` names the type)."""
    try:
        return make(str(params.pop("model")), params)
    except (KeyError, ValueError, TypeError) as exc:
        raise _unsupported(name, f"its {META_KEY} metadata is not a neuron snncompile wrote ({exc})",
                           "re-export it, or remove the metadata") from None


def _add_neuron(b: _Builder, name: str, n: Neuron, src: str) -> str:
    """Add the neuron; spiking ones are recorded as neuron sources (compared spike for spike)."""
    out = b.add(name, n, [src])
    if n.emits_spikes:
        b.neurons[out] = name
    return out


def _not_yet(why: str, hint: str) -> Callable[..., str]:
    def conv(b: _Builder, name: str, node: Any, src: str) -> str:
        raise _unsupported(name, f"{type(node).__name__}: {why}", hint)
    return conv


def _table() -> dict[type, Callable[..., str]]:
    import nir

    table: dict[type, Callable[..., str]] = {
        nir.Input: _identity, nir.Output: _identity, nir.Affine: _affine, nir.Linear: _affine,
        nir.Scale: _scale, nir.Conv2d: _conv2d, nir.Conv1d: _conv1d, nir.Flatten: _flatten,
        nir.SumPool2d: _pool("sum"), nir.AvgPool2d: _pool("avg"), nir.IF: _neuron, nir.LIF: _neuron,
        nir.Threshold: _neuron, nir.LI: _neuron, nir.I: _neuron, nir.CubaLIF: _neuron, nir.CubaLI: _neuron,
        nir.Delay: _identity,   # a zero delay; others are built as IR Delays (import_nir)
    }
    for extra in ("Integrator", "Identity"):
        cls = getattr(nir, extra, None)
        if cls is not None:
            table[cls] = _identity if extra == "Identity" else _neuron
    return table


class _LazyTable(dict):
    def __missing__(self, key: type) -> Callable[..., str]:
        raise KeyError(key)

    def get(self, key: Any, default: Any = None) -> Any:  # type: ignore[override]
        if not self:
            self.update(_table())
        return super().get(key, default)

    def __iter__(self):  # noqa: ANN204
        if not self:
            self.update(_table())
        return super().__iter__()


_CONVERT: dict[type, Callable[..., str]] = _LazyTable()
