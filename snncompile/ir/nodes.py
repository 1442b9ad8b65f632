"""Typed IR nodes, one small class per primitive (in the style of NIR).

Every node describes one time step for one sample: ``shape`` is the per-sample output
shape without the time and batch dimensions (C, H, W for images). Parameters are numpy
arrays; synapse weights carry an explicit boolean ``mask`` (True = synapse exists).
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any, ClassVar

import numpy as np

Pair = tuple[int, int]


@dataclass(eq=False)
class Node:
    shape: tuple[int, ...]
    source: str = ""                 # module path in the source model, for messages
    op: ClassVar[str] = "node"
    spiking: ClassVar[bool] = False  # produces spikes (only neurons do)
    synaptic: ClassVar[bool] = False  # holds weights

    @property
    def size(self) -> int:
        return int(np.prod(self.shape)) if self.shape else 1

    def params(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


@dataclass(eq=False)
class Input(Node):
    op: ClassVar[str] = "input"


class _Synaptic:
    """Shared by Conv2d and Linear: the explicit mask and the weights it keeps."""

    weight: np.ndarray
    mask: np.ndarray | None

    def __post_init__(self) -> None:
        if self.mask is None:  # as stored: every synapse exists, zero-valued or not
            self.mask = np.ones(self.weight.shape, dtype=bool)
        self.mask = np.asarray(self.mask, dtype=bool)

    @property
    def effective_weight(self) -> np.ndarray:
        return np.where(self.mask, self.weight, 0.0)


@dataclass(eq=False)
class Conv2d(_Synaptic, Node):
    weight: np.ndarray = field(default_factory=lambda: np.zeros((0, 0, 1, 1)))
    bias: np.ndarray | None = None
    stride: Pair = (1, 1)
    padding: Pair = (0, 0)
    dilation: Pair = (1, 1)
    groups: int = 1
    mask: np.ndarray | None = None
    binary: bool = False             # nonzero weights are ±alpha per output channel
    alpha: np.ndarray | None = None  # per output channel scale of a binary layer
    weight_bits: int = 32            # storage width of one weight (1 for binary)
    impl: str = ""                   # lowering choice: "conv" (shared kernel) or "sparse"
    op: ClassVar[str] = "conv2d"
    synaptic: ClassVar[bool] = True


@dataclass(eq=False)
class Linear(_Synaptic, Node):
    weight: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))
    bias: np.ndarray | None = None
    mask: np.ndarray | None = None
    binary: bool = False
    alpha: np.ndarray | None = None
    weight_bits: int = 32
    op: ClassVar[str] = "linear"
    synaptic: ClassVar[bool] = True


@dataclass(eq=False)
class BatchNorm(Node):
    """Inference-mode batch norm over axis 0 of the per-sample shape (channels)."""

    mean: np.ndarray = field(default_factory=lambda: np.zeros(0))
    var: np.ndarray = field(default_factory=lambda: np.ones(0))
    weight: np.ndarray = field(default_factory=lambda: np.ones(0))
    bias: np.ndarray = field(default_factory=lambda: np.zeros(0))
    eps: float = 1e-5
    op: ClassVar[str] = "batchnorm"

    def scale_shift(self) -> tuple[np.ndarray, np.ndarray]:
        """Per-channel (scale, shift) with y = x*scale + shift."""
        scale = self.weight / np.sqrt(self.var + self.eps)
        return scale, self.bias - self.mean * scale


@dataclass(eq=False)
class Pool2d(Node):
    mode: str = "max"  # "max" | "avg"
    kernel: Pair = (2, 2)
    stride: Pair = (2, 2)
    padding: Pair = (0, 0)
    count_include_pad: bool = True
    op: ClassVar[str] = "pool2d"


@dataclass(eq=False)
class Reshape(Node):
    """Flatten / view / reshape of the per-sample tensor (C order)."""

    op: ClassVar[str] = "reshape"


@dataclass(eq=False)
class Add(Node):
    op: ClassVar[str] = "add"


@dataclass(eq=False)
class Neuron(Node):
    """A population of spiking neurons (IF, LIF or parametric LIF)."""

    model: str = "lif"                       # "if" | "lif" | "plif"
    v_threshold: float | np.ndarray = 1.0    # scalar or per-neuron (shape == self.shape)
    v_reset: float | None = 0.0              # None → soft reset (V -= V_th on a spike)
    tau: float | None = None
    decay: float | None = None               # plif: sigmoid(w)
    decay_input: bool = True
    alive: np.ndarray | None = None          # bool per neuron; False = removed by a pass
    role: str = ""                           # "or": max-pool of spikes lowered to OR neurons
    op: ClassVar[str] = "neuron"
    spiking: ClassVar[bool] = True

    @property
    def kept(self) -> int:
        return self.size if self.alive is None else int(np.count_nonzero(self.alive))

    @property
    def reset_mode(self) -> str:
        return "soft" if self.v_reset is None else f"hard({self.v_reset:g})"

    def describe(self) -> str:
        th = self.v_threshold
        th_s = f"{th:g}" if np.isscalar(th) else "per-neuron"
        if self.model == "lif":
            leak = f" tau={self.tau:g}"
        elif self.model == "plif":
            leak = f" q={self.decay:.4g}"
        else:
            leak = ""
        di = "" if self.model == "if" else f" decay_input={self.decay_input}"
        return f"{self.model.upper()}{leak} th={th_s} reset={self.reset_mode}{di}"


@dataclass(eq=False)
class Mask(Node):
    """Static 0/1 keep-mask multiplied elementwise (masked patches or tokens)."""

    keep: np.ndarray = field(default_factory=lambda: np.ones(0, dtype=bool))
    op: ClassVar[str] = "mask"


@dataclass(eq=False)
class Transpose(Node):
    """Permutation of the per-sample axes (``perm`` as in numpy.transpose)."""

    perm: tuple[int, ...] = ()
    op: ClassVar[str] = "transpose"


@dataclass(eq=False)
class Scale(Node):
    """Multiplication by a constant scalar (attention scale, 1/x)."""

    factor: float = 1.0
    op: ClassVar[str] = "scale"


@dataclass(eq=False)
class Reduce(Node):
    """Mean or sum over one per-sample axis (e.g. mean over tokens before a head)."""

    mode: str = "mean"
    axis: int = 0
    keepdim: bool = False
    op: ClassVar[str] = "reduce"


@dataclass(eq=False)
class MatMul(Node):
    """Product of two dynamic operands: ``mode="matmul"`` (a @ b over the last two axes,
    spike Q·Kᵀ and (Q·Kᵀ)·V of Spikformer's SSA) or ``"hadamard"`` (a ⊙ b with
    broadcasting, the Spike-driven Transformer's SDSA). No static weights: on a Loihi-class
    chip this is not a synapse; the Lava backend runs it as a custom process."""

    mode: str = "matmul"
    op: ClassVar[str] = "matmul"


@dataclass(eq=False)
class Output(Node):
    """Graph output. ``readout``: what a prediction is made from (sum over time)."""

    op: ClassVar[str] = "output"


NODE_TYPES: dict[str, type[Node]] = {
    cls.op: cls for cls in (Input, Conv2d, Linear, BatchNorm, Pool2d, Reshape, Add, Mask, Neuron,
                            Transpose, Scale, Reduce, MatMul, Output)
}
