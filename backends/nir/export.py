"""Netlist → NIR graph: one neuron node per population, each projection as NIR primitives.

A projection whose chain is made of primitives NIR has is written as those primitives in
order — Conv2d (weights with their zeros: NIR has no sparse arrays; the window of OR
neurons as a one-hot kernel, which every reader has), SumPool2d (a sum pool), AvgPool2d, Flatten, Linear, Scale (a uniform or per-channel
factor) — so a convolution stays a kernel, never an unrolled matrix. Any other chain
(transpose, slice, concat, mask, reduce, a reshape that is not a flatten) is written as
one ``Affine`` holding its explicit synapse matrix. Several chains into one population
are several NIR paths, which NIR sums.

A population keeps its logical shape (C, H, W) when every projection into it is
structured and its removed neurons cannot change a kept one (:func:`_silent_removed`);
removed neurons are then written with the layer's own finite parameters and node metadata
``snncompile.alive`` marks them. Otherwise the population is written flat with its kept
neurons only. Its folded bias goes on the
last Conv2d (one value per channel) or Linear/Affine of one projection into it.

Neurons become NIR ``IF``, ``LIF``, ``LI``, ``I``, ``CubaLIF`` or ``CubaLI`` written for
dt = 1e-4 (τ = dt/q, r = 1 with ``decay_input`` else 1/q, w_in = 1/q_s), firing on
v > v_th as NIR states; node metadata ``snncompile`` keeps the exact IR neuron so that our
importer rebuilds it bit for bit. OR neurons (max pooling of spikes) are written with
threshold ½: x > ½ ⟺ x ≥ 1 for spike counts. A delay population (a recurrent loop, a
NIR Delay) is a NIR ``Delay`` of steps·dt; its drive's projections lead into it as into a
neuron, so a loop is written as NIR writes one: edges that close a cycle.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp
import torch

from backends.nir.dynamics import DT, NIR_NODE
from snncompile.errors import EXIT_UNSUPPORTED, SnnCompileError
from snncompile.frontend.nir_import import META_KEY
from snncompile.ir import BatchNorm, Conv2d, Linear, Node, Pool2d, Reshape, Scale
from snncompile.ir.dynamics import Dynamics, stored_params
from snncompile.netlist import (
    OUTPUT,
    Chain,
    DelayPopulation,
    FixedNetlist,
    HostPopulation,
    InputPopulation,
    Netlist,
    NeuronPopulation,
    OrPopulation,
    OutputKind,
    PopulationRegistry,
    ProductPopulation,
    Projection,
)
from snncompile.netlist.netlist import CANCELLED

DENSE_LIMIT = 50_000_000   # entries of one dense Affine fallback before the export refuses


def _unsupported(pop: str, why: str, hint: str) -> SnnCompileError:
    return SnnCompileError(f"NIR export: population `{pop}`: {why}", hint, EXIT_UNSUPPORTED)


@dataclass
class _Op:
    """One NIR primitive of a structured chain (``bias``: it can carry the target's bias)."""

    kind: str                 # "conv" | "linear" | "sumpool" | "avgpool" | "flatten" | "scale"
    node: Node
    in_shape: tuple[int, ...]
    scale: np.ndarray | None = None
    dims: tuple[int, int] = (0, -1)


def _flatten_dims(shape: tuple[int, ...], out: tuple[int, ...]) -> tuple[int, int] | None:
    """(start, end) when ``out`` merges the axes start..end of ``shape`` (a NIR Flatten)."""
    for s in range(len(shape)):
        for e in range(s, len(shape)):
            if (*shape[:s], int(np.prod(shape[s:e + 1])), *shape[e + 1:]) == tuple(out):
                return s, e
    return None


def _is_window(node: Conv2d, shape: tuple[int, ...]) -> bool:
    """A depthwise all-ones kernel (the synapses of OR neurons, a max-pool of spikes)."""
    w = node.effective_weight
    return node.groups == shape[0] == w.shape[0] and w.shape[1] == 1 and node.dilation == (1, 1) \
        and bool(np.all(w == 1.0))


def _structured(chain: Chain) -> list[_Op] | None:
    """The chain as NIR primitives, or None when one of its nodes has none."""
    ops: list[_Op] = []
    shape = tuple(chain.in_shape)
    for node in chain.nodes:
        out = tuple(node.shape)
        if isinstance(node, Conv2d) and len(shape) == 3:
            ops.append(_Op("sumpool" if _is_window(node, shape) else "conv", node, shape))
        elif isinstance(node, Linear) and len(shape) == 1:
            ops.append(_Op("linear", node, shape))
        elif isinstance(node, Pool2d) and len(shape) == 3 and (node.mode in ("sum", "max") or (
                node.mode == "avg" and (node.count_include_pad or node.padding == (0, 0)))):
            ops.append(_Op("avgpool" if node.mode == "avg" else "sumpool", node, shape))
        elif isinstance(node, Reshape):
            if out == shape:
                continue
            dims = _flatten_dims(shape, out)
            if dims is None:
                return None
            ops.append(_Op("flatten", node, shape, dims=dims))
        elif isinstance(node, Scale):
            if node.factor != 1.0:
                ops.append(_Op("scale", node, shape, scale=np.full(shape, float(node.factor))))
        elif isinstance(node, BatchNorm) and len(shape) > 1:
            factor, _ = node.scale_shift()   # the chain is linear: the shift is in the bias
            ops.append(_Op("scale", node, shape, scale=np.broadcast_to(
                factor.reshape((-1,) + (1,) * (len(shape) - 1)), shape).copy()))
        else:
            return None
        shape = out
    return ops


def _carries(op: _Op, bias: np.ndarray) -> bool:
    """Whether ``op`` (the last of a chain) can hold ``bias`` (of its output's shape)."""
    if op.kind == "linear":
        return True
    if op.kind == "conv":
        per_c = bias.reshape(bias.shape[0], -1)
        return bool(np.all(per_c == per_c[:, :1]))
    return False


def _indicator(a: np.ndarray, grad: bool = False) -> torch.Tensor:
    return torch.tensor(np.asarray(a, np.float64)[None], requires_grad=grad)


def _kept(net: Netlist, name: str) -> np.ndarray:
    """0/1 per logical unit of a population (the output: all ones)."""
    if name == OUTPUT:
        return np.ones(net.output_shape)
    p = net.populations[name]
    k = np.ones(p.logical_size)
    if p.index is not None:
        k[:] = 0.0
        k[p.index] = 1.0
    return k.reshape(p.shape)


def _silent_removed(net: Netlist, name: str, bias: np.ndarray | None) -> bool:
    """Whether the removed neurons of ``name`` may be written as ordinary neurons (finite,
    uniform parameters) without changing a kept neuron: every removed neuron with a stored
    synapse to a kept neuron has no stored synapse in and a constant drive that never
    reaches threshold (``never_fires``), so it stays silent in any reader. The other removed
    neurons may fire there, but reach only removed neurons (the dead-neuron pass removes
    them for that). A population masked by patches fails this and is written flat."""
    from snncompile.passes.dead_neurons import never_fires

    pop = net.populations[name]
    removed = 1.0 - _kept(net, name)
    x = _indicator(removed, grad=True)
    reach = torch.zeros((), dtype=torch.float64)
    for proj in (p for p in net.projections if p.src == name):
        for c in proj.chains:
            reach = reach + (c.apply(x, "pattern") * _indicator(_kept(net, proj.dst))).sum()
    if not reach.requires_grad:
        return True
    (g,) = torch.autograd.grad(reach, x)
    feeds = (g[0].numpy() > 0) & (removed > 0)
    if not feeds.any():
        return True
    drive = np.zeros(pop.shape)
    with torch.no_grad():
        for proj in net.into(name):
            for c in proj.chains:
                drive = drive + c.apply(_indicator(_kept(net, proj.src)), "pattern")[0].numpy().reshape(pop.shape)
    b = np.zeros(pop.shape) if bias is None else np.broadcast_to(bias, pop.shape)
    return not drive[feeds].any() and bool(np.all(never_fires(b[feeds], pop.params)))


class _Plan:
    """Which projections are written structured and which populations keep their shape."""

    def __init__(self, net: Netlist) -> None:
        self.net = net
        self.dsts = [n for n, p in net.populations.items() if not isinstance(p, InputPopulation)] + \
            ([OUTPUT] if net.output_kind is OutputKind.VALUES else [])
        self.ops = {id(p): [_structured(c) for c in p.chains] for p in net.projections}
        structured = {id(p) for p in net.projections if all(o is not None for o in self.ops[id(p)])}
        self.logical = set(self.dsts)
        # removed neurons that could fire and reach a kept one: the population is written flat
        unsafe = {d for d in self.dsts if d != OUTPUT and isinstance(net.populations[d], NeuronPopulation)
                  and net.populations[d].index is not None and not _silent_removed(net, d, self.bias(d))}
        while True:
            self.structured = structured
            self.logical = {net.source.name} | {
                d for d in self.dsts if d not in unsafe and net.into(d)
                and all(id(p) in structured for p in net.into(d))}
            keep = {id(p) for p in net.projections if id(p) in structured and p.src in self.logical
                    and p.dst in self.logical}
            for d in self.logical - {net.source.name}:
                if self.carrier(d) is None and net.into(d):   # the bias needs an Affine
                    keep.discard(id(net.into(d)[0]))
            if keep == structured:
                break
            structured = keep
        self.structured = structured

    def shape(self, name: str) -> tuple[int, ...]:
        if name == OUTPUT:
            return tuple(self.net.output_shape) if OUTPUT in self.logical else \
                (int(np.prod(self.net.output_shape)),)
        pop = self.net.populations[name]
        return tuple(pop.shape) if name in self.logical else (pop.size,)

    def bias(self, name: str) -> np.ndarray | None:
        """The target's bias in its written shape (removed neurons: their channel's value)."""
        if name == OUTPUT:
            b = self.net.output_bias
            return None if b is None else np.asarray(b, np.float64).reshape(self.shape(OUTPUT))
        pop = self.net.populations[name]
        if pop.bias is None:
            return None
        b = np.broadcast_to(np.asarray(pop.bias, np.float64).reshape(-1), (pop.size,))
        if name not in self.logical or pop.index is None:
            return b.reshape(self.shape(name)).copy()
        full = np.full(pop.logical_size, np.nan)
        full[pop.index] = b
        full = full.reshape(pop.shape)
        if full.ndim > 1:   # removed neurons take their channel's value (they never fire)
            per_c = full.reshape(full.shape[0], -1)
            fill = np.array([r[~np.isnan(r)][0] if np.any(~np.isnan(r)) else 0.0 for r in per_c])
            full = np.where(np.isnan(per_c), fill[:, None], per_c).reshape(pop.shape)
        return np.nan_to_num(full, nan=0.0)

    def carrier(self, name: str) -> tuple[int, int] | None:
        """(projection index, chain index) of the structured chain holding ``name``'s bias;
        (-1, -1) when the bias is zero; None when no structured chain can hold it."""
        b = self.bias(name)
        if b is None or not np.any(b):
            return -1, -1
        for i, proj in enumerate(self.net.into(name)):
            if id(proj) not in self.structured:
                return None if i == 0 else (i, -1)
            for k, ops in enumerate(self.ops[id(proj)]):
                if ops and _carries(ops[-1], b):
                    return i, k
        return None


def _matrix(proj: Projection, rows: np.ndarray | None, cols: np.ndarray | None) -> np.ndarray:
    """The projection's explicit synapses (dense: NIR has no sparse arrays), rows × cols selected."""
    m = proj.chains[0].matrix()
    for c in proj.chains[1:]:
        m = (m + c.matrix()).tocsr()
    m = sp.csr_matrix(m)
    if rows is not None:
        m = m[rows]
    if cols is not None:
        m = m[:, cols]
    dense = m.toarray()
    dense[np.abs(dense) <= CANCELLED * np.abs(dense).max(initial=0.0)] = 0.0
    return dense


NIR_POPULATION = PopulationRegistry("NIR node")   # (name, population, logical shape?) → its NIR node


@NIR_POPULATION.register(DelayPopulation)
def _delay(name: str, pop: DelayPopulation, logical: bool) -> Any:
    """y(t) = x(t − τ), τ = steps·dt."""
    import nir

    shape = tuple(pop.shape) if logical else (pop.size,)
    return nir.Delay(delay=np.broadcast_to(np.asarray(pop.steps, np.float64) * DT,
                                           tuple(pop.shape)).reshape(shape).copy())


@NIR_POPULATION.register(InputPopulation)
def _input(name: str, pop: InputPopulation, logical: bool) -> Any:
    raise ValueError(f"`{name}` is the input: written as the graph's Input node by to_nir")


def _product(name: str, pop: ProductPopulation, logical: bool) -> Any:
    raise _unsupported(name, "a spike-spike product (attention) has no NIR primitive",
                       "export a network without spiking self-attention")


_product.refused = True  # type: ignore[attr-defined]
NIR_POPULATION.register(ProductPopulation)(_product)


def _host(name: str, pop: HostPopulation, logical: bool) -> Any:
    raise _unsupported(name, f"a host partition ({pop.fn.describe()} at `{pop.source}`) has no NIR primitive: NIR "
                       "describes neurons and static synapses, not real-valued or data-dependent operations "
                       "(GELU, softmax, top-k, gathers, real products, max of real values)",
                       "export the network without its host operations (--no-host tells which they are)")


_host.refused = True  # type: ignore[attr-defined]
NIR_POPULATION.register(HostPopulation)(_host)


@NIR_POPULATION.register(NeuronPopulation, OrPopulation)
def _neuron(name: str, pop: NeuronPopulation, logical: bool) -> Any:
    p: Dynamics = pop.params
    if p.v_reset is None:
        by = "" if p.reset_by is None else f" by {float(p.reset_by):g} (snnTorch's 'subtract'/'none' reset)"
        raise _unsupported(name, f"soft (subtractive) reset{by} has no NIR primitive (NIR neurons reset to v_reset)",
                           "train with a hard reset (v_reset=0.0; snnTorch: reset_mechanism='zero'), "
                           "or keep the lava target")
    shape = tuple(pop.shape) if logical else (pop.size,)
    full = np.ones(shape)
    th = np.broadcast_to(np.asarray(p.v_threshold if p.spiking else 1.0, np.float64).reshape(-1), (pop.size,)).copy()
    meta: dict[str, Any] = {"model": p.name, **stored_params(p)}
    if logical and pop.index is not None:
        # removed neurons: present with finite parameters (their layer's threshold; the plan
        # made sure they cannot change a kept neuron), marked for our importer
        alive = np.zeros(pop.logical_size, dtype=np.uint8)
        alive[pop.index] = 1
        th_full = np.full(pop.logical_size, float(np.median(th)) if th.size else 1.0)
        th_full[pop.index] = th
        th = th_full
        meta["alive"] = alive.reshape(shape)
    return NIR_NODE(p)(p, full, th.reshape(shape), full * p.v_reset, {META_KEY: meta})


def _pair(v: tuple[int, int]) -> np.ndarray:
    return np.array([int(v[0]), int(v[1])])


def _nir_op(op: _Op, bias: np.ndarray | None) -> Any:
    import nir

    node = op.node
    if op.kind == "conv":
        w = np.asarray(node.effective_weight, np.float64)
        b = np.zeros(w.shape[0]) if bias is None else bias.reshape(bias.shape[0], -1)[:, 0].copy()
        return nir.Conv2d(input_shape=tuple(op.in_shape[1:]), weight=w, stride=_pair(node.stride),
                          padding=_pair(node.padding), dilation=_pair(node.dilation), groups=int(node.groups),
                          bias=b)
    if op.kind == "linear":
        w = np.asarray(node.effective_weight, np.float64)
        return nir.Linear(weight=w) if bias is None else nir.Affine(weight=w, bias=bias.reshape(-1).copy())
    if op.kind == "sumpool" and isinstance(node, Conv2d):
        # an OR window as an ordinary Conv2d (one-hot across channels): every reader has
        # Conv2d, few have SumPool2d (snnTorch) or grouped convolutions (spikingjelly)
        c, (kh, kw) = node.weight.shape[0], node.weight.shape[2:]
        w = np.zeros((c, c, kh, kw))
        w[np.arange(c), np.arange(c)] = 1.0
        return nir.Conv2d(input_shape=tuple(op.in_shape[1:]), weight=w, stride=_pair(node.stride),
                          padding=_pair(node.padding), dilation=_pair(node.dilation), groups=1, bias=np.zeros(c))
    if op.kind in ("sumpool", "avgpool"):
        cls = nir.SumPool2d if op.kind == "sumpool" else nir.AvgPool2d
        kernel = node.weight.shape[2:] if isinstance(node, Conv2d) else node.kernel
        return cls(kernel_size=_pair(kernel), stride=_pair(node.stride), padding=_pair(node.padding))
    if op.kind == "flatten":
        # negative axes: NIR counts per-sample axes, snnTorch and Norse hand the dims to
        # torch.nn.Flatten with the batch axis in front; counted from the end, both agree
        nd = len(op.in_shape)
        return nir.Flatten(input_type={"input": np.array(op.in_shape)}, start_dim=op.dims[0] - nd,
                           end_dim=op.dims[1] - nd)
    return nir.Scale(scale=op.scale)


def _refuse_unwritable(net: Netlist) -> None:
    """Fixed-point netlists and spike-spike products have no NIR form."""
    if isinstance(net, FixedNetlist):
        raise SnnCompileError("NIR export writes the float network", "drop --fixed-point", EXIT_UNSUPPORTED)
    for name, pop in net.populations.items():
        write = NIR_POPULATION(pop)
        if getattr(write, "refused", False):   # before anything is written
            write(name, pop, False)


def to_nir(net: Netlist) -> Any:
    """The NIR graph of ``net`` (float netlists only)."""
    import nir

    _refuse_unwritable(net)
    plan = _Plan(net)
    nodes: dict[str, Any] = {}
    edges: list[tuple[str, str]] = []
    inp = net.source.name
    nodes["input"] = nir.Input(input_type={"input": np.array(plan.shape(inp))})
    out_of = {inp: "input"}
    for name, pop in sorted(net.populations.items(), key=lambda kv: kv[1].depth):
        if not isinstance(pop, InputPopulation):
            out_of[name] = net.label(name)   # nodes named by the user's module paths
            nodes[out_of[name]] = NIR_POPULATION(pop)(name, pop, name in plan.logical)
    flat: dict[str, str] = {}

    def flat_of(src: str) -> str:
        shape = plan.shape(src)
        if len(shape) == 1:
            return out_of[src]
        if src not in flat:
            flat[src] = f"{out_of[src]}_flat"
            nodes[flat[src]] = nir.Flatten(input_type={"input": np.array(shape)}, start_dim=-len(shape), end_dim=-1)
            edges.append((out_of[src], flat[src]))
        return flat[src]

    for dst in plan.dsts:
        target = "output" if dst == OUTPUT else out_of[dst]
        label = "readout" if dst == OUTPUT else out_of[dst]
        bias = plan.bias(dst)
        carrier = plan.carrier(dst) if all(id(p) in plan.structured for p in net.into(dst)) else None
        placed = bias is None or not np.any(bias)
        for i, proj in enumerate(net.into(dst)):
            base = f"w_{out_of[proj.src]}_{label}"
            if id(proj) in plan.structured:
                for k, ops in enumerate(plan.ops[id(proj)]):
                    prev = out_of[proj.src]
                    for j, op in enumerate(ops):
                        holds = not placed and carrier == (i, k) and j == len(ops) - 1
                        nodes[f"{base}_{k}_{j}"] = _nir_op(op, bias if holds else None)
                        placed |= holds
                        edges.append((prev, f"{base}_{k}_{j}"))
                        prev = f"{base}_{k}_{j}"
                    edges.append((prev, target))
                continue
            dpop = None if dst == OUTPUT else net.populations[dst]
            spop = net.populations[proj.src]
            rows = dpop.index if dpop is not None and dst not in plan.logical else None
            cols = spop.index if proj.src not in plan.logical else None
            n_rows = len(rows) if rows is not None else int(np.prod(proj.chains[0].out_shape))
            n_cols = len(cols) if cols is not None else int(np.prod(proj.in_shape))
            if n_rows * n_cols > DENSE_LIMIT:
                kinds = ", ".join(type(n).__name__ for c in proj.chains for n in c.nodes)
                raise _unsupported(label, f"the projection from `{proj.src}` ({kinds}) has no NIR primitive form "
                                   f"and its dense matrix would have {n_rows * n_cols:,} entries",
                                   "NIR stores weights as dense arrays; export a model whose layers are "
                                   "Conv2d/Linear/pooling/flatten chains")
            w = _matrix(proj, rows, cols)
            b = np.zeros(w.shape[0]) if placed else np.asarray(bias, np.float64).reshape(-1)
            placed = True
            nodes[base] = nir.Affine(weight=w, bias=b.copy())
            edges += [(flat_of(proj.src), base), (base, target)]
    if net.output_kind.from_population:
        edges.append((out_of[net.output_pop], "output"))
        out_shape = plan.shape(net.output_pop)
    else:
        out_shape = plan.shape(OUTPUT)
    nodes["output"] = nir.Output(output_type={"output": np.array(out_shape)})
    return nir.NIRGraph(nodes=nodes, edges=edges, metadata={f"{META_KEY}.dt": DT}, type_check=False)


def nir_bytes(net: Netlist) -> bytes:
    import nir

    buf = io.BytesIO()
    nir.write(buf, to_nir(net))
    return buf.getvalue()
