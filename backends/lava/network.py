"""Build Lava processes from a Netlist and run them (call inside the worker process)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import scipy.sparse as sp

from backends.lava import compat

compat.install()

from lava.magma.core.run_conditions import RunSteps  # noqa: E402
from lava.magma.core.run_configs import Loihi2SimCfg  # noqa: E402
from lava.proc.conv.process import Conv  # noqa: E402
from lava.proc.dense.process import Dense  # noqa: E402
from lava.proc.io.extractor import Extractor, PyLoihiExtractorModel  # noqa: E402
from lava.proc.io.source import RingBuffer  # noqa: E402
from lava.proc.lif.process import LIFReset  # noqa: E402
from lava.proc.sparse.process import DelaySparse, Sparse  # noqa: E402

from backends.lava.dynamics import SJ_PARAMS  # noqa: E402
from backends.lava.procs.matmul.process import SpikeMatMul  # noqa: E402
from backends.lava.procs.sj_neuron.process import SJNeuron  # noqa: E402
from backends.lava.standard import standard_specs  # noqa: E402
from snncompile.errors import EXIT_UNSUPPORTED, SnnCompileError  # noqa: E402
from snncompile.netlist import (  # noqa: E402
    OUTPUT,
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
    host_refusal,
)

GRADED_BITS = 24  # real-valued (graded) messages from the input population


def stream_input(x: np.ndarray, total_steps: int) -> np.ndarray:
    """x [T, N, *shape] → RingBuffer data (n_in, total_steps): sample n step t at n*T + t."""
    T, N = x.shape[:2]
    flat = np.asarray(x, dtype=np.float64).reshape(T, N, -1).transpose(1, 0, 2).reshape(N * T, -1)
    data = np.zeros((flat.shape[1], total_steps))
    data[:, : N * T] = flat.T
    return data


def _out_port(proc):
    return proc.out if isinstance(proc, SpikeMatMul) else proc.s_out


def _matmul_process(plan: Netlist, pop) -> SpikeMatMul:
    ops = pop.operands
    gathers = []
    for o in ops:
        src = plan.populations[o.src]
        if src.index is None:
            gathers.append(o.idx.astype(np.int64))
        else:  # position of each logical index among the kept neurons, -1 if removed
            where = np.full(src.logical_size, -1, dtype=np.int64)
            where[src.index] = np.arange(src.size)
            gathers.append(where[o.idx])
    proc = SpikeMatMul(a_size=plan.populations[ops[0].src].size, b_size=plan.populations[ops[1].src].size,
                       out_size=pop.size, a_gather=gathers[0], b_gather=gathers[1], a_shape=ops[0].shape,
                       b_shape=ops[1].shape, a_delay=ops[0].delay, b_delay=ops[1].delay,
                       hadamard=pop.product == "hadamard", scales=(ops[0].scale, ops[1].scale),
                       name=pop.name)
    return proc


def _connect_operands(plan: Netlist, procs: dict) -> None:
    for name, pop in plan.populations.items():
        if isinstance(pop, ProductPopulation):
            a, b = pop.operands
            _out_port(procs[a.src]).connect(procs[name].a_in)
            _out_port(procs[b.src]).connect(procs[name].b_in)


INT8_MAX = 127  # Lava's Conv models hold kernel size, stride, padding, dilation and groups as int8


def lava_conv_fits(node) -> bool:
    """Whether Lava's ``Conv`` can hold this convolution's geometry: its process models
    store it in int8 Vars, so ``groups=128`` (a max-pool over 128 channels) wraps to -128
    and the convolution silently outputs zeros."""
    geometry = [node.groups, *node.weight.shape[2:], *node.stride, *node.padding, *node.dilation]
    return max(int(v) for v in geometry) <= INT8_MAX


def _conv_process(proj, num_message_bits: int) -> Conv:
    """Lava Conv is a true convolution over (X=width, Y=height, C): flip and transpose."""
    node = proj.kernel
    w = np.asarray(node.effective_weight, dtype=np.float64)[:, :, ::-1, ::-1].transpose(0, 3, 2, 1).copy()
    c, h, wd = proj.in_shape
    return Conv(weight=w, input_shape=(wd, h, c), padding=node.padding[::-1],
                stride=node.stride[::-1], dilation=node.dilation[::-1], groups=node.groups,
                num_message_bits=num_message_bits)


class _Float:
    """How the stock emission runs a float :class:`Netlist`: Lava's floating_pt models."""

    tag = "floating_pt"
    conv = True                       # shared-kernel projections as Lava Conv

    def __init__(self, plan: Netlist) -> None:
        self.plan = plan

    def input(self, data: np.ndarray) -> np.ndarray:
        return data

    def synapses(self, w: sp.csr_matrix, weight_exp: int) -> tuple[sp.csr_matrix, dict]:
        """The weights a synapse process stores and its extra arguments."""
        return w, {}

    def neuron(self, name: str, pop: NeuronPopulation, sj, T: int) -> SJNeuron:
        p = pop.params
        return SJNeuron(shape=(pop.size,), model_code=sj.code, v_threshold=p.v_threshold,
                        v_reset=p.v_reset, leak=sj.leak, decay_input=sj.decay_input,
                        bias=pop.bias, reset_interval=T, depth=pop.depth, strict=p.strict,
                        reset_by=p.reset_by, name=name)

    def readout(self, seq: np.ndarray) -> np.ndarray:
        return seq + self.plan.output_bias.reshape(1, 1, -1)


class _Fixed(_Float):
    """How it runs a :class:`FixedNetlist`: Lava's bit-accurate fixed_pt models."""

    tag = "fixed_pt"
    conv = False                      # Lava's fixed_pt Conv ignores weight_exp: run as Sparse

    def input(self, data: np.ndarray) -> np.ndarray:
        return np.round(data * self.plan.input_scale).astype(np.int32)

    def synapses(self, w: sp.csr_matrix, weight_exp: int) -> tuple[sp.csr_matrix, dict]:
        return w.astype(np.int32), {"weight_exp": weight_exp, "num_weight_bits": 8}

    def neuron(self, name: str, pop: NeuronPopulation, sj, T: int) -> SJNeuron:
        qp, qbias = self.plan.fixed[name].params, self.plan.fixed[name].bias
        return SJNeuron(shape=(pop.size,), model_code=sj.code, v_threshold=qp.threshold,
                        v_reset=None if qp.soft else qp.v_reset, leak=qp.dv, du=qp.du,
                        decay_input=sj.decay_input, bias=qbias, reset_interval=T,
                        depth=pop.depth, strict=qp.strict, reset_by=qp.reset_by,
                        bias_current=qp.bias_current, name=name)

    def readout(self, seq: np.ndarray) -> np.ndarray:
        return (seq + self.plan.output_qbias.reshape(1, 1, -1)) / self.plan.output_scale


class _Standard(_Fixed):
    """The loihi emission: a :class:`FixedNetlist` on Lava's standard processes only, neurons as
    Lava's own bit-accurate ``LIFReset`` (rules and refusals in ``backends.lava.standard``)."""

    def __init__(self, plan: Netlist) -> None:
        super().__init__(plan)
        self.specs = standard_specs(plan)

    def neuron(self, name: str, pop: NeuronPopulation, sj, T: int) -> LIFReset:
        spec = self.specs[name]
        # zero u and v at the step the population receives a new sample's first input
        return LIFReset(shape=(pop.size,), du=spec.du, dv=spec.dv, vth=spec.vth, bias_mant=spec.bias_mant,
                        bias_exp=spec.bias_exp, reset_interval=T, reset_offset=(1 + pop.depth) % T, name=name)


ARITHMETIC: dict[type[Netlist], type[_Float]] = {Netlist: _Float, FixedNetlist: _Fixed}


def arithmetic(plan: Netlist, emit: str = "stock") -> _Float:
    """How ``emit`` runs ``plan``: by netlist type for the stock emission, standard processes for loihi."""
    return _Standard(plan) if emit == "loihi" else ARITHMETIC[type(plan)](plan)


def _neuron_process(arith: _Float, name: str, pop: NeuronPopulation, T: int) -> SJNeuron | LIFReset:
    """The neuron process of population ``pop``, resetting every ``T`` steps."""
    p = pop.params
    sj = None if isinstance(arith, _Standard) else SJ_PARAMS(p)(p)   # refused models were named before
    return arith.neuron(name, pop, sj, T)


PROCESS = PopulationRegistry("Lava process (stock emission)")   # (arith, name, pop, x, T, total) → its process


@PROCESS.register(InputPopulation)
def _input_process(arith: _Float, name: str, pop: InputPopulation, x: np.ndarray, T: int, total: int) -> RingBuffer:
    return RingBuffer(data=arith.input(stream_input(x, total)))


@PROCESS.register(NeuronPopulation, OrPopulation)
def _neurons(arith: _Float, name: str, pop: NeuronPopulation, x: np.ndarray, T: int, total: int) -> SJNeuron:
    return _neuron_process(arith, name, pop, T)


@PROCESS.register(ProductPopulation)
def _product(arith: _Float, name: str, pop: ProductPopulation, x: np.ndarray, T: int, total: int) -> SpikeMatMul:
    return _matmul_process(arith.plan, pop)


@PROCESS.register(HostPopulation)
def _host(plan: Netlist, name: str, pop: HostPopulation, x: np.ndarray, T: int, total: int) -> object:
    raise SnnCompileError(host_refusal(pop, "the stock Lava emission"),
                          "the reference simulator (--target energy) runs host partitions exactly", EXIT_UNSUPPORTED)


@PROCESS.register(DelayPopulation)
def _delay(arith: _Float, name: str, pop: DelayPopulation, x: np.ndarray, T: int, total: int) -> object:
    raise ValueError(f"`{name}` is a delay: the stock emission refuses delays (refuse_delays), --emit fused runs them")


def _processes(arith: _Float, x: np.ndarray, T: int, total: int) -> dict[str, object]:
    """One Lava process per population: the input's ring buffer, neurons, spike products
    (built last, once their operand populations exist)."""
    procs: dict[str, object] = {}
    pops = sorted(arith.plan.populations.items(), key=lambda kv: isinstance(kv[1], ProductPopulation))
    for name, pop in pops:
        procs[name] = PROCESS(pop)(arith, name, pop, x, T, total)
    return procs


def _connect_projection(arith: _Float, proj, procs: dict[str, object], extractors: dict[str, Extractor]) -> None:
    """The Lava synapse process of ``proj``, between its source's out port and its target."""
    plan = arith.plan
    target = extractors[OUTPUT].in_port if proj.dst == OUTPUT else procs[proj.dst].a_in
    src_out = _out_port(procs[proj.src])
    bits = GRADED_BITS if plan.populations[proj.src].graded else 0
    # geometry past int8 runs as Sparse
    if proj.impl == "conv" and arith.conv and lava_conv_fits(proj.kernel):
        conn = _conv_process(proj, bits)
        c, h, w = proj.in_shape
        src_out.reshape((c, h, w)).transpose((2, 1, 0)).connect(conn.s_in)
        co, ho, wo = proj.kernel.shape
        conn.a_out.transpose((2, 1, 0)).reshape((co * ho * wo,)).connect(target)
        return
    w, kw = arith.synapses(proj.weights.tocsr(), proj.weight_exp)
    kw.update(num_message_bits=bits)
    if proj.delay:
        conn = DelaySparse(weights=w, delays=proj.delay, **kw)
    elif proj.impl == "dense":
        conn = Dense(weights=w.toarray(), **kw)
    else:
        conn = Sparse(weights=w, **kw)
    src_out.connect(conn.s_in)
    conn.a_out.connect(target)


def run_plan(plan: Netlist, x: np.ndarray, record: list[str],
             progress: Callable[[int, int], None] | None = None, emit: str = "stock") -> dict[str, np.ndarray]:
    """Simulate ``plan`` on x [T, N, *input_shape] with Lava's CPU models (floating_pt, or
    fixed_pt for a :class:`FixedNetlist`; ``emit="loihi"``: standard processes only).

    Samples stream back to back; each population resets at the step its next sample
    arrives. Returns {population: spikes [T, N, size]} for ``record`` and, for a
    value readout, ``OUTPUT``: [T, N, size] (bias added).
    """
    T, N = x.shape[:2]
    total = N * T + plan.depth
    arith = arithmetic(plan, emit)
    procs = _processes(arith, x, T, total)
    out_size = int(np.prod(plan.output_shape))
    extractors: dict[str, Extractor] = {}
    for name in record:
        extractors[name] = Extractor(shape=(plan.populations[name].size,), buffer_size=64)
        _out_port(procs[name]).connect(extractors[name].in_port)
    if plan.output_kind is OutputKind.VALUES:
        extractors[OUTPUT] = Extractor(shape=(out_size,), buffer_size=64)
    for proj in plan.projections:
        if proj.nnz:
            _connect_projection(arith, proj, procs, extractors)

    _connect_operands(plan, procs)
    # Lava runs only the processes connected to the one it starts from: a population driven
    # by its bias alone gets a synapse-free connection from the input.
    fed = {p.dst for p in plan.projections if p.nnz} | \
        {n for n, p in plan.populations.items() if isinstance(p, ProductPopulation)}
    source = plan.source.name
    unfed = [(procs[n].a_in, p.size) for n, p in plan.populations.items()
             if isinstance(p, NeuronPopulation) and n not in fed]
    if OUTPUT in extractors and OUTPUT not in fed:  # a readout of its bias alone
        unfed.append((extractors[OUTPUT].in_port, out_size))
    for port, size in unfed:
        w, kw = arith.synapses(sp.csr_matrix((size, plan.populations[source].size)), 0)
        empty = Sparse(weights=w, num_message_bits=GRADED_BITS, **kw)
        _out_port(procs[source]).connect(empty.s_in)
        empty.a_out.connect(port)
    cfg = Loihi2SimCfg(select_tag=arith.tag,
                       exception_proc_model_map={Extractor: PyLoihiExtractorModel})
    anchor = next(iter(procs.values()))
    raw = {k: np.zeros((total, e._shape[0])) for k, e in extractors.items()}
    anchor.run(condition=RunSteps(num_steps=total, blocking=False), run_cfg=cfg)
    try:
        for g in range(total):
            for k, e in extractors.items():
                raw[k][g] = e.receive()
            if progress and (g % 16 == 0 or g == total - 1):
                progress(g + 1, total)
        anchor.wait()
    finally:
        anchor.stop()
    out: dict[str, np.ndarray] = {}
    for k, series in raw.items():
        d = plan.output_depth if k == OUTPUT else plan.populations[k].depth
        seq = series[d: d + N * T].reshape(N, T, -1).transpose(1, 0, 2)
        out[k] = arith.readout(seq) if k == OUTPUT else seq
    return out
