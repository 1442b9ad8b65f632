"""Host functions: the data-dependent, real-valued operations a neuromorphic core cannot run
(token scoring with a predictor MLP, top-k selection, gathers, real gates, max of real values).

Each is a frozen dataclass with its equation in the docstring, an exact ``apply`` on batched
float64 tensors ([N, *shape] per input, N = time steps × samples) and its operation counts
(:class:`HostCost`). The IR node :class:`snncompile.ir.nodes.Host` holds one; the lowering
makes it a :class:`snncompile.netlist.HostPopulation`, which runs on the chip's embedded CPU
or the host, never on a neuro-core.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class HostCost:
    """Operations of one evaluation for one sample and step: multiply-accumulates, comparisons
    (top-k, sort, max) and transcendental evaluations (erf, exp), each counted once."""

    macs: int = 0
    comparisons: int = 0
    transcendentals: int = 0


def _size(shape: tuple[int, ...]) -> int:
    return int(np.prod(shape)) if shape else 1


@dataclass(frozen=True)
class HostFn:
    """One host operation: ``apply(inputs) → output`` on [N, *shape] tensors."""

    name: ClassVar[str] = "host"
    arity: ClassVar[int] = 1
    elementwise: ClassVar[bool] = False   # output shape = input shape, one value per element
    window: ClassVar[bool] = False        # a time barrier: every step's output reads every step's input
    selects: ClassVar[bool] = False       # its outputs are elements of its first input (a gather of tokens)

    def apply(self, ins: list[torch.Tensor]) -> torch.Tensor:
        raise NotImplementedError

    def cost(self, in_shapes: list[tuple[int, ...]], out_shape: tuple[int, ...]) -> HostCost:
        raise NotImplementedError

    def binary_out(self) -> bool:
        """Its output values are 0/1 (a keep mask)."""
        return False

    def describe(self) -> str:
        return self.name


@dataclass(frozen=True)
class Identity(HostFn):
    """y = x: real values received from synapses (a relay into a host operation)."""

    name: ClassVar[str] = "identity"
    selects: ClassVar[bool] = True
    elementwise: ClassVar[bool] = True

    def apply(self, ins: list[torch.Tensor]) -> torch.Tensor:
        return ins[0]

    def cost(self, in_shapes, out_shape) -> HostCost:
        return HostCost()


@dataclass(frozen=True)
class Gelu(HostFn):
    """y = x · Φ(x) = x/2 · (1 + erf(x/√2))   (``tanh``: x/2 · (1 + tanh(√(2/π)(x + 0.044715 x³))))."""

    tanh: bool = False
    name: ClassVar[str] = "gelu"
    elementwise: ClassVar[bool] = True

    def apply(self, ins: list[torch.Tensor]) -> torch.Tensor:
        return F.gelu(ins[0], approximate="tanh" if self.tanh else "none")

    def cost(self, in_shapes, out_shape) -> HostCost:
        n = _size(out_shape)
        return HostCost(macs=2 * n, transcendentals=n)


@dataclass(frozen=True)
class Sigmoid(HostFn):
    """y = 1 / (1 + e^(−x))."""

    name: ClassVar[str] = "sigmoid"
    elementwise: ClassVar[bool] = True

    def apply(self, ins: list[torch.Tensor]) -> torch.Tensor:
        return torch.sigmoid(ins[0])

    def cost(self, in_shapes, out_shape) -> HostCost:
        n = _size(out_shape)
        return HostCost(macs=n, transcendentals=n)


@dataclass(frozen=True)
class Softmax(HostFn):
    """y[..., i, ...] = e^(x_i − m) / Σ_j e^(x_j − m) along per-sample axis ``axis`` (m = max_j x_j)."""

    axis: int = -1
    name: ClassVar[str] = "softmax"
    elementwise: ClassVar[bool] = True

    def apply(self, ins: list[torch.Tensor]) -> torch.Tensor:
        return torch.softmax(ins[0], dim=_dim(self.axis, ins[0]))

    def cost(self, in_shapes, out_shape) -> HostCost:
        n = _size(out_shape)
        return HostCost(macs=2 * n, comparisons=n, transcendentals=n)


@dataclass(frozen=True)
class LogSoftmax(Softmax):
    """y[..., i, ...] = x_i − m − log Σ_j e^(x_j − m) along ``axis`` (SparseSpikformer's predictor head)."""

    name: ClassVar[str] = "log_softmax"

    def apply(self, ins: list[torch.Tensor]) -> torch.Tensor:
        return torch.log_softmax(ins[0], dim=_dim(self.axis, ins[0]))

    def cost(self, in_shapes, out_shape) -> HostCost:
        n = _size(out_shape)
        return HostCost(macs=2 * n, comparisons=n, transcendentals=n + n // max(1, out_shape[self.axis]))


@dataclass(frozen=True)
class TopK(HostFn):
    """The k largest (``largest``) or smallest values along per-sample axis ``axis``, sorted:
    ``indices``: y[..., r, ...] = i_r, the position of the r-th of them (ties: the lower index
    first, as torch.topk orders them); else the values x[..., i_r, ...]. Indices are sent as
    exact small integers."""

    k: int = 1
    axis: int = -1
    largest: bool = True
    indices: bool = True
    name: ClassVar[str] = "topk"

    def apply(self, ins: list[torch.Tensor]) -> torch.Tensor:
        x = ins[0]
        d = _dim(self.axis, x)
        # torch.topk itself: equal scores (tokens of equal spikes) are ordered as the source orders them
        values, order = torch.topk(x, self.k, dim=d, largest=self.largest, sorted=True)
        return order.to(x.dtype) if self.indices else values

    def cost(self, in_shapes, out_shape) -> HostCost:
        n = in_shapes[0][self.axis]
        rows = _size(in_shapes[0]) // n
        return HostCost(comparisons=rows * n * max(1, math.ceil(math.log2(max(self.k, 2)))))


@dataclass(frozen=True)
class ScatterOnes(HostFn):
    """A 0/1 keep mask from indices: y = 0 of ``out`` elements along ``axis``, then
    y[..., idx[..., r, ...], ...] = ``value`` for every r (``zeros_like(s).scatter(axis, idx, value)``)."""

    axis: int = -1
    value: float = 1.0
    name: ClassVar[str] = "scatter"

    def binary_out(self) -> bool:
        return self.value == 1.0

    def apply(self, ins: list[torch.Tensor]) -> torch.Tensor:
        raise NotImplementedError("ScatterOnes needs the output shape: use apply_shaped")

    def apply_shaped(self, ins: list[torch.Tensor], out_shape: tuple[int, ...]) -> torch.Tensor:
        idx = ins[0].round().to(torch.int64)
        y = torch.zeros((idx.shape[0], *out_shape), dtype=ins[0].dtype)
        return y.scatter(_dim(self.axis, y), idx, self.value)

    def cost(self, in_shapes, out_shape) -> HostCost:
        return HostCost()


@dataclass(frozen=True)
class Gather(HostFn):
    """y[..., r, ...] = x[..., idx[..., r, ...], ...] along per-sample axis ``axis``
    (``torch.gather``: inputs x, idx; TP-Spikformer keeps its top-k tokens so)."""

    axis: int = 0
    name: ClassVar[str] = "gather"
    selects: ClassVar[bool] = True
    arity: ClassVar[int] = 2

    def apply(self, ins: list[torch.Tensor]) -> torch.Tensor:
        x, idx = ins
        return torch.gather(x, _dim(self.axis, x), idx.round().to(torch.int64))

    def cost(self, in_shapes, out_shape) -> HostCost:
        return HostCost()


@dataclass(frozen=True)
class Product(HostFn):
    """y = a ⊙ b with broadcasting, real values (an attention gate, a token keep mask)."""

    name: ClassVar[str] = "product"
    arity: ClassVar[int] = 2

    def apply(self, ins: list[torch.Tensor]) -> torch.Tensor:
        a, b = ins
        return a * b

    def cost(self, in_shapes, out_shape) -> HostCost:
        return HostCost(macs=_size(out_shape))


@dataclass(frozen=True)
class MaxPool(HostFn):
    """Max-pool of real values (BN output): y[c, i, j] = max_{(u,v) ∈ P} x[c, s_h·i − p_h + u, s_w·j − p_w + v]
    (torch semantics; padding is never a candidate)."""

    kernel: tuple[int, int] = (2, 2)
    stride: tuple[int, int] = (2, 2)
    padding: tuple[int, int] = (0, 0)
    name: ClassVar[str] = "maxpool"

    def apply(self, ins: list[torch.Tensor]) -> torch.Tensor:
        return F.max_pool2d(ins[0], self.kernel, self.stride, self.padding)

    def cost(self, in_shapes, out_shape) -> HostCost:
        return HostCost(comparisons=_size(out_shape) * (self.kernel[0] * self.kernel[1] - 1))


@dataclass(frozen=True)
class Broadcast(HostFn):
    """y = x repeated along its size-1 axes to the output shape (``expand`` of host values, e.g.
    token indices spread over channels before a gather)."""

    name: ClassVar[str] = "broadcast"
    selects: ClassVar[bool] = True

    def apply(self, ins: list[torch.Tensor]) -> torch.Tensor:
        raise NotImplementedError("Broadcast needs the output shape: use host_apply")

    def cost(self, in_shapes, out_shape) -> HostCost:
        return HostCost()


@dataclass(frozen=True)
class Sort(HostFn):
    """(y, i) = sort(x) along per-sample axis ``axis``, ascending or ``descending``: y[..., r, ...] =
    x[..., i_r, ...] with i a permutation and y ordered; ``stable``: equal values keep their order
    (torch.sort(stable=True)); else torch.sort's own order of ties, applied as the source applies it.
    ``indices``: the output is i (``argsort``), sent as exact small integers; else y."""

    axis: int = -1
    descending: bool = False
    stable: bool = False
    indices: bool = True
    name: ClassVar[str] = "sort"

    def apply(self, ins: list[torch.Tensor]) -> torch.Tensor:
        x = ins[0]
        values, order = torch.sort(x, dim=_dim(self.axis, x), descending=self.descending, stable=self.stable)
        return order.to(x.dtype) if self.indices else values

    def cost(self, in_shapes, out_shape) -> HostCost:
        n = in_shapes[0][self.axis]
        rows = _size(in_shapes[0]) // n
        return HostCost(comparisons=rows * n * max(1, math.ceil(math.log2(max(n, 2)))))   # n log2 n per row


@dataclass(frozen=True)
class IndexSelect(HostFn):
    """y[..., r, ...] = x[..., idx[r], ...] along per-sample axis ``axis``, with idx one index
    vector per sample (``torch.index_select``; ``x[arange(B)[:, None], idx]``; DynamicViT's
    ``batch_index_select``: ``x.reshape(B·N, C)[idx + N·b]`` picks sample b's own rows)."""

    axis: int = 0
    name: ClassVar[str] = "index_select"
    selects: ClassVar[bool] = True
    arity: ClassVar[int] = 2

    def apply(self, ins: list[torch.Tensor]) -> torch.Tensor:
        x, idx = ins
        d = _dim(self.axis, x)
        i = idx.round().to(torch.int64).reshape(idx.shape[0], -1)   # [N, k]: one vector per sample
        view = [i.shape[0]] + [1] * (x.dim() - 1)
        view[d] = i.shape[1]
        return torch.gather(x, d, i.reshape(view).expand(*x.shape[:d], i.shape[1], *x.shape[d + 1:]))

    def cost(self, in_shapes, out_shape) -> HostCost:
        return HostCost()


@dataclass(frozen=True)
class Where(HostFn):
    """y = a where mask ≠ 0, else b (``torch.where(mask, a, b)``; ``x.masked_fill(mask, v)`` is
    where(mask, v, x)); a constant side is held as ``a`` / ``b`` and read from no input. Inputs,
    in order: mask, then a and b unless constant; broadcasting as torch."""

    a: float | None = None
    b: float | None = None
    name: ClassVar[str] = "where"

    @property
    def arity(self) -> int:  # type: ignore[override]
        return 1 + (self.a is None) + (self.b is None)

    def apply(self, ins: list[torch.Tensor]) -> torch.Tensor:
        rank = max(t.dim() for t in ins)
        # per-sample shapes broadcast as torch aligns them: from the right, after the batch axis
        mask, *rest = (t.reshape(t.shape[0], *[1] * (rank - t.dim()), *t.shape[1:]) for t in ins)
        a = torch.tensor(self.a, dtype=torch.float64) if self.a is not None else rest.pop(0)
        b = torch.tensor(self.b, dtype=torch.float64) if self.b is not None else rest.pop(0)
        return torch.where(mask != 0, a, b)

    def cost(self, in_shapes, out_shape) -> HostCost:
        return HostCost(comparisons=_size(out_shape))


@dataclass(frozen=True)
class Max(HostFn):
    """y = max_j x[..., j, ...] along per-sample axis ``axis`` (``amax``, ``x.max(dim)``);
    ``indices``: the position of the maximum instead (``x.max(dim)[1]``; ties as torch.max)."""

    axis: int = -1
    indices: bool = False
    name: ClassVar[str] = "max"

    def apply(self, ins: list[torch.Tensor]) -> torch.Tensor:
        x = ins[0]
        values, where = torch.max(x, dim=_dim(self.axis, x))
        return where.to(x.dtype) if self.indices else values

    def cost(self, in_shapes, out_shape) -> HostCost:
        return HostCost(comparisons=_size(in_shapes[0]) - _size(out_shape))


_COMPARISONS = {"gt": torch.gt, "ge": torch.ge, "lt": torch.lt, "le": torch.le, "eq": torch.eq, "ne": torch.ne}


@dataclass(frozen=True)
class Compare(HostFn):
    """y = 1 if x ``op`` c else 0, op one of > ≥ < ≤ = ≠ (a boolean token mask from real scores;
    ``mask.bool()`` is x ≠ 0)."""

    op: str = "ne"
    c: float = 0.0
    name: ClassVar[str] = "compare"
    elementwise: ClassVar[bool] = True

    def binary_out(self) -> bool:
        return True

    def apply(self, ins: list[torch.Tensor]) -> torch.Tensor:
        return _COMPARISONS[self.op](ins[0], self.c).to(ins[0].dtype)

    def cost(self, in_shapes, out_shape) -> HostCost:
        return HostCost(comparisons=_size(out_shape))


@dataclass(frozen=True)
class TimeMean(HostFn):
    """A time barrier (window host): y[t] = (1/T) · Σ_{τ=0}^{T−1} x[τ] for every step t = 0 … T−1, per
    sample and element (the official SparseSpikformer's ``spatial_x = x.mean(0)``, its selector then
    reading the same value at every step). It needs every step of its input before its first output,
    so a run is staged: the network before the barrier runs all T steps, the host averages, the
    network after it runs all T steps. ``apply`` needs T (:func:`host_apply`'s ``steps``)."""

    name: ClassVar[str] = "time_mean"
    elementwise: ClassVar[bool] = True
    window: ClassVar[bool] = True

    def apply(self, ins: list[torch.Tensor]) -> torch.Tensor:
        raise ValueError("a time mean needs the number of steps: use host_apply(..., steps=T)")

    def apply_window(self, ins: list[torch.Tensor], steps: int) -> torch.Tensor:
        x = ins[0]
        per = x.reshape(steps, x.shape[0] // steps, *x.shape[1:])   # rows are time-major: [T·N, ...]
        return per.mean(0, keepdim=True).expand_as(per).reshape(x.shape)

    def cost(self, in_shapes, out_shape) -> HostCost:
        return HostCost(macs=_size(out_shape))   # one accumulation per element and step (1/T folded into the next op)

    def describe(self) -> str:
        return "time_mean (window: reads all T steps before its first output)"


def _dim(axis: int, x: torch.Tensor) -> int:
    """Per-sample axis → axis of the batched [N, *shape] tensor."""
    return axis + 1 if axis >= 0 else x.dim() + axis


def host_apply(fn: HostFn, ins: list[torch.Tensor], out_shape: tuple[int, ...], steps: int | None = None
               ) -> torch.Tensor:
    """``fn`` on batched inputs [N, *in_shape_k] → [N, *out_shape]; a window function (``fn.window``)
    needs ``steps`` = T, its rows being every step of every sample, time-major."""
    if isinstance(fn, TimeMean):
        if steps is None:
            raise ValueError(f"`{fn.name}` is a window host: it needs every step (steps=T), not one step")
        return fn.apply_window(ins, steps).reshape(ins[0].shape[0], *out_shape)
    if isinstance(fn, ScatterOnes):
        return fn.apply_shaped(ins, out_shape)
    if isinstance(fn, Broadcast):
        return ins[0].expand(ins[0].shape[0], *out_shape).contiguous()
    return fn.apply(ins).reshape(ins[0].shape[0], *out_shape)


HOST_FUNCTIONS: dict[str, type[HostFn]] = {c.name: c for c in (Identity, Gelu, Sigmoid, Softmax, LogSoftmax, TopK, ScatterOnes,
                                                                Gather, Product, MaxPool, Broadcast, Sort, IndexSelect,
                                                                Where, Max, Compare, TimeMean)}
