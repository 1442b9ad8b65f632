"""Typed IR nodes, one small class per primitive (in the style of NIR).

Every node describes one time step for one sample: ``shape`` is the per-sample output
shape without the time and batch dimensions (C, H, W for images). Parameters are numpy
arrays; synapse weights carry an explicit boolean ``mask`` (True = synapse exists).

Each class docstring states the node's semantics as equations. Notation: t = 1..T is the
time step; x[t] is the input and y[t] the output of one sample (a, b: the two inputs, in
graph input order); indices are per sample (c, i, j for C, H, W); flattening is C order.
Θ(z) = 1 if z ≥ 0 else 0, so Θ(0) = 1. Every node but Neuron and Delay is stateless: y[t] = f(x[t]),
the same map at every step. Flags: ``synaptic`` = holds static weights, ``spiking`` =
produces 0/1 spikes. ``snncompile.sim.reference`` is the executable definition.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields
from functools import lru_cache
from typing import Any, ClassVar

import numpy as np

from snncompile.ir.dynamics import IF, Dynamics
from snncompile.ir.host import HostFn, Identity

Pair = tuple[int, int]


@dataclass(eq=False)
class Node:
    """Base of all IR nodes: ``shape`` = per-sample output shape, ``source`` = module path.

    Stateful: no. Synaptic: no. Spiking: no (subclasses override the flags).
    """

    shape: tuple[int, ...]
    source: str = ""                 # module path in the source model, for messages
    op: ClassVar[str] = "node"
    spiking: ClassVar[bool] = False  # produces spikes (only neurons do)
    synaptic: ClassVar[bool] = False  # holds weights

    @property
    def size(self) -> int:
        return int(math.prod(self.shape)) if self.shape else 1   # math.prod: np.prod costs ~5 µs a call

    def params(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


@dataclass(eq=False)
class Input(Node):
    """Graph input: the encoded sample, passed on unchanged.

        y[t] = x[t]        (x is given as [T, B, *shape])

    The caller chooses the values: 0/1 spikes or real values (direct encoding).
    Stateful: no. Synaptic: no. Spiking: no.
    """

    op: ClassVar[str] = "input"


@lru_cache(maxsize=256)
def all_true(shape: tuple[int, ...]) -> np.ndarray:
    """The mask of a dense layer of weights ``shape``: a read-only all-true view (no memory),
    one per shape (numpy's broadcast_to costs ~8 µs; a sweep makes dozens per ticket)."""
    return np.broadcast_to(np.True_, shape)


class _Synaptic:
    """Shared by Conv2d and Linear: the explicit mask and the weights it keeps."""

    weight: np.ndarray
    mask: np.ndarray | None

    def __post_init__(self) -> None:
        if self.mask is None:  # as stored: every synapse exists, zero-valued or not
            # a read-only all-true view: a dense layer's mask costs no memory
            self.mask = all_true(tuple(self.weight.shape))
        elif type(self.mask) is not np.ndarray or self.mask.dtype != bool:
            self.mask = np.asarray(self.mask, dtype=bool)

    gain: np.ndarray | None

    @property
    def dense(self) -> bool:
        """Every synapse is stored (M all true). A mask broadcast from one value (the default)
        is answered from that value: a sweep over all of them costs ~1 ms per million."""
        m = self.mask
        if m.size and not any(m.strides):
            return bool(m.flat[0])
        return bool(m.all())

    @property
    def effective_weight(self) -> np.ndarray:
        """(W ⊙ M)·g per output row: the values the equations use (a new array when M or g
        changes anything, else ``weight`` itself, which callers must not write to)."""
        w = self.weight if self.dense else np.where(self.mask, self.weight, 0.0)
        if self.gain is not None:
            w = w * self.gain.reshape((-1,) + (1,) * (w.ndim - 1))
        return w


@dataclass(eq=False)
class Conv2d(_Synaptic, Node):
    """2-d convolution (cross-correlation, as in torch) with an explicit synapse mask M.

        y[o, i, j] = b[o] + γ[o] · Σ_{c,u,v} (W ⊙ M)[o, c, u, v]
                                   · x[g·C_in/G + c, s_h·i − p_h + d_h·u, s_w·j − p_w + d_w·v]
        H_out = ⌊(H + 2·p_h − d_h·(k_h − 1) − 1) / s_h⌋ + 1        (W_out likewise)

    W: (C_out, C_in/G, k_h, k_w); b: (C_out,), 0 if None; s, p, d = stride, padding,
    dilation; G = groups, g = ⌊o·G/C_out⌋ is the group of o, c < C_in/G; x = 0 outside the
    input (zero padding). A synapse exists iff M[o, c, u, v] is True (even with weight 0).
    γ = ``gain`` (1 if None, never 0): a per-channel factor, how BatchNorm is folded without
    copying W; the synapse's weight is W[o, …]·γ[o].
    ``binary``: each nonzero weight of output channel o is ±α[o] (``alpha``), or ±1 once α
    was moved into the next neuron; W holds those values, so the equation is unchanged.
    ``weight_bits``: storage width of one weight (1 if binary). ``impl``: lowering only
    ("conv" shared kernel, "sparse" unrolled; "" = chosen when lowering).
    Stateful: no. Synaptic: yes. Spiking: no.
    """

    weight: np.ndarray = field(default_factory=lambda: np.zeros((0, 0, 1, 1)))
    bias: np.ndarray | None = None
    stride: Pair = (1, 1)
    padding: Pair = (0, 0)
    dilation: Pair = (1, 1)
    groups: int = 1
    mask: np.ndarray | None = None
    gain: np.ndarray | None = None   # per output channel factor (folded BatchNorm), never 0
    binary: bool = False             # nonzero weights are ±alpha per output channel
    alpha: np.ndarray | None = None  # per output channel scale of a binary layer
    weight_bits: int = 32            # storage width of one weight (1 for binary)
    impl: str = ""                   # lowering choice: "conv" (shared kernel) or "sparse"
    op: ClassVar[str] = "conv2d"
    synaptic: ClassVar[bool] = True


@dataclass(eq=False)
class Linear(_Synaptic, Node):
    """Fully connected layer over the last axis, with an explicit synapse mask M.

        y[..., o] = b[o] + γ[o] · Σ_k (W ⊙ M)[o, k] · x[..., k]

    W: (N_out, N_in); b: (N_out,), 0 if None. Leading (token) axes "..." share the weights
    (lowered as I ⊗ W). A synapse exists iff M[o, k] is True (even with weight 0).
    γ = ``gain`` (1 if None, never 0): per-row factor of folded BatchNorm (weight W[o, k]·γ[o]).
    ``binary``: each nonzero weight of output row o is ±α[o] (``alpha``), or ±1 once α was
    moved into the next neuron; W holds those values. ``weight_bits``: storage width.
    Stateful: no. Synaptic: yes. Spiking: no.
    """

    weight: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))
    bias: np.ndarray | None = None
    mask: np.ndarray | None = None
    gain: np.ndarray | None = None
    binary: bool = False
    alpha: np.ndarray | None = None
    weight_bits: int = 32
    op: ClassVar[str] = "linear"
    synaptic: ClassVar[bool] = True


@dataclass(eq=False)
class BatchNorm(Node):
    """Inference-mode batch norm over axis 0 of the per-sample shape (channels).

        y[c, ...] = (x[c, ...] − μ[c]) / √(σ²[c] + ε) · γ[c] + β[c]

    μ = ``mean``, σ² = ``var``, γ = ``weight``, β = ``bias``, ε = ``eps``; the same as
    y = x·scale + shift (``scale_shift``). Usually folded into the synapse before it.
    Stateful: no. Synaptic: no. Spiking: no.
    """

    mean: np.ndarray = field(default_factory=lambda: np.zeros(0))
    var: np.ndarray = field(default_factory=lambda: np.ones(0))
    weight: np.ndarray = field(default_factory=lambda: np.ones(0))
    bias: np.ndarray = field(default_factory=lambda: np.zeros(0))
    eps: float = 1e-5
    op: ClassVar[str] = "batchnorm"

    def scale_shift(self) -> tuple[np.ndarray, np.ndarray]:
        """Per-channel (scale, shift) with y = x*scale + shift, in float64 whatever the
        stored dtype (the source model is verified in float64)."""
        # kept with the arrays it was computed from (a lowering and its counts ask for it
        # several times); IR arrays are replaced, never written in place, so identity suffices
        stats = (self.weight, self.var, self.bias, self.mean)
        kept = self.__dict__.get("_scale_shift")
        if kept is not None and kept[1] == self.eps and all(a is b for a, b in zip(kept[0], stats)):
            return kept[2]
        f64 = [np.asarray(a, dtype=np.float64) for a in stats]
        scale = f64[0] / np.sqrt(f64[1] + self.eps)
        shift = f64[2] - f64[3] * scale
        scale.flags.writeable = shift.flags.writeable = False   # shared by every caller
        self.__dict__["_scale_shift"] = (stats, self.eps, (scale, shift))
        return scale, shift


@dataclass(eq=False)
class Pool2d(Node):
    """2-d max, average or sum pooling per channel (torch semantics, floor output size).

        max: y[c, i, j] = max_{(u,v) ∈ P} x[c, s_h·i − p_h + u, s_w·j − p_w + v]
        avg: y[c, i, j] = (1/n) · Σ_{(u,v) ∈ P} x[c, s_h·i − p_h + u, s_w·j − p_w + v]
        sum: y[c, i, j] = Σ_{(u,v) ∈ P} x[c, s_h·i − p_h + u, s_w·j − p_w + v]   (NIR SumPool2d)
        H_out = ⌊(H + 2·p_h − k_h) / s_h⌋ + 1        (W_out likewise)

    P = P(i, j): the offsets u < k_h, v < k_w whose position lies inside the input (padding
    is never a max candidate and adds 0 to a sum); n = k_h·k_w if ``count_include_pad``,
    else |P(i, j)|. A max-pool of spikes is an OR and may become a Neuron with role "or".
    Stateful: no. Synaptic: no. Spiking: no.
    """

    mode: str = "max"  # "max" | "avg" | "sum"
    kernel: Pair = (2, 2)
    stride: Pair = (2, 2)
    padding: Pair = (0, 0)
    count_include_pad: bool = True
    op: ClassVar[str] = "pool2d"


@dataclass(eq=False)
class Reshape(Node):
    """Flatten / view / reshape of the per-sample tensor (C order).

        flat(y) = flat(x),   y.shape = ``shape``        (y = x.reshape(shape), row-major)

    Stateful: no. Synaptic: no. Spiking: no (spikes pass through unchanged).
    """

    op: ClassVar[str] = "reshape"


@dataclass(eq=False)
class Add(Node):
    """Elementwise sum of two inputs of the same shape (no broadcasting), e.g. a residual.

        y = a + b

    Stateful: no. Synaptic: no. Spiking: no (a sum of spikes may be 2).
    """

    op: ClassVar[str] = "add"


@dataclass(eq=False)
class Neuron(Node):
    """A population of neurons, one per element, updated by its ``dynamics`` (a typed
    model from :mod:`snncompile.ir.dynamics`: IF, LIF, PLIF, Threshold, LI, Integrator,
    CubaLIF, CubaLI, OrPool; each type's docstring holds its equations).

    Per neuron, input X[t], state V (and I for current-based models) with V[0] = V_r:

        H[t] = charge(V[t−1], X[t])                   (the model's equation)
        S[t], V[t] = fire and reset (spiking models)  (``dynamics.step.step``)
        output:  y[t] = S[t] ⊙ alive,  or y[t] = V[t] ⊙ alive for non-spiking models

    ``alive`` (None = all): a removed neuron outputs 0 and does not exist in the compiled
    network. An OR-pool (role "or") is the OR of a max-pool of spikes. NIR's
    continuous-time parameters become q = dt/τ (forward Euler), see
    ``snncompile.frontend.nir_import`` and docs/nir.md.
    Stateful: yes (V; V and I when current-based). Synaptic: no. Spiking: yes, except
    the non-spiking models (``emits_spikes``).
    """

    dynamics: Dynamics = field(default_factory=IF)
    alive: np.ndarray | None = None          # bool per neuron; False = removed by a pass
    op: ClassVar[str] = "neuron"
    spiking: ClassVar[bool] = True

    @property
    def emits_spikes(self) -> bool:
        """False for the non-spiking models, whose output is the membrane value."""
        return self.dynamics.spiking

    @property
    def role(self) -> str:
        """"or" for the OR neurons of a max-pool of spikes, else ""."""
        return self.dynamics.role

    @property
    def kept(self) -> int:
        return self.size if self.alive is None else int(np.count_nonzero(self.alive))

    def describe(self) -> str:
        return self.dynamics.describe()


@dataclass(eq=False)
class Mask(Node):
    """Static 0/1 keep-mask multiplied elementwise (masked patches or tokens).

        y = x ⊙ keep            (``keep``: bool, of the per-sample shape)

    Stateful: no. Synaptic: no. Spiking: no.
    """

    keep: np.ndarray = field(default_factory=lambda: np.ones(0, dtype=bool))
    op: ClassVar[str] = "mask"


@dataclass(eq=False)
class Transpose(Node):
    """Permutation of the per-sample axes (``perm`` as in numpy.transpose).

        y[i_0, ..., i_(n−1)] = x[j]  with  j[perm[k]] = i_k;   y.shape[k] = x.shape[perm[k]]

    Stateful: no. Synaptic: no. Spiking: no (spikes pass through unchanged).
    """

    perm: tuple[int, ...] = ()
    op: ClassVar[str] = "transpose"


@dataclass(eq=False)
class Scale(Node):
    """Scalar affine map: multiplication by a constant and an optional constant offset
    (attention scale, 1/x, ``1 − spike`` of SEW-ResNet's IAND).

        y = c · x + d,   c = ``factor``, d = ``offset``     (x / d is stored as c = 1/d)

    Stateful: no. Synaptic: no. Spiking: no.
    """

    factor: float = 1.0
    offset: float = 0.0
    op: ClassVar[str] = "scale"


@dataclass(eq=False)
class Concat(Node):
    """Concatenation of the inputs along one per-sample axis (``torch.cat``).

        y[..., o_k + i, ...] = x_k[..., i, ...],   o_k = Σ_{j<k} x_j.shape[axis]

    k indexes the inputs in graph input order; ``axis``: 0 = first axis after the batch.
    Inside a lowered chain a Concat has one input, ``slot`` = k, and places it at its
    offset (``sizes``: every input's size along ``axis``), zeros elsewhere.
    Stateful: no. Synaptic: no. Spiking: no (spikes pass through unchanged).
    """

    axis: int = 0
    slot: int = -1                   # ≥ 0: the one-input form used inside a lowered chain
    sizes: tuple[int, ...] = ()
    op: ClassVar[str] = "concat"


@dataclass(eq=False)
class Reduce(Node):
    """Mean or sum over one per-sample axis (e.g. mean over tokens before a head).

        sum:  y[...] = Σ_{k<n} x[..., k, ...]
        mean: y[...] = (1/n) · Σ_{k<n} x[..., k, ...]

    k indexes per-sample axis ``axis`` (0 = first axis after the batch), n = x.shape[axis];
    ``keepdim``: that axis stays with size 1, else it is dropped.
    Stateful: no. Synaptic: no. Spiking: no.
    """

    mode: str = "mean"
    axis: int = 0
    keepdim: bool = False
    op: ClassVar[str] = "reduce"


@dataclass(eq=False)
class MatMul(Node):
    """Product of two dynamic operands: ``mode="matmul"`` (a @ b over the last two axes,
    spike Q·Kᵀ and (Q·Kᵀ)·V of Spikformer's SSA) or ``"hadamard"`` (a ⊙ b with
    broadcasting, the Spike-driven Transformer's SDSA). No static weights: on a Loihi-class
    chip this is not a synapse; the Lava backend runs it as a custom process.

        matmul:    y[..., i, j] = Σ_k a[..., i, k] · b[..., k, j]   (leading axes broadcast)
        hadamard:  y = a ⊙ b                                       (broadcasting)

    With spike operands every product is spike·spike (an AND) and a sum counts coincidences.
    Stateful: no. Synaptic: no. Spiking: no.
    """

    mode: str = "matmul"
    op: ClassVar[str] = "matmul"


@dataclass(eq=False)
class Output(Node):
    """Graph output: the value predictions are read from.

        y[t] = x[t]
        prediction = argmax_k Σ_{t=1..T} y[t][k]     (flattened; first index on ties)

    Stateful: no. Synaptic: no. Spiking: no (passes its input's spikes or values on).
    """

    op: ClassVar[str] = "output"


@dataclass(eq=False)
class AdaptiveAvgPool2d(Node):
    """Average pooling to a fixed output size with torch's adaptive windows (they may
    differ in size and overlap, e.g. 4×4 → 7×7 in VGG's classifier at CIFAR size).

        y[c, i, j] = mean_{u ∈ R_i, v ∈ C_j} x[c, u, v]
        R_i = [⌊i·H/H_out⌋, ⌈(i+1)·H/H_out⌉),   C_j likewise with W, W_out

    Stateful: no. Synaptic: no. Spiking: no.
    """

    op: ClassVar[str] = "adaptive_avg_pool2d"

    def windows(self, in_shape: tuple[int, ...]) -> tuple[list[range], list[range]]:
        """The row ranges R_i and column ranges C_j."""
        (h, w), (oh, ow) = in_shape[-2:], self.shape[-2:]
        rows = [range(i * h // oh, -(-(i + 1) * h // oh)) for i in range(oh)]
        cols = [range(j * w // ow, -(-(j + 1) * w // ow)) for j in range(ow)]
        return rows, cols

    def matrices(self, in_shape: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
        """A_h (H_out × H), A_w (W_out × W) with y = A_h · x · A_wᵀ per channel."""
        rows, cols = self.windows(in_shape)
        a_h = np.zeros((len(rows), in_shape[-2]))
        a_w = np.zeros((len(cols), in_shape[-1]))
        for i, r in enumerate(rows):
            a_h[i, list(r)] = 1.0 / len(r)
        for j, c in enumerate(cols):
            a_w[j, list(c)] = 1.0 / len(c)
        return a_h, a_w


@dataclass(eq=False)
class Slice(Node):
    """A contiguous range along one per-sample axis (``x[..., a:b]``, ``chunk``, ``split``).

        y[..., i, ...] = x[..., start + i, ...],   0 ≤ i < stop − start      (along ``axis``)

    ``axis``: 0 = first axis after the batch.
    Stateful: no. Synaptic: no. Spiking: no (spikes pass through unchanged).
    """

    axis: int = 0
    start: int = 0
    stop: int = 0
    op: ClassVar[str] = "slice"


@dataclass(eq=False)
class Delay(Node):
    """The input of ``steps`` time steps ago: a delay line (NIR ``Delay``; the one-step
    delay that closes a recurrent loop).

        y_i[t] = x_i[t − k_i]   for t > k_i,      y_i[t] = 0   for t ≤ k_i      (k_i ≥ 1)

    ``steps``: k, one int for every element, or an int array of the node's shape (per-neuron
    delays). The only node whose output does not depend on its input at the same step: a
    graph may have cycles, provided each passes through a Delay (the graph's evaluation order
    ignores the edges into Delays on cycles, :meth:`snncompile.ir.IRGraph.schedule`).
    Stateful: yes (the last max(k) inputs). Synaptic: no. Spiking: no (spikes pass delayed).
    """

    steps: int | np.ndarray = 1
    op: ClassVar[str] = "delay"

    def __post_init__(self) -> None:
        k = np.asarray(self.steps)
        if k.size > 1 and np.all(k == k.ravel()[0]):
            k = k.ravel()[0]
        if k.size == 1:
            self.steps = int(k.ravel()[0])
        else:
            if k.shape != tuple(self.shape):
                raise ValueError(f"Delay steps have shape {k.shape}, the node {tuple(self.shape)}")
            if not np.all(k == np.round(k)):
                raise ValueError("Delay steps must be whole numbers")
            self.steps = k.astype(np.int64)
        if np.min(self.steps) < 1:
            raise ValueError(f"Delay needs steps >= 1, got {np.min(self.steps)}")

    @property
    def longest(self) -> int:
        """max k: how many past inputs the delay holds."""
        return int(np.max(self.steps))


@dataclass(eq=False)
class Host(Node):
    """A real-valued, data-dependent operation that runs off the neuromorphic cores (on the
    chip's embedded CPU or the host): ``fn``, a typed host function of
    :mod:`snncompile.ir.host` whose docstring holds its equation.

        y[t] = fn(x_1[t], …, x_k[t])        (inputs in graph input order; k = fn.arity)

    except a window function (``fn.window``, a time barrier: TimeMean), y[t] = fn(x[0 … T−1])[t].

    Stateful: no. Synaptic: no. Spiking: no (graded values; a keep mask is 0/1).
    """

    fn: HostFn = field(default_factory=Identity)
    op: ClassVar[str] = "host"


NODE_TYPES: dict[str, type[Node]] = {
    cls.op: cls for cls in (Input, Conv2d, Linear, BatchNorm, Pool2d, Reshape, Add, Mask, Neuron,
                            Transpose, Scale, Reduce, MatMul, Output, Concat, Slice,
                            AdaptiveAvgPool2d, Delay, Host)
}
