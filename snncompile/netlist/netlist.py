"""The netlist: neuron populations joined by projections, as one lowering produces it.

A projection keeps its synapses as the IR layers they come from (kernels + masks, a
"chain" of linear nodes applied to the source population's output), so nothing is
unrolled unless a backend asks for explicit synapses, one projection at a time
(:meth:`Projection.matrix`). Fixed-point quantization, core mapping, the simulators and
the backends all work on this form, downstream of the IR.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

import numpy as np
import scipy.sparse as sp
import torch

from snncompile.errors import EXIT_UNSUPPORTED, SnnCompileError
from snncompile.ir import Conv2d, Linear, Node, Reshape
from snncompile.ir.counting import synaptic_memory_bits
from snncompile.ir.dynamics import DynamicsRegistry, refused
from snncompile.ir.semantics import STEP
from snncompile.ir.structure import unique_paths
from snncompile.netlist.ops import UNROLL
from snncompile.netlist.populations import (
    DelayPopulation,
    HostPopulation,
    InputPopulation,
    NeuronPopulation,
    Population,
    host_refusal,
)

OUTPUT = "__output__"
CANCELLED = 1e-12   # |weight| / Σ|path weights| below which a composed synapse is cancellation residue


@dataclass
class Chain:
    """A bias-free linear map: IR nodes applied in order to a [N, *in_shape] input."""

    nodes: list[Node]
    in_shape: tuple[int, ...]

    @property
    def out_shape(self) -> tuple[int, ...]:
        return tuple(self.nodes[-1].shape) if self.nodes else self.in_shape

    def apply(self, x: torch.Tensor, mode: str = "linear") -> torch.Tensor:
        x = x.reshape(x.shape[0], *self.in_shape)
        for node in self.nodes:
            x = STEP(node)(node, [x], 1, mode)
        return x.reshape(x.shape[0], *self.out_shape)

    def matrix(self, mode: str = "linear") -> sp.csr_matrix:
        """The explicit (out size × in size) matrix of this chain.

        Where several paths join a pair (overlapping pools, then a layer) their weights can
        cancel: an entry whose value is float residue of such a cancellation (at most
        ``CANCELLED`` of the summed magnitudes of its paths) is no synapse and is dropped.
        """
        n = int(np.prod(self.in_shape))
        m = sp.identity(n, format="csr")
        mass = sp.identity(n, format="csr")
        shape = self.in_shape
        layers = 0
        for node in self.nodes:
            if not isinstance(node, Reshape):
                product = pattern_product(node, shape, m) if mode == "pattern" else None
                if product is None:
                    u = UNROLL(node)(node, shape, mode)
                    product = (u @ m).tocsr()
                    if mode == "linear":
                        mass = (abs(u) @ mass).tocsr()
                m = product
                layers += 1
            shape = tuple(node.shape)
        if mode == "linear" and layers > 1 and m.nnz:
            rows = np.repeat(np.arange(m.shape[0]), np.diff(m.indptr))
            paths = np.asarray(mass[rows, m.indices]).ravel()
            residue = (np.abs(m.data) <= CANCELLED * paths) & (m.data != 0)
            if residue.any():  # stored as explicit zeros: dropped where zeros are, kept where kept
                m.data[residue] = 0.0
        return m

    @property
    def unique_paths(self) -> bool:
        """Each (input, output) pair joined by at most one path (see ir.structure)."""
        return unique_paths(self.nodes)


_DENSE_PRODUCT = 1 << 25   # entries of a (layer outputs × chain inputs) product held dense
_ROWS = 256


def pattern_product(node: Node, shape: tuple[int, ...], m: sp.csr_matrix) -> sp.csr_matrix | None:
    """M·m for a Linear ``node`` on a flat input, M its 0/1 mask, without unrolling M: a few
    hundred rows of the mask at a time times ``m`` (a narrow chain so far: a pooling that
    repeats each input, as VGG's 7×7 adaptive pooling of a 1×1 map). Path counts are
    integers, exact in any order of summation (in float32 below 2^24). None: unroll as usual."""
    if not isinstance(node, Linear) or len(shape) != 1 or node.weight.shape[0] * m.shape[1] > _DENSE_PRODUCT \
            or node.weight.shape[1] * max(m.max(), 1) >= 1 << 24:
        return None   # (path counts below 2^24: exact in float32)
    mt = m.T.tocsr().astype(np.float32)
    out = np.empty((node.weight.shape[0], m.shape[1]), dtype=np.float32)
    for r in range(0, out.shape[0], _ROWS):
        rows = np.array(node.mask[r:r + _ROWS].T, dtype=np.float32, order="C")
        out[r:r + _ROWS] = (mt @ rows).T
    return sp.csr_matrix(out, dtype=np.float64)


@dataclass
class FixedPoint:
    """Integer parameters of a quantized population (see snncompile.fixedpoint)."""

    scale: float                      # membrane units per float unit
    params: object                    # neuron_int.IntNeuron (None for a delay)
    bias: np.ndarray                  # integer bias per kept neuron


@dataclass
class Projection:
    """Synapses from population ``src`` into ``dst`` (or OUTPUT): Σ over ``chains``."""

    src: str
    dst: str
    chains: list[Chain]
    layers: list[str] = field(default_factory=list)  # IR synaptic nodes folded in
    delay: int = 0                    # extra steps beyond the one every synapse adds
    impl: str = "sparse"              # "sparse" (CSR), "dense" or "conv" (shared kernel)
    weight_bits: int = 32             # 1 when the projection is a single binary layer
    weight_exp: int = 0               # fixed point: weights are integer mantissas × 2^exp
    synapses: int = 0                 # exact count (set by the lowering)
    rows: np.ndarray | None = None    # kept logical targets, None = all
    cols: np.ndarray | None = None    # kept logical sources, None = all
    keep_zeros: bool = False          # dense emission: zero-valued synapses are stored too
    explicit: sp.csr_matrix | None = None  # set where a stage needs its own matrix (fixed point)

    @property
    def nnz(self) -> int:
        return self.synapses

    @property
    def in_shape(self) -> tuple[int, ...]:
        return self.chains[0].in_shape

    @property
    def kernel(self) -> Conv2d | None:
        """The convolution, when this projection is exactly one (a shared-kernel candidate)."""
        if len(self.chains) != 1:
            return None
        nodes = [n for n in self.chains[0].nodes if not isinstance(n, Reshape)]
        return nodes[0] if len(nodes) == 1 and isinstance(nodes[0], Conv2d) else None

    def matrix(self) -> sp.csr_matrix:
        """Explicit synapses (kept targets × kept sources). Unrolls this projection only."""
        if self.explicit is not None:
            return self.explicit
        m = self.chains[0].matrix()
        for c in self.chains[1:]:
            m = (m + c.matrix()).tocsr()
        if self.rows is not None:
            m = m[self.rows]
        if self.cols is not None:
            m = m[:, self.cols]
        m = m.tocsr()
        if not self.keep_zeros:
            m.eliminate_zeros()
        return m

    @property
    def weights(self) -> sp.csr_matrix:
        return self.matrix()

    @weights.setter
    def weights(self, value: sp.csr_matrix) -> None:
        self.explicit = value

    def apply(self, x: torch.Tensor) -> torch.Tensor:
        """Drive of the logical targets from logical source values x [N, src logical size]."""
        out = None
        for c in self.chains:
            y = c.apply(x.reshape(x.shape[0], *c.in_shape)).reshape(x.shape[0], -1)
            out = y if out is None else out + y
        return out

    @property
    def shape(self) -> tuple[int, int]:
        rows = len(self.rows) if self.rows is not None else int(np.prod(self.chains[0].out_shape))
        cols = len(self.cols) if self.cols is not None else int(np.prod(self.in_shape))
        return rows, cols

    @property
    def memory_bits(self) -> int:
        rows, cols = self.shape
        kernel = self.kernel
        return synaptic_memory_bits(self.impl, weight_bits=self.weight_bits, entries=self.synapses, rows=rows,
                                    cols=cols, kernel_weights=0 if kernel is None else int(kernel.weight.size))


class OutputKind(Enum):
    """What the compiled network's output is (the value names the report and JSON)."""

    SPIKES = "spikes"        # a spiking population's spikes (``output_pop``)
    MEMBRANE = "membrane"    # a non-spiking population's values (``output_pop``), e.g. a NIR LI readout
    VALUES = "values"        # an affine readout of populations: the projections into OUTPUT

    @property
    def from_population(self) -> bool:
        """Read straight from population ``output_pop`` (no readout projections)."""
        return self is not OutputKind.VALUES


@dataclass
class Netlist:
    populations: dict[str, Population]
    projections: list[Projection]
    output_kind: OutputKind
    output_pop: str | None = None
    output_bias: np.ndarray | None = None
    output_shape: tuple[int, ...] = ()
    output_depth: int = 0             # step offset at which output step 0 is read
    labels: dict[str, str] = field(default_factory=dict)   # population → the user's module path

    def label(self, name: str) -> str:
        """The name reports and exports give population ``name`` (its module path)."""
        return self.labels.get(name, name)

    @property
    def depth(self) -> int:
        return max([p.depth for p in self.populations.values()] + [self.output_depth])

    @property
    def delays(self) -> list[Population]:
        """The delay populations (a recurrent loop has at least one)."""
        return [p for p in self.populations.values() if isinstance(p, DelayPopulation)]

    @property
    def source(self) -> InputPopulation:
        """The input population."""
        return next(p for p in self.populations.values() if isinstance(p, InputPopulation))

    def into(self, dst: str) -> list[Projection]:
        return [p for p in self.projections if p.dst == dst]


@dataclass
class FixedNetlist(Netlist):
    """A netlist quantized for integer hardware (made by :func:`snncompile.fixedpoint.quantize_plan`):
    every projection holds explicit integer mantissas with a ``weight_exp``, ``fixed`` the
    integer parameters of each neuron and delay population; inputs are ``round(x·input_scale)``
    and the value readout is ``(drive + output_qbias) / output_scale``."""

    fixed: dict[str, FixedPoint] = field(default_factory=dict)
    input_scale: float = 1.0
    output_scale: float = 1.0
    output_qbias: np.ndarray | None = None


def refusal(nir: str, where: str, hint: str) -> Callable[..., Any]:
    """A dynamics-registry entry for a model (NIR name ``nir``) that ``where`` cannot run: the
    error names the population and the model, ``hint`` the way out."""
    return refused(f"population `{{name}}` is a {{model}} neuron (NIR {nir}), which {where} cannot run", hint)


def refuse_dynamics(net: Netlist, registry: DynamicsRegistry) -> None:
    """A clear error when ``net`` has a population whose dynamics ``registry`` refuses."""
    for name, pop in net.populations.items():
        p = pop.params if isinstance(pop, NeuronPopulation) else None
        if p is not None and not registry.supports(p):
            registry(p)(p, name=name)


def steps_text(steps: int | np.ndarray) -> str:
    """'1 step', '3 steps' or '1–4 steps (per neuron)'."""
    lo, hi = int(np.min(steps)), int(np.max(steps))
    if np.ndim(steps) and lo != hi:
        return f"{lo}–{hi} steps (per neuron)"
    return f"{hi} step{'s' if hi > 1 else ''}"


def refuse_delays(net: Netlist, where: str, hint: str, graded_only: bool = False) -> None:
    """A clear error when ``net`` has a delay population (a recurrent loop or a NIR Delay);
    ``graded_only``: only one that sends real values."""
    for name, pop in net.populations.items():
        if isinstance(pop, DelayPopulation) and not (graded_only and pop.relay):
            raise SnnCompileError(f"`{name}` is a delay of {steps_text(pop.steps)} (a recurrent loop or a NIR Delay), "
                                  f"which {where} cannot run", hint, EXIT_UNSUPPORTED)


def refuse_host(net: Netlist, where: str, hint: str = "") -> None:
    """A clear error naming the first host partition of ``net``, which ``where`` (an emission
    or datapath of neuromorphic cores only) cannot run."""
    for pop in net.populations.values():
        if isinstance(pop, HostPopulation):
            raise SnnCompileError(host_refusal(pop, where), hint or "the reference simulator (--target energy / "
                                  "--check) runs host partitions exactly; --no-host refuses them at compile time",
                                  EXIT_UNSUPPORTED)


def window_stages(net: Netlist) -> dict[str, int]:
    """Stage of every population: 0 before any window host (time barrier), k + 1 from a window
    host whose inputs reach stage k. A run (chip + host) is staged: stage k runs all T steps, then
    the window hosts of stage k + 1 compute, then stage k + 1 runs all T steps."""
    stage: dict[str, int] = {}
    for pop in sorted(net.populations.values(), key=lambda p: p.depth):
        srcs = [pr.src for pr in net.into(pop.name)] + [o.src for o in getattr(pop, "operands", [])]
        before = max((stage.get(s, 0) for s in srcs), default=0)
        stage[pop.name] = before + int(isinstance(pop, HostPopulation) and pop.fn.window)
    return stage


def synaptic_memory(proj: Projection) -> int:
    """Bits to store ``proj`` as emitted (the one formula, :func:`ir.counting.synaptic_memory_bits`)."""
    return proj.memory_bits
