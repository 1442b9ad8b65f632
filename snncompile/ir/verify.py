"""The IR verifier: per node type, the invariants every pass must keep.

One check per node type in :data:`CHECKS` (a :class:`~snncompile.ir.registry.Registry`):
arity (number of graph inputs), output shape against the inputs' shapes, dtypes, mask
shapes and parameter ranges. A check returns the problems it found as sentences; the
graph-level :func:`verify_graph` raises :class:`IRVerificationError` naming the node, its
source module and the first problem. Neuron models' own parameters (τ, decay, …) are the
dynamics' business; here a Neuron is checked only for its population-wide fields.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import numpy as np

from snncompile.ir.nodes import (
    AdaptiveAvgPool2d,
    Add,
    BatchNorm,
    Concat,
    Conv2d,
    Delay,
    Host,
    Input,
    Linear,
    Mask,
    MatMul,
    Neuron,
    Node,
    Output,
    Pool2d,
    Reduce,
    Reshape,
    Scale,
    Slice,
    Transpose,
)
from snncompile.ir.registry import Registry

if TYPE_CHECKING:
    from snncompile.ir.graph import IRGraph

Shape = tuple[int, ...]
Problems = Iterator[str]
CHECKS = Registry("verification")


class IRVerificationError(ValueError):
    """The IR breaks an invariant (a bug in a frontend or a pass, not a user error)."""

    def __init__(self, node: str, source: str, problem: str, stage: str = "") -> None:
        self.node, self.source, self.problem, self.stage = node, source, problem, stage
        where = f" (from {source})" if source else ""
        after = f"after {stage}: " if stage else ""
        super().__init__(f"{after}IR node {node!r}{where}: {problem}")


def verify_graph(graph: IRGraph, stage: str = "") -> None:
    """Raise :class:`IRVerificationError` on the first broken invariant of ``graph``;
    ``stage`` (e.g. "pass prune_synapses") is named in the message."""
    for name in graph.nx.nodes:
        node = graph.node(name)
        problem = _edges_problem(graph, name) or next(iter(_node_problems(graph, name, node)), None)
        if problem:
            raise IRVerificationError(name, node.source, problem, stage)
    try:
        graph.schedule()
    except ValueError as exc:
        raise IRVerificationError(graph.name, "", str(exc), stage) from None


def _edges_problem(graph: IRGraph, name: str) -> str | None:
    ins = graph.inputs(name)
    preds = set(graph.nx.predecessors(name))   # x + x reads one source twice over one edge
    if preds != set(ins):
        return f"graph edges from {sorted(preds)} disagree with its inputs {ins}"
    return None


def _node_problems(graph: IRGraph, name: str, node: Node) -> Problems:
    ins = [tuple(graph.node(s).shape) for s in graph.inputs(name)]
    if any(not isinstance(d, (int, np.integer)) or d < 1 for d in node.shape):
        yield f"shape {tuple(node.shape)} has a dimension that is not a positive int"
        return
    yield from CHECKS(node)(node, ins)


# -- helpers -------------------------------------------------------------------------------
def _arity(ins: list[Shape], n: int | tuple[int, int]) -> Problems:
    lo, hi = (n, n) if isinstance(n, int) else n
    if not lo <= len(ins) <= hi:
        want = str(lo) if lo == hi else f"{lo} to {hi}"
        yield f"has {len(ins)} graph input(s), needs {want}"


def _same_shape(node: Node, shape: Shape, what: str = "input") -> Problems:
    if tuple(node.shape) != tuple(shape):
        yield f"shape {tuple(node.shape)} differs from its {what}'s {tuple(shape)}"


def _array(node: Node, field: str, shape: Shape | None, kind: str = "f", optional: bool = True,
           owner: object = None) -> Problems:
    """``field`` (of ``owner``, default the node) is None (if ``optional``) or an array of
    dtype kind ``kind`` ('f' float, 'b' bool, 'i' int) and ``shape``, with finite values."""
    a = getattr(node if owner is None else owner, field, None)
    if a is None:
        if not optional:
            yield f"{field} is missing"
        return
    if not isinstance(a, np.ndarray):
        yield f"{field} is a {type(a).__name__}, not a numpy array"
        return
    if kind == "f" and a.dtype.kind not in "f":
        yield f"{field} has dtype {a.dtype}, needs a float dtype"
    elif kind == "b" and a.dtype != np.bool_:
        yield f"{field} has dtype {a.dtype}, needs bool"
    elif kind == "i" and a.dtype.kind not in "iu":
        yield f"{field} has dtype {a.dtype}, needs an integer dtype"
    if shape is not None and tuple(a.shape) != tuple(shape):
        yield f"{field} has shape {tuple(a.shape)}, needs {tuple(shape)}"
    if kind == "f" and a.dtype.kind == "f" and not np.all(np.isfinite(a)):
        yield f"{field} has non-finite values"


def _pairs(node: Node, **lows: int) -> Problems:
    for field, low in lows.items():
        v = getattr(node, field)
        if len(v) != 2 or any(not isinstance(e, (int, np.integer)) or e < low for e in v):
            yield f"{field} {v} must be two ints ≥ {low}"


def _window_out(size: int, kernel: int, stride: int, pad: int, dilation: int = 1) -> int:
    """torch's floor output size: ⌊(n + 2p − d·(k − 1) − 1) / s⌋ + 1."""
    return (size + 2 * pad - dilation * (kernel - 1) - 1) // stride + 1


def _axis(axis: int, ndim: int) -> Problems:
    if not 0 <= axis < ndim:
        yield f"axis {axis} is outside the {ndim} per-sample axes"


def _scalar_finite(node: Node, *fields: str) -> Problems:
    for field in fields:
        v = getattr(node, field)
        if not _finite_scalar(v):
            yield f"{field} {v!r} must be a finite number"


# -- checks per node type ------------------------------------------------------------------
@CHECKS.register(Input)
def _input(node: Input, ins: list[Shape]) -> Problems:
    yield from _arity(ins, 0)


@CHECKS.register(Output, Reshape)
def _same_size(node: Node, ins: list[Shape]) -> Problems:
    yield from _arity(ins, 1)
    if len(ins) == 1 and int(np.prod(ins[0])) != node.size:
        yield f"shape {tuple(node.shape)} has {node.size} elements, its input {ins[0]} has {int(np.prod(ins[0]))}"


@CHECKS.register(Conv2d)
def _conv(node: Conv2d, ins: list[Shape]) -> Problems:
    yield from _arity(ins, 1)
    bad = [*_synapse_arrays(node, 4), *_pairs(node, stride=1, padding=0, dilation=1)]
    if not isinstance(node.groups, (int, np.integer)) or node.groups < 1:
        bad.append(f"groups {node.groups} must be an int ≥ 1")
    yield from bad
    if bad or len(ins) != 1:
        return
    if len(ins[0]) != 3 or len(node.shape) != 3:
        yield f"needs (C, H, W) shapes, has input {ins[0]} and output {tuple(node.shape)}"
        return
    yield from _conv_sizes(node, ins[0])


def _conv_sizes(node: Conv2d, x: Shape) -> Problems:
    c_out, c_in_g, kh, kw = node.weight.shape
    g = node.groups
    if x[0] % g or c_out % g:
        yield f"groups {g} do not divide the channels (in {x[0]}, out {c_out})"
    if c_in_g * g != x[0]:
        yield f"weight {node.weight.shape} with groups {g} reads {c_in_g * g} channels, the input has {x[0]}"
    h, w = (_window_out(x[1 + a], (kh, kw)[a], node.stride[a], node.padding[a], node.dilation[a]) for a in (0, 1))
    if tuple(node.shape) != (c_out, h, w):
        yield f"shape {tuple(node.shape)} should be {(c_out, h, w)} for input {x} (conv output size formula)"


def _synapse_arrays(node: Conv2d | Linear, ndim: int) -> Problems:
    yield from _array(node, "weight", None, optional=False)
    if not isinstance(node.weight, np.ndarray):
        return
    if node.weight.ndim != ndim:
        yield f"weight has {node.weight.ndim} dimensions, needs {ndim}"
        return
    yield from _array(node, "mask", node.weight.shape, kind="b", optional=False)
    per_out = (node.weight.shape[0],)
    yield from _array(node, "bias", per_out)
    yield from _array(node, "gain", per_out)
    yield from _array(node, "alpha", per_out)
    if isinstance(node.gain, np.ndarray) and np.any(node.gain == 0):
        yield "gain has zeros (a folded BatchNorm factor is never 0)"
    if not isinstance(node.weight_bits, (int, np.integer)) or node.weight_bits < 1:
        yield f"weight_bits {node.weight_bits} must be an int ≥ 1"


@CHECKS.register(Linear)
def _linear(node: Linear, ins: list[Shape]) -> Problems:
    yield from _arity(ins, 1)
    yield from _synapse_arrays(node, 2)
    if len(ins) != 1 or not isinstance(node.weight, np.ndarray) or node.weight.ndim != 2:
        return
    x = ins[0]
    n_out, n_in = node.weight.shape
    if not x or x[-1] != n_in:
        yield f"weight {node.weight.shape} reads {n_in} features, the input {x} has {x[-1] if x else 0}"
    elif tuple(node.shape) != x[:-1] + (n_out,):
        yield f"shape {tuple(node.shape)} should be {x[:-1] + (n_out,)} for weight {node.weight.shape}"


@CHECKS.register(BatchNorm)
def _batchnorm(node: BatchNorm, ins: list[Shape]) -> Problems:
    yield from _arity(ins, 1)
    if len(ins) == 1:
        yield from _same_shape(node, ins[0])
    channels = (node.shape[0],) if node.shape else (1,)
    for field in ("mean", "var", "weight", "bias"):
        yield from _array(node, field, channels, optional=False)
    if isinstance(node.var, np.ndarray) and np.any(node.var < 0):
        yield "var has negative values"
    if not np.isscalar(node.eps) or not node.eps >= 0:
        yield f"eps {node.eps!r} must be a number ≥ 0"
    elif isinstance(node.var, np.ndarray) and np.any(node.var + node.eps <= 0):
        yield "var + eps is 0 somewhere (division by zero)"


@CHECKS.register(Pool2d)
def _pool(node: Pool2d, ins: list[Shape]) -> Problems:
    yield from _arity(ins, 1)
    if node.mode not in ("max", "avg", "sum"):
        yield f"mode {node.mode!r} is not max, avg or sum"
    bad = list(_pairs(node, kernel=1, stride=1, padding=0))
    yield from bad
    if bad or len(ins) != 1:
        return
    x = ins[0]
    if len(x) != 3:
        yield f"needs a (C, H, W) input, has {x}"
        return
    if any(2 * p > k for p, k in zip(node.padding, node.kernel)):
        yield f"padding {node.padding} is more than half the kernel {node.kernel}"
    hw = tuple(_window_out(x[1 + a], node.kernel[a], node.stride[a], node.padding[a]) for a in (0, 1))
    if tuple(node.shape) != (x[0], *hw):
        yield f"shape {tuple(node.shape)} should be {(x[0], *hw)} for input {x} (pool output size formula)"


@CHECKS.register(AdaptiveAvgPool2d)
def _adaptive(node: AdaptiveAvgPool2d, ins: list[Shape]) -> Problems:
    yield from _arity(ins, 1)
    if len(ins) == 1 and (len(ins[0]) != 3 or len(node.shape) != 3 or ins[0][0] != node.shape[0]):
        yield f"shape {tuple(node.shape)} and input {ins[0]} must be (C, H, W) with the same C"


@CHECKS.register(Add)
def _add(node: Add, ins: list[Shape]) -> Problems:
    yield from _arity(ins, 2)
    for x in ins:
        yield from _same_shape(node, x)


@CHECKS.register(Mask)
def _mask(node: Mask, ins: list[Shape]) -> Problems:
    yield from _arity(ins, 1)
    if len(ins) == 1:
        yield from _same_shape(node, ins[0])
    yield from _array(node, "keep", tuple(node.shape), kind="b", optional=False)


@CHECKS.register(Neuron)
def _neuron(node: Neuron, ins: list[Shape]) -> Problems:
    yield from _arity(ins, 1)
    if len(ins) == 1 and int(np.prod(ins[0])) != node.size:
        yield f"shape {tuple(node.shape)} has {node.size} neurons, its input {ins[0]} {int(np.prod(ins[0]))} values"
    yield from _array(node, "alive", tuple(node.shape), kind="b")
    # the model's own parameters are checked by its dynamics; per-neuron arrays must fit the node
    dyn = node.dynamics
    for field in ("v_threshold", "reset_by"):
        v = getattr(dyn, field, None)
        if isinstance(v, np.ndarray) and v.ndim > 0:
            yield from _array(node, field, tuple(node.shape), owner=dyn)
        elif v is not None and not _finite_scalar(v):
            yield f"{field} {v!r} must be a finite scalar or an array of the node's shape"


def _finite_scalar(v: object) -> bool:
    try:
        return bool(np.isfinite(float(v)))  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return False


@CHECKS.register(Transpose)
def _transpose(node: Transpose, ins: list[Shape]) -> Problems:
    yield from _arity(ins, 1)
    if len(ins) != 1:
        return
    x = ins[0]
    if sorted(node.perm) != list(range(len(x))):
        yield f"perm {node.perm} is not a permutation of the input's {len(x)} axes"
    elif tuple(node.shape) != tuple(x[p] for p in node.perm):
        yield f"shape {tuple(node.shape)} should be {tuple(x[p] for p in node.perm)} (input {x}, perm {node.perm})"


@CHECKS.register(Scale)
def _scale(node: Scale, ins: list[Shape]) -> Problems:
    yield from _arity(ins, 1)
    if len(ins) == 1:
        yield from _same_shape(node, ins[0])
    yield from _scalar_finite(node, "factor", "offset")


@CHECKS.register(Reduce)
def _reduce(node: Reduce, ins: list[Shape]) -> Problems:
    yield from _arity(ins, 1)
    if node.mode not in ("mean", "sum"):
        yield f"mode {node.mode!r} is not mean or sum"
    if len(ins) != 1:
        return
    x = ins[0]
    bad = list(_axis(node.axis, len(x)))
    yield from bad
    if not bad:
        want = x[:node.axis] + ((1,) if node.keepdim else ()) + x[node.axis + 1:]
        yield from _same_shape(node, want, "reduced input")


@CHECKS.register(Host)
def _host(node: Host, ins: list[Shape]) -> Problems:
    yield from _arity(ins, node.fn.arity)
    if node.fn.elementwise and len(ins) == 1:
        yield from _same_shape(node, ins[0], "host operation's input")


@CHECKS.register(MatMul)
def _matmul(node: MatMul, ins: list[Shape]) -> Problems:
    yield from _arity(ins, 2)
    if node.mode not in ("matmul", "hadamard"):
        yield f"mode {node.mode!r} is not matmul or hadamard"
        return
    if len(ins) != 2:
        return
    want = _matmul_shape(node.mode, *ins)
    if want is None:
        yield f"inputs {ins[0]} and {ins[1]} do not broadcast for {node.mode}"
    else:
        yield from _same_shape(node, want, "product")


def _matmul_shape(mode: str, a: Shape, b: Shape) -> Shape | None:
    try:
        if mode == "hadamard":
            return tuple(np.broadcast_shapes(a, b))
        if len(a) < 2 or len(b) < 2 or a[-1] != b[-2]:
            return None
        return tuple(np.broadcast_shapes(a[:-2], b[:-2])) + (a[-2], b[-1])
    except ValueError:
        return None


@CHECKS.register(Concat)
def _concat(node: Concat, ins: list[Shape]) -> Problems:
    if node.slot >= 0:  # the one-input form of a lowered chain
        yield from _arity(ins, 1)
        if node.slot >= len(node.sizes):
            yield f"slot {node.slot} has no size in sizes {node.sizes}"
        return
    yield from _arity(ins, (1, 1 << 30))
    if not ins:
        return
    bad = list(_axis(node.axis, len(node.shape)))
    yield from bad
    if bad:
        return
    rest = [x[:node.axis] + x[node.axis + 1:] for x in ins]
    want_rest = tuple(node.shape[:node.axis]) + tuple(node.shape[node.axis + 1:])
    if any(len(x) != len(node.shape) or r != want_rest for x, r in zip(ins, rest)):
        yield f"inputs {ins} differ from the shape {tuple(node.shape)} outside axis {node.axis}"
    elif sum(x[node.axis] for x in ins) != node.shape[node.axis]:
        yield f"inputs {ins} add up to {sum(x[node.axis] for x in ins)} along axis {node.axis}, " \
              f"the shape has {node.shape[node.axis]}"


@CHECKS.register(Slice)
def _slice(node: Slice, ins: list[Shape]) -> Problems:
    yield from _arity(ins, 1)
    if len(ins) != 1:
        return
    x = ins[0]
    bad = list(_axis(node.axis, len(x)))
    yield from bad
    if bad:
        return
    if not 0 <= node.start < node.stop <= x[node.axis]:
        yield f"range {node.start}:{node.stop} is not inside the input's {x[node.axis]} along axis {node.axis}"
        return
    want = x[:node.axis] + (node.stop - node.start,) + x[node.axis + 1:]
    yield from _same_shape(node, want, "slice of the input")


@CHECKS.register(Delay)
def _delay(node: Delay, ins: list[Shape]) -> Problems:
    yield from _arity(ins, 1)
    if len(ins) == 1:
        yield from _same_shape(node, ins[0])
    k = node.steps
    if isinstance(k, np.ndarray):
        yield from _array(node, "steps", tuple(node.shape), kind="i", optional=False)
    elif not isinstance(k, (int, np.integer)):
        yield f"steps {k!r} must be an int or an int array of the node's shape"
        return
    if np.size(k) and np.min(k) < 1:
        yield f"steps must be ≥ 1, the smallest is {np.min(k)}"
