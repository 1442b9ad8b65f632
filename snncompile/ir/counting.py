"""Closed-form synapse and MAC counts per IR node (no unrolled matrices).

Conventions (shared with the energy report and the netlist):
- ``synapses``: (pre-neuron, post-neuron) pairs joined by a stored synapse (the node's
  ``mask``); convolutions count over output positions with padding excluded; pairs whose
  source is not driven by a live neuron, or whose target reaches no live neuron (removed
  neurons, masked patches), do not count. Computed as ⟨reaching, P(reached)⟩ with P the
  node's 0/1 pattern map (:mod:`snncompile.ir.structure`).
- ``synapses_dense``: the same count with every weight present and every neuron live.
- ``macs``: multiply-accumulates of the ANN with the same topology for one forward pass
  (conv: Cout·Hout·Wout·Cin/groups·k², padding included, as published MAC tables count).
"""

from __future__ import annotations

import math
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch

from snncompile.ir.graph import IRGraph
from snncompile.ir.memo import MISSING, memo, recalled
from snncompile.ir.memo import keep as keep_for
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
    Output,
    Pool2d,
    Reduce,
    Reshape,
    Scale,
    Slice,
    Transpose,
)
from snncompile.ir.registry import Registry
from snncompile.ir.semantics import STEP
from snncompile.ir.structure import Liveness, liveness, spike_valued

SYNAPSES = Registry("synapse count")
# node fields no count reads: messages, the lowering's implementation choice, storage width
ANNOTATIONS = frozenset({"source", "impl", "weight_bits"})


@dataclass(frozen=True)
class SynapseCount:
    synapses: int
    synapses_dense: int
    macs: int


def binary_scales(weight: np.ndarray, mask: np.ndarray) -> np.ndarray | None:
    """Per-output-row α if every stored nonzero weight of each row is exactly ±α_row, else
    None. The one definition of "binary" (the binarize pass and the energy report use it)."""
    rows = weight.shape[0]
    dense = all_stored(mask)
    if dense and weight[0].size >= 2:   # two stored weights of row 0 of different nonzero size: real-valued
        a, b = abs(float(weight.flat[0])), abs(float(weight.flat[1]))
        if a > 0 and b > 0 and a != b:
            return None
    # a dense layer's mask selects every weight: the row itself, without a boolean gather
    first = np.abs(weight[0] if dense else weight[0][mask[0]])
    first = first[first > 0]  # cheap early exit on real-valued layers, before touching all weights
    if first.size and first.max() != first.min():
        return None
    mag = np.abs(np.where(mask, weight, 0)).reshape(rows, -1)
    alpha = mag.max(axis=1)
    live = mag > 0
    if not live.any() or not np.all((mag == alpha[:, None]) | ~live):
        return None
    return alpha.astype(np.float64)


def all_stored(mask: np.ndarray) -> bool:
    """True for the storage-free all-true mask of a dense layer (a broadcast view): its
    sums are known without visiting every weight."""
    return mask.size > 0 and all(st == 0 for st in mask.strides) and bool(mask.flat[0])


def nonzero_weights(node: Conv2d | Linear) -> int:
    """Stored weights with a nonzero value: 1 − this / ``weight.size`` is the weight sparsity
    (a different figure from the synapse sparsity, which counts over output positions)."""
    return nonzero_weights_of([node])[0]


def nonzero_weights_of(nodes: list[Conv2d | Linear]) -> list[int]:
    """:func:`nonzero_weights` of each node, remembered while its arrays live (a sweep
    re-estimates the same graph). Reading every weight is bound by memory bandwidth, which
    one core does not use up: many weights are read on two threads, the chunks shared out
    between them (numpy's comparison releases the GIL). ResNet-18's 47 MB: ~3.4 → ~2.7 ms;
    VGG-16's 553 MB: ~35 → ~23 ms. (Beside the Python work of an estimate instead, it took
    longer: each hand-over of the GIL to the counting thread waits for the other.)"""
    counts = [recalled("nonzero_weights", (n.weight, n.mask)) for n in nodes]
    todo = [i for i, c in enumerate(counts) if c is MISSING]
    sums = _count_parts([(i, part, k) for i in todo for part, k in _chunks(nodes[i])], len(nodes))
    for i in todo:
        counts[i] = int(sums[i])
        keep_for("nonzero_weights", (nodes[i].weight, nodes[i].mask), counts[i])
    return counts


def _chunks(node: Conv2d | Linear) -> Iterator[tuple[np.ndarray, np.ndarray | None]]:
    """The weights a chunk at a time (with the mask's chunk; None: every weight stored)."""
    flat = node.weight.reshape(-1)
    mask = None if all_stored(node.mask) else node.mask.reshape(-1)
    for start in range(0, flat.size, _CHUNK):
        yield flat[start:start + _CHUNK], None if mask is None else mask[start:start + _CHUNK]


def _count_parts(parts: list[tuple[int, np.ndarray, np.ndarray | None]], n: int) -> np.ndarray:
    """Per node index, the stored nonzero weights in ``parts``; on two threads when there
    are many and this process may use two cores."""
    if sum(p.size for _, p, _ in parts) < _TWO_THREADS or _cores() < 2:
        return _count(parts, n)
    theirs: list = []

    def count_theirs() -> None:
        try:
            theirs.append(_count(parts[1::2], n))
        except BaseException as exc:   # raised again on the calling thread
            theirs.append(exc)

    # a thread of its own per call (~50 µs), not a pool: a pool's thread does not survive a fork
    helper = threading.Thread(target=count_theirs, name="snncompile-count", daemon=True)
    helper.start()
    try:
        mine = _count(parts[0::2], n)
    finally:
        helper.join()
    if isinstance(theirs[0], BaseException):
        raise theirs[0]
    return mine + theirs[0]


def _count(parts: list[tuple[int, np.ndarray, np.ndarray | None]], n: int) -> np.ndarray:
    """Stored weights not equal to zero (NaN counts) per node index, a chunk at a time
    through one small buffer: a boolean array the size of a large layer would be allocated
    (and page-faulted) anew on every call (VGG-16's first classifier: 103 M weights, 55 ms
    whole against 39 ms in chunks)."""
    out = np.zeros(n, dtype=np.int64)
    buf = np.empty(_CHUNK, dtype=bool)
    for i, part, k in parts:
        z = buf[:part.size]
        np.equal(part, 0, out=z)
        if k is None:
            out[i] += part.size - int(np.count_nonzero(z))
        else:
            out[i] += int(np.count_nonzero(k)) - int(np.count_nonzero(z & k))
    return out


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover  (not Linux)
        return os.cpu_count() or 1


_CHUNK = 1 << 18
_TWO_THREADS = 1 << 22   # weights (~16 MB of float32): fewer are read faster than a thread starts


# Pure functions of ints (shapes, strides): remembered across the tickets of one
# architecture. Equal arguments of another type (1.0 for 1) give the same counts, so one
# entry serves both. The arrays are shared by every caller: read-only.
@lru_cache(maxsize=1024)
def _valid_counts(n_in: int, n_out: int, k: int, s: int, p: int, d: int) -> np.ndarray:
    """For each kernel tap, the number of output positions where it lands inside the input."""
    o = np.arange(n_out)[None, :] * s - p + np.arange(k)[:, None] * d
    counts = ((o >= 0) & (o < n_in)).sum(axis=1)
    counts.flags.writeable = False
    return counts


@lru_cache(maxsize=1024)
def _per_tap(in_hw: tuple[int, int], out_hw: tuple[int, int], kernel: tuple[int, int], stride: tuple[int, int],
             padding: tuple[int, int], dilation: tuple[int, int]) -> tuple[np.ndarray, np.int64]:
    """Per kernel tap (kh × kw): the output positions where it lands inside the input; and
    their sum over the taps."""
    vy = _valid_counts(in_hw[0], out_hw[0], kernel[0], stride[0], padding[0], dilation[0])
    vx = _valid_counts(in_hw[1], out_hw[1], kernel[1], stride[1], padding[1], dilation[1])
    per_tap = np.outer(vy, vx)
    per_tap.flags.writeable = False
    return per_tap, per_tap.sum()


def _pair(v) -> tuple:
    return (v[0], v[1])   # a tuple whatever the field holds (a list read from a file): a cache key


def conv_counts(node: Conv2d, in_shape: tuple[int, ...]) -> tuple[int, int, int]:
    """(stored synapses with every neuron live, synapses_dense, macs) of a Conv2d node."""
    _, h, w = in_shape
    cout, cin_g, kh, kw = node.weight.shape
    _, ho, wo = node.shape
    per_tap, positions = _per_tap((h, w), (ho, wo), (kh, kw), _pair(node.stride), _pair(node.padding),
                                  _pair(node.dilation))
    dense = int(cout * cin_g * positions)
    # every tap stored cout·cin_g times (a dense layer): the stored count is the dense one
    stored = dense if all_stored(node.mask) else int((node.mask.sum(axis=(0, 1)) * per_tap).sum())
    return stored, dense, int(cout * ho * wo * cin_g * kh * kw)


def pool_counts(node: Pool2d, in_shape: tuple[int, ...]) -> int:
    """(input, output) pairs of a pooling window that lie inside the input, over every output."""
    c, h, w = in_shape
    _, ho, wo = node.shape
    _, positions = _per_tap((h, w), (ho, wo), _pair(node.kernel), _pair(node.stride), _pair(node.padding), (1, 1))
    return int(c * positions)


def linear_counts(node: Linear) -> tuple[int, int, int]:
    """(stored synapses with every neuron live, synapses_dense, macs); token axes share weights."""
    lead = node.size // node.weight.shape[0]
    stored = node.mask.size if all_stored(node.mask) else int(node.mask.sum())
    return lead * stored, lead * int(node.weight.size), lead * int(node.weight.size)


def live_synapses(graph: IRGraph, name: str, live: Liveness, per_population: bool = True) -> int:
    """Stored synapses of synaptic node ``name`` between live neurons (see module doc).
    An input element that sums several populations (a residual stream) has its synapses
    once per population, as in the lowered network; ``per_population=False`` counts them
    once per element (what one unit of input value meets)."""
    if name in live.synapses:   # the adjoint sweep counted them already
        return live.synapses[name][0 if per_population else 1]
    return int(round(float((_live_fan_in(graph, name, live, per_population) * live.reaching[name]).sum())))


def _live_fan_in(graph: IRGraph, name: str, live: Liveness, per_population: bool = True) -> np.ndarray:
    """Per output element of ``name``: its stored synapses from live sources (float64)."""
    node = graph.node(name)
    src = graph.inputs(name)[0]
    x = torch.as_tensor((live.sources(src) if per_population else live.reached[src])[None].astype(np.float64))
    with torch.no_grad():
        return STEP(node)(node, [x], 1, "pattern")[0].numpy()


@SYNAPSES.register(Conv2d)
def _conv(graph: IRGraph, name: str, node: Conv2d, live: Liveness | None) -> SynapseCount:
    stored, dense, macs = conv_counts(node, tuple(graph.node(graph.inputs(name)[0]).shape))
    return SynapseCount(stored if live is None else live_synapses(graph, name, live), dense, macs)


@SYNAPSES.register(Linear)
def _linear(graph: IRGraph, name: str, node: Linear, live: Liveness | None) -> SynapseCount:
    stored, dense, macs = linear_counts(node)
    return SynapseCount(stored if live is None else live_synapses(graph, name, live), dense, macs)


@SYNAPSES.register(Pool2d)
def _pool(graph: IRGraph, name: str, node: Pool2d, live: Liveness | None) -> SynapseCount | None:
    """A max-pool of spikes lowers to OR neurons fed by its window: those are synapses. Their
    targets are the OR neurons themselves, every one kept (the lowering keeps them all, as its
    OR conv + neuron form does): not only the outputs that reach a live neuron further on."""
    if node.mode != "max" or not spike_valued(graph, graph.inputs(name)[0]):
        return None
    dense = pool_counts(node, tuple(graph.node(graph.inputs(name)[0]).shape))
    return SynapseCount(dense if live is None else int(round(float(_live_fan_in(graph, name, live).sum()))),
                        dense, 0)


@SYNAPSES.register(Input, Output, BatchNorm, Reshape, Add, Mask, Neuron, Transpose, Scale, Reduce, MatMul, Host,
                   Concat, Slice, AdaptiveAvgPool2d, Delay)
def _none(graph: IRGraph, name: str, node, live: Liveness | None) -> None:
    """Not a synaptic layer."""
    return None


def layer_synapses(graph: IRGraph, live: Liveness | None = None) -> dict[str, SynapseCount]:
    """Counts of every synaptic node, between live neurons (one structural sweep, made once
    per state of the graph when ``live`` is not given: see :mod:`snncompile.ir.memo`)."""
    if live is None:
        return dict(memo(graph, "layer_synapses", lambda: layer_synapses(graph, liveness(graph)), ANNOTATIONS))
    out = {}
    for name, node in graph.items():
        count = SYNAPSES(node)(graph, name, node, live)
        if count is not None:
            out[name] = count
    return out


def synapse_total(graph: IRGraph) -> int:
    return sum(c.synapses for c in layer_synapses(graph).values())


def neuron_total(graph: IRGraph) -> int:
    return sum(graph.node(n).kept for n in graph.of_type(Neuron))


# -- synaptic memory: the one formula, used by the prune pass's cost model and the netlist --

ROW_POINTER_BITS = 32


def index_bits(cols: int) -> int:
    """Bits of one column index among ``cols`` source neurons."""
    return max(1, math.ceil(math.log2(max(2, cols))))


def synaptic_memory_bits(impl: str, *, weight_bits: int, entries: int = 0, rows: int = 0, cols: int = 0,
                         kernel_weights: int = 0) -> int:
    """Storage of one projection as emitted: ``"conv"`` a shared kernel (every kernel weight),
    ``"dense"`` a rows × cols matrix, ``"sparse"`` CSR (per entry the weight and a column
    index of ⌈log2 cols⌉ bits, per row a 32-bit pointer)."""
    if impl == "conv":
        return kernel_weights * weight_bits
    if impl == "dense":
        return rows * cols * weight_bits
    return entries * (weight_bits + index_bits(cols)) + ROW_POINTER_BITS * rows
