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
from lava.proc.sparse.process import DelaySparse, Sparse  # noqa: E402

from backends.lava.dynamics import SJ_PARAMS  # noqa: E402
from backends.lava.procs.matmul.process import SpikeMatMul  # noqa: E402
from backends.lava.procs.sj_neuron.process import SJNeuron  # noqa: E402
from snncompile.netlist import OUTPUT, Netlist, Population  # noqa: E402

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
        if pop.kind == "matmul":
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


def _neuron_process(name: str, pop: Population, T: int, fixed: bool) -> SJNeuron:
    """The SJNeuron of population ``pop`` (its model code from ``SJ_PARAMS``), resetting every ``T`` steps."""
    p = pop.params
    sj = SJ_PARAMS(p)(p)   # refused models were named by refuse_dynamics before
    if fixed:
        qp = pop.qparams
        return SJNeuron(shape=(pop.size,), model_code=sj.code, v_threshold=qp.threshold,
                        v_reset=None if qp.soft else qp.v_reset, leak=qp.dv, du=qp.du,
                        decay_input=sj.decay_input, bias=pop.qbias, reset_interval=T,
                        depth=pop.depth, strict=qp.strict, reset_by=qp.reset_by, name=name)
    return SJNeuron(shape=(pop.size,), model_code=sj.code, v_threshold=p.v_threshold,
                    v_reset=p.v_reset, leak=sj.leak, decay_input=sj.decay_input,
                    bias=pop.bias, reset_interval=T, depth=pop.depth, strict=p.strict,
                    reset_by=p.reset_by, name=name)


def _processes(plan: Netlist, x: np.ndarray, T: int, total: int) -> dict[str, object]:
    """One Lava process per population: the input's ring buffer, neurons, spike products."""
    fixed = plan.fixed_point
    procs: dict[str, object] = {}
    for name, pop in plan.populations.items():
        if pop.kind == "input":
            data = stream_input(x, total)
            procs[name] = RingBuffer(data=np.round(data * plan.input_scale).astype(np.int32) if fixed else data)
        elif pop.kind != "matmul":   # products are built below, once their operand populations exist
            procs[name] = _neuron_process(name, pop, T, fixed)
    for name, pop in plan.populations.items():
        if pop.kind == "matmul":
            procs[name] = _matmul_process(plan, pop)
    return procs


def _connect_projection(plan: Netlist, proj, procs: dict[str, object], extractors: dict[str, Extractor]) -> None:
    """The Lava synapse process of ``proj``, between its source's out port and its target."""
    fixed = plan.fixed_point
    target = extractors[OUTPUT].in_port if proj.dst == OUTPUT else procs[proj.dst].a_in
    src_out = _out_port(procs[proj.src])
    bits = GRADED_BITS if plan.populations[proj.src].graded else 0
    # Lava's fixed_pt Conv ignores weight_exp; geometry past int8 runs as Sparse
    if proj.impl == "conv" and not fixed and lava_conv_fits(proj.kernel):
        conn = _conv_process(proj, bits)
        c, h, w = proj.in_shape
        src_out.reshape((c, h, w)).transpose((2, 1, 0)).connect(conn.s_in)
        co, ho, wo = proj.kernel.shape
        conn.a_out.transpose((2, 1, 0)).reshape((co * ho * wo,)).connect(target)
        return
    kw = dict(num_message_bits=bits)
    w = proj.weights.tocsr()
    if fixed:
        w = w.astype(np.int32)
        kw.update(weight_exp=proj.weight_exp, num_weight_bits=8)
    if proj.delay:
        conn = DelaySparse(weights=w, delays=proj.delay, **kw)
    elif proj.impl == "dense":
        conn = Dense(weights=w.toarray(), **kw)
    else:
        conn = Sparse(weights=w, **kw)
    src_out.connect(conn.s_in)
    conn.a_out.connect(target)


def run_plan(plan: Netlist, x: np.ndarray, record: list[str],
             progress: Callable[[int, int], None] | None = None) -> dict[str, np.ndarray]:
    """Simulate ``plan`` on x [T, N, *input_shape] with Lava's floating_pt CPU models.

    Samples stream back to back; each population resets at the step its next sample
    arrives. Returns {population: spikes [T, N, size]} for ``record`` and, for a
    value readout, ``OUTPUT``: [T, N, size] (bias added).
    """
    T, N = x.shape[:2]
    total = N * T + plan.depth
    fixed = plan.fixed_point
    procs = _processes(plan, x, T, total)
    out_size = int(np.prod(plan.output_shape))
    extractors: dict[str, Extractor] = {}
    for name in record:
        extractors[name] = Extractor(shape=(plan.populations[name].size,), buffer_size=64)
        _out_port(procs[name]).connect(extractors[name].in_port)
    if plan.output_kind == "values":
        extractors[OUTPUT] = Extractor(shape=(out_size,), buffer_size=64)
    for proj in plan.projections:
        if proj.nnz:
            _connect_projection(plan, proj, procs, extractors)

    _connect_operands(plan, procs)
    # Lava runs only the processes connected to the one it starts from: a population driven
    # by its bias alone gets a synapse-free connection from the input.
    fed = {p.dst for p in plan.projections if p.nnz} | {n for n, p in plan.populations.items() if p.kind == "matmul"}
    source = next(n for n, p in plan.populations.items() if p.kind == "input")
    unfed = [(procs[n].a_in, p.size) for n, p in plan.populations.items()
             if p.kind in ("neuron", "or") and n not in fed]
    if OUTPUT in extractors and OUTPUT not in fed:  # a readout of its bias alone
        unfed.append((extractors[OUTPUT].in_port, out_size))
    for port, size in unfed:
        empty = Sparse(weights=sp.csr_matrix((size, plan.populations[source].size)), num_message_bits=GRADED_BITS,
                       **({"weight_exp": 0, "num_weight_bits": 8} if fixed else {}))
        _out_port(procs[source]).connect(empty.s_in)
        empty.a_out.connect(port)
    cfg = Loihi2SimCfg(select_tag="fixed_pt" if fixed else "floating_pt",
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
        if k == OUTPUT and fixed:
            seq = (seq + plan.output_qbias.reshape(1, 1, -1)) / plan.output_scale
        elif k == OUTPUT:
            seq = seq + plan.output_bias.reshape(1, 1, -1)
        out[k] = seq
    return out
