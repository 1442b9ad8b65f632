"""The single time step of a compiled netlist as an ONNX model.

Inputs: ``x`` (the input at step t, [N, *input shape]) and ``<population>.v`` (membrane of
every neuron or OR population, [N, kept neurons]). A population's tensors are named by its
module path in the user's model (``Netlist.label``: ``features.3.v``); the metadata keeps the
IR name (``name``) next to it (``layer``). Outputs: ``<population>.spikes``
(0/1, kept neurons), ``<population>.v_next``, ``<product>.values`` for spike products, and
``readout`` (the output value at step t, [N, *output shape]). Populations step in depth
order with no latency between them, as in the reference simulator. A delay population
(recurrent loop, NIR Delay) has state ``<population>.line`` ([N, steps·size]: its last
``steps`` drives, oldest first, start 0): it sends the oldest (``<population>.values``) and
returns ``<population>.line_next`` with this step's drive appended. The neuron update is
:func:`snncompile.ir.dynamics.step`, operation for operation (the charge per model
through the ``ONNX_CHARGE`` registry).
"""

from __future__ import annotations

import json

import numpy as np
import onnx

from backends.onnx.builder import Builder
from backends.onnx.network import INPUT, READOUT, NetworkEmitter, order
from snncompile.errors import EXIT_UNSUPPORTED, SnnCompileError
from snncompile.ir.dynamics import (
    IF,
    LI,
    LIF,
    PLIF,
    CubaLI,
    CubaLIF,
    DynamicsRegistry,
    Firing,
    Integrator,
    LoihiCuba,
    OrPool,
    Threshold,
    refused,
)
from snncompile.netlist import (
    DelayPopulation,
    HostPopulation,
    InputPopulation,
    Netlist,
    NeuronPopulation,
    OrPopulation,
    Population,
    PopulationRegistry,
    ProductPopulation,
    host_refusal,
)

FORMAT = "snncompile single time step"


ONNX_CHARGE = DynamicsRegistry("ONNX step")
_refuse = refused("population `{name}` has neuron model '{model}', which the ONNX export cannot write",
                  "use IF, LIF, parametric LIF or threshold neurons")
ONNX_CHARGE.register(LI, Integrator, CubaLI, CubaLIF, LoihiCuba)(_refuse)


@ONNX_CHARGE.register(IF)
def _charge_if(b: Builder, v: str, x: str, p: IF, hint: str) -> str:
    return b.op("Add", [v, x], f"{hint}_h")


@ONNX_CHARGE.register(Threshold)
def _charge_threshold(b: Builder, v: str, x: str, p: Threshold, hint: str) -> str:
    # stateless: x + 0.0 * v
    return b.op("Add", [x, b.op("Mul", [b.scalar(0.0), v], f"{hint}_zv")], f"{hint}_h")


def _charge_leaky(b: Builder, v: str, x: str, vr: float, k: float, op: str, decay_input: bool, hint: str) -> str:
    vr = b.scalar(vr)
    leak = b.op("Sub", [v, vr], f"{hint}_dv")
    if decay_input:   # v + (x - (v - vr)) ∘ k
        return b.op("Add", [v, b.op(op, [b.op("Sub", [x, leak], f"{hint}_in"), b.scalar(k)], f"{hint}_dh")],
                    f"{hint}_h")
    # v - (v - vr) ∘ k + x
    return b.op("Add", [b.op("Sub", [v, b.op(op, [leak, b.scalar(k)], f"{hint}_leak")], f"{hint}_vl"), x],
                f"{hint}_h")


@ONNX_CHARGE.register(LIF, OrPool)
def _charge_lif(b: Builder, v: str, x: str, p: LIF | OrPool, hint: str) -> str:
    return _charge_leaky(b, v, x, p.v_init, p.tau, "Div", p.decay_input, hint)   # … / tau


@ONNX_CHARGE.register(PLIF)
def _charge_plif(b: Builder, v: str, x: str, p: PLIF, hint: str) -> str:
    return _charge_leaky(b, v, x, p.v_init, p.decay, "Mul", p.decay_input, hint)   # … * decay


def check_supported(pop: Population) -> None:
    """The ONNX export's error for a population whose model it cannot write."""
    if not ONNX_CHARGE.supports(pop.params):
        ONNX_CHARGE(pop.params)(pop.params, name=pop.name)


def neuron_step(b: Builder, v: str, x: str, p: Firing, hint: str, threshold: str) -> tuple[str, str]:
    """(spikes, v_next) of ``dynamics.step`` for state ``v`` and input ``x``."""
    h = ONNX_CHARGE(p)(b, v, x, p, hint)
    strict = p.strict   # h > v_th (NIR), else h >= v_th (spikingjelly)
    fired = b.op("Greater" if strict else "GreaterOrEqual", [h, threshold], f"{hint}_fired")
    s = b.op("Cast", [fired], f"{hint}_s", to=b.onnx_dtype)
    if p.v_reset is None:   # soft: h - s * reset_by (th when None)
        rho = p.reset_by
        by = threshold if rho is None else b.scalar(float(rho)) if np.ndim(rho) == 0 else \
            b.const(np.asarray(rho, dtype=np.float64).reshape(-1), f"{hint}_reset_by")
        v_next = b.op("Sub", [h, b.op("Mul", [s, by], f"{hint}_sth")], f"{hint}_vn")
    else:                   # hard: s * vr + (1 - s) * h
        keep = b.op("Mul", [b.op("Sub", [b.scalar(1.0), s], f"{hint}_ns"), h], f"{hint}_kh")
        v_next = b.op("Add", [b.op("Mul", [s, b.scalar(p.v_reset)], f"{hint}_svr"), keep], f"{hint}_vn")
    return s, v_next


def _threshold(b: Builder, pop: Population) -> str:
    th = pop.params.v_threshold
    if np.ndim(th) == 0:
        return b.scalar(float(th))
    return b.const(np.broadcast_to(np.asarray(th, dtype=np.float64).reshape(-1), (pop.size,)), f"{pop.name}_th")


ONNX_STEP = PopulationRegistry("ONNX time step")   # (emitter, population, outputs, metadata) → emits its step


@ONNX_STEP.register(NeuronPopulation, OrPopulation)
def _neurons(em: NetworkEmitter, pop: NeuronPopulation, outputs: list, pops: list[dict]) -> None:
    b = em.b
    check_supported(pop)
    io = em.net.label(pop.name)
    v = b.add_input(f"{io}.v", (pop.size,))
    s, v_next = neuron_step(b, v, em.drive(pop.name, pop.bias), pop.params, pop.name, _threshold(b, pop))
    em.kept[pop.name] = s
    outputs += [(s, f"{io}.spikes", pop.size), (v_next, f"{io}.v_next", pop.size)]
    pops.append({"name": pop.name, "layer": io, "kind": pop.kind, "size": pop.size, "shape": list(pop.shape),
                 "state": f"{io}.v", "v_init": pop.params.v_init, "spikes": f"{io}.spikes",
                 "next_state": f"{io}.v_next",
                 "kept": None if pop.index is None else [int(i) for i in pop.index]})


@ONNX_STEP.register(HostPopulation)
def _host(em: NetworkEmitter, pop: HostPopulation, outputs: list, pops: list[dict]) -> None:
    raise SnnCompileError(host_refusal(pop, "the ONNX time-step emission"),
                          "the reference simulator (--target energy) runs host partitions exactly", EXIT_UNSUPPORTED)


@ONNX_STEP.register(ProductPopulation)
def _product(em: NetworkEmitter, pop: ProductPopulation, outputs: list, pops: list[dict]) -> None:
    em.kept[pop.name] = em.product(pop)
    io = em.net.label(pop.name)
    outputs.append((em.kept[pop.name], f"{io}.values", pop.size))
    pops.append({"name": pop.name, "layer": io, "kind": pop.kind, "size": pop.size, "shape": list(pop.shape),
                 "values": f"{io}.values"})


@ONNX_STEP.register(InputPopulation, DelayPopulation)
def _outside_the_order(em: NetworkEmitter, pop: Population, outputs: list, pops: list[dict]) -> None:
    """The input is the model's input; a delay sends first and absorbs last (build_step's own loops)."""


def build_step(net: Netlist, dtype: str = "float64") -> onnx.ModelProto:
    """The ONNX model of one time step of ``net`` (see the module docstring)."""
    b = Builder(dtype)
    em = NetworkEmitter(b, net)
    pops, outputs = [], []
    lines = {}
    for pop in net.delays:   # they send first: a loop's delay is read before its source steps
        longest, io = int(np.max(pop.steps)), net.label(pop.name)
        line = b.add_input(f"{io}.line", (longest * pop.size,))
        lines[pop.name] = line
        # the drive of step t − k is block longest − k of the line (oldest first)
        where = (longest - np.broadcast_to(np.asarray(pop.steps), (pop.size,))) * pop.size + np.arange(pop.size)
        em.kept[pop.name] = b.op("Gather", [line, b.ints(where, f"{pop.name}_due")], f"{pop.name}_oldest", axis=1)
        outputs.append((em.kept[pop.name], f"{io}.values", pop.size))
        pops.append({"name": pop.name, "layer": io, "kind": pop.kind, "size": pop.size, "shape": list(pop.shape),
                     "steps": np.asarray(pop.steps).tolist(), "state": f"{io}.line",
                     "state_size": longest * pop.size, "v_init": 0.0, "values": f"{io}.values",
                     "next_state": f"{io}.line_next"})
    for pop in order(net):
        ONNX_STEP(pop)(em, pop, outputs, pops)
    for pop in net.delays:   # this step's drive joins the line
        longest = int(np.max(pop.steps))
        rest = b.op("Slice", [lines[pop.name], b.ints([pop.size], f"{pop.name}_s1"),
                              b.ints([longest * pop.size], f"{pop.name}_e1"), b.ints([1], f"{pop.name}_ax1")],
                    f"{pop.name}_rest")
        line_next = b.op("Concat", [rest, em.drive(pop.name, pop.bias)], f"{pop.name}_line_next", axis=1)
        outputs.append((line_next, f"{net.label(pop.name)}.line_next", longest * pop.size))
    readout = em.readout()
    for value, name, size in outputs:
        b.add_output(value, name, (size,))
    b.add_output(readout, READOUT, tuple(net.output_shape))
    meta = {"format": FORMAT, "dtype": dtype, "input": INPUT, "input_shape": list(em.input_shape),
            "readout": READOUT, "readout_kind": net.output_kind.value, "output_population": net.output_pop,
            "populations": pops}
    doc = ("One time step of a spiking network compiled by snncompile. Feed x[t] and every "
           "population's state (start: v_init in the metadata), read spikes and the new state; "
           "loop over t for a whole inference.")
    return b.model("snn_step", doc, {"snncompile": json.dumps(meta)})
