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

The same kernels run inside the fused Lava processes (one kernel per process), the
integer reference simulator and the one-process floor of the benchmark.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp

from snncompile.fixedpoint import neuron_int
from snncompile.ir import dynamics
from snncompile.netlist import OUTPUT, Netlist, Population, Projection

READOUT = "readout"  # kernel kind of the value readout (OUTPUT)


def shift(acc: np.ndarray, exp: int) -> np.ndarray:
    """Lava's weight exponent: ``acc << exp`` or an arithmetic ``acc >> -exp``."""
    return np.left_shift(acc, exp) if exp > 0 else np.right_shift(acc, -exp)


class Synapses:
    """One projection: source outputs ``[B, src kept]`` → drive ``[B, dst kept]``."""

    def __init__(self, proj: Projection, src: Population, fixed: bool) -> None:
        w = proj.weights.tocsr()
        w.sort_indices()
        self.fixed = fixed
        self.exp = proj.weight_exp if fixed else 0
        self.shape = w.shape
        # One copy of the synapses, in the layout its reads need: integer mantissas (exact
        # sums in int64) or float64 weights target × source for real-valued inputs; source ×
        # target for spikes, so a spike reads its own row only.
        self.by_source = not fixed and not src.graded
        if fixed:
            self.w = w.astype(np.int16 if np.abs(w.data).max(initial=0) < 2**15 else np.int64)
        else:
            self.w = w.astype(np.float64).T.tocsr() if self.by_source else w.astype(np.float64)
        del w

    @property
    def nbytes(self) -> int:
        return self.w.data.nbytes + self.w.indices.nbytes + self.w.indptr.nbytes

    def __call__(self, s: np.ndarray) -> np.ndarray:
        if self.by_source:  # binary spikes: gather the synapse rows of the sources that fired
            y = (sp.csr_matrix(s) @ self.w).toarray()
        else:
            y = (self.w @ np.asarray(s, dtype=np.int64 if self.fixed else np.float64).T).T
        if self.fixed:
            return shift(np.asarray(y, dtype=np.int64), self.exp)
        return np.ascontiguousarray(y)


@dataclass
class Operand:
    """One factor of a product population, gathered from a source's kept outputs."""

    port: int
    where: np.ndarray        # position of each element among the source's kept neurons, -1 = removed
    shape: tuple[int, ...]
    scale: float


@dataclass
class Kernel:
    """One population (or the value readout) advancing one step on a batch."""

    name: str
    kind: str                                   # "neuron" | "or" | "matmul" | READOUT
    size: int
    sources: list[str]                          # port order
    synapses: list[tuple[int, Synapses]] = field(default_factory=list)
    operands: list[Operand] = field(default_factory=list)
    hadamard: bool = False
    bias: np.ndarray | None = None
    params: object = None                       # Dynamics (float) or neuron_int.IntNeuron (fixed)
    fixed: bool = False
    output_scale: float = 1.0                   # fixed-point readout: integer → float
    v: np.ndarray | None = None
    steps: int | np.ndarray = 0                 # "delay": steps between absorb and emit (per neuron: array)
    relay: bool = False                         # "delay": sends spikes
    line: np.ndarray | None = None              # "delay": the last ``steps`` drives, a ring
    head: int = 0

    @property
    def graded(self) -> bool:
        """Outputs real values: products, the readout, a non-spiking population's membrane."""
        if self.kind == "delay":
            return not self.relay
        return self.kind in ("matmul", READOUT) or (not self.fixed and self.params is not None
                                                    and not self.params.spiking)

    @property
    def nbytes(self) -> int:
        return sum(s.nbytes for _, s in self.synapses)

    def reset(self, batch: int) -> None:
        if self.kind in ("neuron", "or"):
            self.v = neuron_int.initial_state(self.params, batch, self.size) if self.fixed else \
                dynamics.initial_state(self.params, np.full((batch, self.size), self.params.v_init))
        if self.kind == "delay":
            longest = int(np.max(self.steps))
            self.line = np.zeros((longest, batch, self.size), dtype=np.int64 if self.fixed else np.float64)
            self.head = 0

    def emit(self) -> np.ndarray:
        """A delay's drive of ``steps`` steps ago (zeros before the first)."""
        slot = (self.head - np.asarray(self.steps)) % len(self.line)
        out = self.line[slot] if slot.ndim == 0 else self.line[slot, :, np.arange(self.size)].T
        return out.astype(np.uint8) if self.relay else out.copy()

    def absorb(self, inputs: list[np.ndarray]) -> None:
        """Store this step's drive of a delay (call after :meth:`emit`, at the end of the step)."""
        self.line[self.head] = self.drive(inputs)
        self.head = (self.head + 1) % len(self.line)

    def synaptic(self, inputs: list[np.ndarray]) -> np.ndarray:
        """The sum of every projection's output (no bias)."""
        acc = np.zeros((inputs[0].shape[0] if inputs else 1, self.size),
                       dtype=np.int64 if self.fixed else np.float64)
        for port, syn in self.synapses:
            acc += syn(inputs[port])
        return acc

    def drive(self, inputs: list[np.ndarray]) -> np.ndarray:
        return self.synaptic(inputs) + self.bias

    def step(self, inputs: list[np.ndarray]) -> np.ndarray:
        if self.kind == "delay":
            raise RuntimeError("a delay kernel is stepped by emit() and absorb()")
        if self.kind == "matmul":
            a, b = (self._gather(inputs, o) for o in self.operands)
            return (a * b if self.hadamard else np.matmul(a, b)).reshape(a.shape[0], -1)
        if self.fixed and self.kind != READOUT:   # Lava: the sum enters the current, the bias the membrane
            s, self.v = neuron_int.step(self.v, self.synaptic(inputs), self.bias, self.params)
            return s
        drive = self.drive(inputs)
        if self.kind == READOUT:
            return drive / self.output_scale if self.fixed else drive
        s, self.v = dynamics.step(self.v, drive, self.params)
        return s

    def _gather(self, inputs: list[np.ndarray], o: Operand) -> np.ndarray:
        src = inputs[o.port]
        padded = np.concatenate([src, np.zeros((src.shape[0], 1), src.dtype)], axis=1)
        vals = padded[:, o.where].reshape(src.shape[0], *o.shape)
        if not self.fixed and o.scale != 1.0:  # fixed point: scales live in the next weights
            vals = vals * o.scale
        return vals


def _float_params(pop: Population) -> dynamics.Dynamics:
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


def build_kernel(net: Netlist, name: str) -> Kernel:
    """The kernel of population ``name`` (or :data:`OUTPUT`), its synapses unrolled now."""
    fixed = net.fixed_point
    if name == OUTPUT:
        size = int(np.prod(net.output_shape))
        k = Kernel(OUTPUT, READOUT, size, [], fixed=fixed,
                   bias=net.output_qbias if fixed else np.asarray(net.output_bias, dtype=np.float64),
                   output_scale=net.output_scale if fixed else 1.0)
    else:
        pop = net.populations[name]
        k = Kernel(name, pop.kind, pop.size, [], fixed=fixed, steps=pop.steps, relay=pop.relay)
        if pop.kind == "matmul":
            k.hadamard = pop.product == "hadamard"
            for o in pop.operands:
                k.sources.append(o.src)
                k.operands.append(Operand(len(k.sources) - 1, _where(net.populations[o.src], o.idx),
                                          tuple(o.shape), float(o.scale)))
            return k
        if pop.kind != "delay":   # a delay has a drive (bias included) but no neuron
            k.params = pop.qparams if fixed else _float_params(pop)
        k.bias = np.asarray(pop.qbias, dtype=np.int64) if fixed else np.asarray(pop.bias, dtype=np.float64)
    for proj in net.into(name):
        if proj.nnz == 0:
            continue
        if proj.src not in k.sources:
            k.sources.append(proj.src)
        k.synapses.append((k.sources.index(proj.src), Synapses(proj, net.populations[proj.src], fixed)))
    return k


def step_order(net: Netlist) -> list[str]:
    """Populations (without the input): delays first (they emit before anything else), then
    the others in an order where every source comes first, then OUTPUT."""
    pops = sorted(net.populations.values(), key=lambda p: p.depth)
    names = [p.name for p in pops if p.kind == "delay"] + [p.name for p in pops if p.kind not in ("input", "delay")]
    return names + ([OUTPUT] if net.output_kind == "values" else [])


def input_values(net: Netlist, x: np.ndarray) -> np.ndarray:
    """x [T, N, *shape] → the input population's values [T, N, n] (integers in fixed point)."""
    flat = np.asarray(x, dtype=np.float64).reshape(x.shape[0], x.shape[1], -1)
    return np.round(flat * net.input_scale).astype(np.int64) if net.fixed_point else flat


def run_kernels(net: Netlist, x: np.ndarray, record: list[str] | None = None,
                batch: int | None = None) -> dict[str, np.ndarray]:
    """Step every population's kernel in one process: {population: [T, N, size]} and OUTPUT.

    Samples are processed ``batch`` at a time (all at once by default).
    """
    xin = input_values(net, x)
    T, N = xin.shape[:2]
    batch = N if batch is None else max(1, min(batch, N))
    source = next(p.name for p in net.populations.values() if p.kind == "input")
    kernels = [build_kernel(net, n) for n in step_order(net)]
    keep = {k.name for k in kernels} if record is None else set(record) | {OUTPUT}
    out = {k.name: np.zeros((T, N, k.size), dtype=np.float64 if k.graded and not k.fixed or k.kind == READOUT
                            else np.int64) for k in kernels if k.name in keep}
    for lo in range(0, N, batch):
        hi = min(N, lo + batch)
        for k in kernels:
            k.reset(hi - lo)
        for t in range(T):
            cur = {source: xin[t, lo:hi]}
            for k in kernels:
                cur[k.name] = k.emit() if k.kind == "delay" else k.step([cur[s] for s in k.sources])
                if k.name in out:
                    out[k.name][t, lo:hi] = cur[k.name]
            for k in kernels:
                if k.kind == "delay":
                    k.absorb([cur[s] for s in k.sources])
    return out
