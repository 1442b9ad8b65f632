"""One time step of one population on a batch of samples, as a self-contained kernel.

A kernel holds what a population needs to advance one step: the synapses of every
projection into it (unrolled to CSR when the kernel is built, one projection at a time),
its bias, neuron parameters and membrane state ``[B, size]``. ``step`` takes the current
outputs of its source populations (kept neurons, ``[B, size]`` each, in ``sources`` order)
and returns its own. Populations are stepped in depth order with no latency between
them, so step t of every population sees step t of its sources, as in PyTorch. A delay
population is split in two: ``emit`` (its drive of ``steps`` ago) at the start of a step,
before any other population, ``absorb`` (this step's drive) at its end; that is how a
recurrent loop runs without a population waiting for one that waits for it.

Float kernels sum in float64 in the order of Lava's ``Sparse`` (per target, sources in
ascending index) and read spikes event-driven: only sources that fired touch their
synapses. Fixed-point kernels follow Lava's bit-accurate datapath: integer mantissas,
sum, shift by ``weight_exp``, then :func:`snncompile.fixedpoint.neuron_int.step` (Lava's
bit-accurate LIF: the sum enters the current, the bias the membrane).

The same kernels run inside the fused Lava process (all of them in one process), the
integer reference simulator and the one-process floor of the benchmark.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np
import scipy.sparse as sp
import torch

from snncompile.errors import EXIT_UNSUPPORTED, SnnCompileError
from snncompile.fixedpoint import neuron_int
from snncompile.ir import dynamics
from snncompile.ir.host import HostFn, host_apply
from snncompile.netlist import (
    OUTPUT,
    WINDOW_HINT,
    DelayPopulation,
    FixedNetlist,
    HostPopulation,
    InputPopulation,
    Netlist,
    NeuronPopulation,
    OrPopulation,
    OutputKind,
    Population,
    PopulationRegistry,
    ProductPopulation,
    Projection,
    host_refusal,
    window_refusal,
)


def shift(acc: np.ndarray, exp: int) -> np.ndarray:
    """Lava's weight exponent: ``acc << exp`` or an arithmetic ``acc >> -exp``."""
    return np.left_shift(acc, exp) if exp > 0 else np.right_shift(acc, -exp)


class Synapses:
    """One projection in float64: source outputs ``[B, src kept]`` → drive ``[B, dst kept]``."""

    def __init__(self, proj: Projection, src: Population) -> None:
        w = proj.weights.tocsr()
        w.sort_indices()
        self.shape = w.shape
        # One copy of the synapses, in the layout its reads need: target × source for
        # real-valued inputs; source × target for spikes, so a spike reads its own row only.
        self.by_source = not src.graded
        self.w = w.astype(np.float64).T.tocsr() if self.by_source else w.astype(np.float64)
        del w

    @property
    def nbytes(self) -> int:
        return self.w.data.nbytes + self.w.indices.nbytes + self.w.indptr.nbytes

    def __call__(self, s: np.ndarray) -> np.ndarray:
        if self.by_source:  # binary spikes: gather the synapse rows of the sources that fired
            return np.ascontiguousarray((sp.csr_matrix(s) @ self.w).toarray())
        return np.ascontiguousarray((self.w @ np.asarray(s, dtype=np.float64).T).T)


INT32_SUM = 2**31 - 1   # a target's largest possible |sum| below this: the sum runs in int32


class IntSynapses(Synapses):
    """One projection on Lava's integer datapath: mantissas summed exactly, then shifted by
    ``weight_exp``. From spikes (0/1) no target's sum can pass the sum of its |weights|: when
    that fits int32 the weights and the sum stay int32 (scipy would otherwise copy the weights
    to the inputs' int64 at every step); graded sources sum in int64."""

    def __init__(self, proj: Projection, src: Population) -> None:
        w = proj.weights.tocsr()
        w.sort_indices()
        self.shape = w.shape
        self.exp = proj.weight_exp
        bound = int(np.abs(w).sum(axis=1).max()) if w.nnz else 0
        self.dtype = np.int32 if not src.graded and bound <= INT32_SUM else np.int64
        self.w = w.astype(self.dtype)
        del w

    def __call__(self, s: np.ndarray) -> np.ndarray:
        # one copy that casts and transposes: scipy wants the inputs [n_src, B] in C order
        y = (self.w @ np.ascontiguousarray(np.asarray(s).T, dtype=self.dtype)).T
        return shift(np.asarray(y, dtype=np.int64), self.exp)


class Numerics:
    """Float64 arithmetic of a float :class:`Netlist` (the reference of every float run)."""

    dtype: type = np.float64
    synapses: type[Synapses] = Synapses

    def __init__(self, net: Netlist) -> None:
        self.net = net

    def neuron(self, pop: NeuronPopulation) -> tuple[object, np.ndarray]:
        """The parameters and bias a neuron kernel steps with."""
        return _float_params(pop), np.asarray(pop.bias, dtype=np.float64)

    def bias(self, pop: Population) -> np.ndarray:
        return np.asarray(pop.bias, dtype=np.float64)

    def initial_state(self, params: dynamics.Dynamics, batch: int, size: int) -> object:
        return dynamics.initial_state(params, np.full((batch, size), params.v_init, dtype=np.float64))

    def neuron_step(self, v: object, synaptic: np.ndarray, bias: np.ndarray,
                    params: dynamics.Dynamics) -> tuple[np.ndarray, object]:
        """One step from the synapse sum and the bias (float: both are the drive)."""
        return dynamics.step(v, synaptic + bias, params)

    def scaled(self, vals: np.ndarray, scale: float) -> np.ndarray:
        """A product operand times its constant factor."""
        return vals * scale if scale != 1.0 else vals

    def readout(self) -> tuple[np.ndarray, float]:
        """The value readout's bias and the divisor that maps its drive to floats."""
        return np.asarray(self.net.output_bias, dtype=np.float64), 1.0

    def input_values(self, flat: np.ndarray) -> np.ndarray:
        return flat


class IntNumerics(Numerics):
    """Loihi's integer datapath of a :class:`FixedNetlist` (Lava's fixed_pt models, bit for bit)."""

    dtype = np.int64
    synapses = IntSynapses

    def neuron(self, pop: NeuronPopulation) -> tuple[object, np.ndarray]:
        return self.net.fixed[pop.name].params, self.bias(pop)

    def bias(self, pop: Population) -> np.ndarray:
        return np.asarray(self.net.fixed[pop.name].bias, dtype=np.int64)

    def initial_state(self, params: neuron_int.IntNeuron, batch: int, size: int) -> object:
        return neuron_int.initial_state(params, batch, size)

    def neuron_step(self, v: object, synaptic: np.ndarray, bias: np.ndarray,
                    params: neuron_int.IntNeuron) -> tuple[np.ndarray, object]:
        """Lava's bit-accurate LIF: the synapse sum enters the current, the bias the membrane."""
        return neuron_int.step(v, synaptic, bias, params)

    def scaled(self, vals: np.ndarray, scale: float) -> np.ndarray:
        return vals   # fixed point: the scales live in the next weights

    def readout(self) -> tuple[np.ndarray, float]:
        return self.net.output_qbias, self.net.output_scale

    def input_values(self, flat: np.ndarray) -> np.ndarray:
        return np.round(flat * self.net.input_scale).astype(np.int64)


NUMERICS: dict[type[Netlist], type[Numerics]] = {Netlist: Numerics, FixedNetlist: IntNumerics}


def numerics(net: Netlist) -> Numerics:
    """The arithmetic ``net``'s type asks for."""
    return NUMERICS[type(net)](net)


@dataclass
class Operand:
    """One factor of a product population, gathered from a source's kept outputs."""

    port: int
    where: np.ndarray        # position of each element among the source's kept neurons, -1 = removed
    shape: tuple[int, ...]
    scale: float


@dataclass
class Kernel:
    """One population (or the value readout) advancing one step on a batch: ``step`` maps
    its sources' current outputs (``sources`` order) to its own."""

    sends_first: ClassVar[bool] = False         # emits before it reads this step's inputs (a delay)

    name: str
    size: int
    num: Numerics
    graded: bool                                # outputs real values rather than spikes
    sources: list[str] = field(default_factory=list)   # port order
    synapses: list[tuple[int, Synapses]] = field(default_factory=list)
    bias: np.ndarray | None = None

    @property
    def nbytes(self) -> int:
        return sum(s.nbytes for _, s in self.synapses)

    @property
    def record_dtype(self) -> type:
        """The dtype its recorded outputs are stored in."""
        return self.num.dtype if self.graded else np.int64

    def reset(self, batch: int) -> None:
        """Start a new batch of ``batch`` samples."""

    def synaptic(self, inputs: list[np.ndarray]) -> np.ndarray:
        """The sum of every projection's output (no bias)."""
        if len(self.synapses) == 1:   # one projection: its output is the sum (no zeros + add)
            port, syn = self.synapses[0]
            return np.asarray(syn(inputs[port]), dtype=self.num.dtype)
        acc = np.zeros((inputs[0].shape[0] if inputs else 1, self.size), dtype=self.num.dtype)
        for port, syn in self.synapses:
            acc += syn(inputs[port])
        return acc

    def drive(self, inputs: list[np.ndarray]) -> np.ndarray:
        return self.synaptic(inputs) + self.bias

    def step(self, inputs: list[np.ndarray]) -> np.ndarray:
        raise NotImplementedError

    def emit(self) -> np.ndarray:
        """What a kernel that sends first (:attr:`sends_first`) sends before its inputs arrive."""
        raise NotImplementedError

    def absorb(self, inputs: list[np.ndarray]) -> None:
        """End of a step (only a delay keeps its drive)."""


@dataclass
class NeuronKernel(Kernel):
    """Neurons: drive, then one step of their dynamics (float or integer)."""

    params: object = None                       # Dynamics (float) or neuron_int.IntNeuron (fixed)
    v: object = None

    def reset(self, batch: int) -> None:
        self.v = self.num.initial_state(self.params, batch, self.size)

    def step(self, inputs: list[np.ndarray]) -> np.ndarray:
        s, self.v = self.num.neuron_step(self.v, self.synaptic(inputs), self.bias, self.params)
        return s


@dataclass
class ProductKernel(Kernel):
    """A product of two gathered operands (matrix or element-wise)."""

    operands: list[Operand] = field(default_factory=list)
    hadamard: bool = False

    def step(self, inputs: list[np.ndarray]) -> np.ndarray:
        a, b = (self._gather(inputs, o) for o in self.operands)
        return (a * b if self.hadamard else np.matmul(a, b)).reshape(a.shape[0], -1)

    def _gather(self, inputs: list[np.ndarray], o: Operand) -> np.ndarray:
        src = inputs[o.port]
        padded = np.concatenate([src, np.zeros((src.shape[0], 1), src.dtype)], axis=1)
        return self.num.scaled(padded[:, o.where].reshape(src.shape[0], *o.shape), o.scale)


@dataclass
class HostKernel(Kernel):
    """A host partition (float64, as the embedded CPU computes it): its function on its drive,
    or on operands gathered like a product's (:mod:`snncompile.ir.host`)."""

    fn: HostFn | None = None
    driven: bool = False
    in_shape: tuple[int, ...] = ()
    out_shape: tuple[int, ...] = ()
    operands: list[Operand] = field(default_factory=list)
    window_steps: int | None = None   # a window host: rows are every step of every sample (window_values)

    def step(self, inputs: list[np.ndarray]) -> np.ndarray:
        if self.driven:   # its drive has the input's shape, not its own
            acc = np.zeros((inputs[0].shape[0], int(np.prod(self.in_shape))), dtype=np.float64)
            for port, syn in self.synapses:
                acc += syn(inputs[port])
            ins = [(acc + self.bias).reshape(-1, *self.in_shape)]
        else:
            ins = [ProductKernel._gather(self, inputs, o) for o in self.operands]  # type: ignore[arg-type]
        with torch.no_grad():
            y = host_apply(self.fn, [torch.from_numpy(np.ascontiguousarray(a, dtype=np.float64)) for a in ins],
                           self.out_shape, steps=self.window_steps)
        return y.reshape(y.shape[0], -1).numpy()


@dataclass
class DelayKernel(Kernel):
    """A delay split in two: :meth:`emit` sends its drive of ``steps`` ago (first in a step),
    :meth:`absorb` stores this step's drive at the end of the step."""

    sends_first: ClassVar[bool] = True

    steps: int | np.ndarray = 1                 # steps between absorb and emit (per neuron: array)
    relay: bool = False                         # sends spikes
    line: np.ndarray | None = None              # the last ``steps`` drives, a ring
    head: int = 0

    def reset(self, batch: int) -> None:
        self.line = np.zeros((int(np.max(self.steps)), batch, self.size), dtype=self.num.dtype)
        self.head = 0

    def emit(self) -> np.ndarray:
        """The drive of ``steps`` steps ago (zeros before the first)."""
        slot = (self.head - np.asarray(self.steps)) % len(self.line)
        out = self.line[slot] if slot.ndim == 0 else self.line[slot, :, np.arange(self.size)].T
        return out.astype(np.uint8) if self.relay else out.copy()

    def absorb(self, inputs: list[np.ndarray]) -> None:
        """Store this step's drive (call after :meth:`emit`, at the end of the step)."""
        self.line[self.head] = self.drive(inputs)
        self.head = (self.head + 1) % len(self.line)


@dataclass
class ReadoutKernel(Kernel):
    """The value readout (OUTPUT): its drive, as floats."""

    scale: float = 1.0                          # fixed point: integer → float

    @property
    def record_dtype(self) -> type:
        return np.float64

    def step(self, inputs: list[np.ndarray]) -> np.ndarray:
        return self.drive(inputs) / self.scale   # x / 1.0 is x: float readouts stay bit-equal


def _float_params(pop: NeuronPopulation) -> dynamics.Dynamics:
    p = pop.params
    if not p.spiking:   # no threshold, no reset
        return p
    th = np.broadcast_to(np.asarray(p.v_threshold, dtype=np.float64).reshape(-1), (pop.size,)).copy()
    by = p.reset_by if p.reset_by is None or np.isscalar(p.reset_by) else \
        np.broadcast_to(np.asarray(p.reset_by, dtype=np.float64).reshape(-1), (pop.size,)).copy()
    return p.with_params(v_threshold=th, reset_by=by)


def _where(pop: Population, idx: np.ndarray) -> np.ndarray:
    if pop.index is None:
        return idx.astype(np.int64)
    pos = np.full(pop.logical_size, -1, dtype=np.int64)
    pos[pop.index] = np.arange(pop.size)
    return pos[idx]


KERNEL = PopulationRegistry("simulation kernel")   # (population, Numerics) → its Kernel (synapses added after)


@KERNEL.register(NeuronPopulation, OrPopulation)
def _neuron_kernel(pop: NeuronPopulation, num: Numerics) -> Kernel:
    params, bias = num.neuron(pop)
    return NeuronKernel(pop.name, pop.size, num, pop.graded, bias=bias, params=params)


@KERNEL.register(ProductPopulation)
def _product_kernel(pop: ProductPopulation, num: Numerics) -> Kernel:
    k = ProductKernel(pop.name, pop.size, num, True, hadamard=pop.product == "hadamard")
    for o in pop.operands:
        k.sources.append(o.src)
        k.operands.append(Operand(len(k.sources) - 1, _where(num.net.populations[o.src], o.idx),
                                  tuple(o.shape), float(o.scale)))
    return k


@KERNEL.register(HostPopulation)
def _host_kernel(pop: HostPopulation, num: Numerics) -> Kernel:
    """Host partitions run in float64 (the embedded CPU computes them so); the integer datapath
    refuses them (quantize_plan does first: GELU, softmax and their like have no exact integer form)."""
    if isinstance(num, IntNumerics):
        raise SnnCompileError(host_refusal(pop, "the integer datapath"),
                              "drop --fixed-point: host partitions run in float", EXIT_UNSUPPORTED)
    if pop.fn.window:
        raise SnnCompileError(window_refusal(pop, "a stepped kernel (the integer datapath, a one-step run)"),
                              WINDOW_HINT, EXIT_UNSUPPORTED)
    return _host_kernel_of(pop, num)


def _host_kernel_of(pop: HostPopulation, num: Numerics) -> HostKernel:
    k = HostKernel(pop.name, pop.size, num, pop.graded, bias=num.bias(pop) if pop.driven else None, fn=pop.fn,
                   driven=pop.driven, in_shape=tuple(pop.in_shape), out_shape=tuple(pop.shape))
    for o in pop.operands:
        k.sources.append(o.src)
        k.operands.append(Operand(len(k.sources) - 1, _where(num.net.populations[o.src], o.idx),
                                  tuple(o.shape), float(o.scale)))
    return k


@KERNEL.register(DelayPopulation)
def _delay_kernel(pop: DelayPopulation, num: Numerics) -> Kernel:
    return DelayKernel(pop.name, pop.size, num, pop.graded, bias=num.bias(pop), steps=pop.steps, relay=pop.relay)


@KERNEL.register(InputPopulation)
def _input_kernel(pop: InputPopulation, num: Numerics) -> Kernel:
    raise ValueError(f"`{pop.name}` is the input: its values are given, not stepped")


def build_kernel(net: Netlist, name: str) -> Kernel:
    """The kernel of population ``name`` (or :data:`OUTPUT`), its synapses unrolled now."""
    num = numerics(net)
    if name == OUTPUT:
        bias, scale = num.readout()
        k = ReadoutKernel(OUTPUT, int(np.prod(net.output_shape)), num, True, bias=bias, scale=scale)
    else:
        pop = net.populations[name]
        k = KERNEL(pop)(pop, num)
    return _joined(net, name, k, num)


def _joined(net: Netlist, name: str, k: Kernel, num: Numerics) -> Kernel:
    """``k`` with the synapses of every projection into ``name`` unrolled."""
    for proj in net.into(name):
        if proj.nnz == 0:
            continue
        if proj.src not in k.sources:
            k.sources.append(proj.src)
        k.synapses.append((k.sources.index(proj.src), num.synapses(proj, net.populations[proj.src])))
    return k


def window_values(net: Netlist, name: str, recorded: dict[str, np.ndarray]) -> np.ndarray:
    """Window host ``name`` (a time barrier) computed on the host between two stages of a stepped
    run: its sources' outputs over every step, ``recorded`` [T, N, size], → its outputs [T, N, size]."""
    pop = net.populations[name]
    num = numerics(net)
    if not (isinstance(pop, HostPopulation) and pop.fn.window) or isinstance(num, IntNumerics):
        raise ValueError(f"`{name}` is not a float window host")
    k = _joined(net, name, _host_kernel_of(pop, num), num)
    T, N = next(iter(recorded.values())).shape[:2]
    k.window_steps = T
    y = k.step([np.asarray(recorded[s], dtype=np.float64).reshape(T * N, -1) for s in k.sources])
    return y.reshape(T, N, -1)


def step_order(net: Netlist) -> list[str]:
    """Populations (without the input): delays first (they emit before anything else), then
    the others in an order where every source comes first, then OUTPUT."""
    pops = sorted(net.populations.values(), key=lambda p: p.depth)
    first = [p.name for p in pops if isinstance(p, DelayPopulation)]
    names = first + [p.name for p in pops if not isinstance(p, (InputPopulation, DelayPopulation))]
    return names + ([OUTPUT] if net.output_kind is OutputKind.VALUES else [])


def input_values(net: Netlist, x: np.ndarray) -> np.ndarray:
    """x [T, N, *shape] → the input population's values [T, N, n] (integers in fixed point)."""
    return numerics(net).input_values(np.asarray(x, dtype=np.float64).reshape(x.shape[0], x.shape[1], -1))


def run_kernels(net: Netlist, x: np.ndarray, record: list[str] | None = None,
                batch: int | None = None) -> dict[str, np.ndarray]:
    """Step every population's kernel in one process: {population: [T, N, size]} and OUTPUT.

    Samples are processed ``batch`` at a time (all at once by default).
    """
    xin = input_values(net, x)
    T, N = xin.shape[:2]
    batch = N if batch is None else max(1, min(batch, N))
    source = net.source.name
    kernels = [build_kernel(net, n) for n in step_order(net)]
    keep = {k.name for k in kernels} if record is None else set(record) | {OUTPUT}
    out = {k.name: np.zeros((T, N, k.size), dtype=k.record_dtype) for k in kernels if k.name in keep}
    for lo in range(0, N, batch):
        hi = min(N, lo + batch)
        for k in kernels:
            k.reset(hi - lo)
        for t in range(T):
            cur = step_kernels(kernels, {source: xin[t, lo:hi]})
            for name, rec in out.items():
                rec[t, lo:hi] = cur[name]
    return out


def step_kernels(kernels: list[Kernel], inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """One time step of every kernel (in :func:`step_order`) on ``inputs`` ({population: its
    values [B, n]}: the input population's, or an earlier stage's): {population: its outputs
    [B, size]} (fresh arrays)."""
    cur = dict(inputs)
    for k in kernels:
        # a delay sends first: its sources have not stepped yet
        cur[k.name] = k.emit() if k.sends_first else k.step([cur[s] for s in k.sources])
    for k in kernels:   # a delay keeps this step's drive (read after every population stepped)
        k.absorb([cur[s] for s in k.sources])
    return cur
