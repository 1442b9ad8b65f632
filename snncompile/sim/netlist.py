"""Run a float netlist in torch, batched, population by population.

A check of the lowering that needs no Lava: in a feed-forward netlist each population
(in depth order) reads its sources' whole [T, N, ·] outputs through its projections'
chains (nothing unrolled) and steps through time. A netlist with delay populations
(recurrent loops) is stepped one time step at a time instead: delays emit first, the other
populations follow in order, delays absorb last. Returns the same layout as the Lava
backend ({population: [T, N, size]}, and OUTPUT values).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from snncompile.errors import EXIT_UNSUPPORTED, SnnCompileError
from snncompile.ir import dynamics
from snncompile.ir.host import host_apply
from snncompile.netlist import (
    OUTPUT,
    WINDOW_HINT,
    DelayPopulation,
    HostPopulation,
    InputPopulation,
    Netlist,
    NeuronPopulation,
    OrPopulation,
    OutputKind,
    PopulationRegistry,
    ProductPopulation,
    window_refusal,
)
from snncompile.sim.kernels import step_order


def _drive(net: Netlist, dst: str, full: dict[str, torch.Tensor], rows: int, size: int) -> torch.Tensor:
    acc = torch.zeros((rows, size), dtype=torch.float64)
    for proj in net.into(dst):
        y = proj.apply(full[proj.src])
        acc += y if proj.rows is None else y[:, torch.as_tensor(proj.rows)]
    return acc


WHOLE = PopulationRegistry("reference simulation, all steps")   # feed-forward: [T·N, size] at once
ONE_STEP = PopulationRegistry("reference simulation, one step")  # with delays: [N, size] of step t


@WHOLE.register(NeuronPopulation, OrPopulation)
def _neurons(net: Netlist, p: NeuronPopulation, full: dict[str, torch.Tensor], T: int, N: int) -> torch.Tensor:
    drive = (_drive(net, p.name, full, T * N, p.size) + torch.as_tensor(p.bias)).reshape(T, N, -1)
    params = _params(p)
    v = dynamics.initial_state(params, torch.full((N, p.size), p.params.v_init, dtype=torch.float64))
    s = torch.empty_like(drive)
    for t in range(T):
        s[t], v = dynamics.step(v, drive[t], params)
    return s.reshape(T * N, -1)


@WHOLE.register(ProductPopulation)
def _products(net: Netlist, p: ProductPopulation, full: dict[str, torch.Tensor], T: int, N: int) -> torch.Tensor:
    return _product(net, p, full, T * N)


@WHOLE.register(HostPopulation)
def _hosts(net: Netlist, p: HostPopulation, full: dict[str, torch.Tensor], T: int, N: int) -> torch.Tensor:
    return host_values(net, p, full, T * N, steps=T)


def host_values(net: Netlist, p: HostPopulation, full: dict[str, torch.Tensor], rows: int,
                steps: int | None = None) -> torch.Tensor:
    """A host partition's outputs [rows, size]: ``fn`` on its drive or its gathered operands
    (rows = ``steps`` × samples, time-major, for a window host: it reads every step)."""
    if p.driven:
        ins = [(_drive(net, p.name, full, rows, int(np.prod(p.in_shape))) + torch.as_tensor(p.bias)
                ).reshape(rows, *p.in_shape)]
    else:
        ins = [gather(net, o, full).reshape(rows, *o.shape) for o in p.operands]
    return host_apply(p.fn, ins, tuple(p.shape), steps=steps).reshape(rows, -1)


@WHOLE.register(InputPopulation, DelayPopulation)
def _not_whole(net: Netlist, p, full: dict[str, torch.Tensor], T: int, N: int) -> torch.Tensor:
    raise ValueError(f"`{p.name}` ({p.kind}) is not run over all steps at once")   # input given; delays: _stepped


def _product(net: Netlist, p: ProductPopulation, full: dict[str, torch.Tensor], rows: int) -> torch.Tensor:
    a, b = (gather(net, o, full).reshape(rows, *o.shape) for o in p.operands)
    return (torch.matmul(a, b) if p.product == "matmul" else a * b).reshape(rows, -1)


def simulate_netlist(net: Netlist, x: np.ndarray) -> dict[str, np.ndarray]:
    if net.delays:
        return _stepped(net, x)
    T, N = x.shape[:2]
    source = net.source
    # population → logical outputs [T·N, logical size]
    full: dict[str, torch.Tensor] = {source.name: torch.as_tensor(np.asarray(x, dtype=np.float64).reshape(T * N, -1))}
    out: dict[str, np.ndarray] = {}
    with torch.no_grad():
        for p in sorted(net.populations.values(), key=lambda p: p.depth):
            if p is source:
                continue
            s = WHOLE(p)(net, p, full, T, N)
            out[p.name] = s.reshape(T, N, -1).numpy()
            full[p.name] = torch.as_tensor(p.expand(s.numpy()))
        if net.output_kind is OutputKind.VALUES:
            y = _drive(net, OUTPUT, full, T * N, int(np.prod(net.output_shape))) + torch.as_tensor(net.output_bias)
            out[OUTPUT] = y.reshape(T, N, -1).numpy()
    return out


@dataclass
class _Run:
    """The state of a stepped run: step ``t``, this step's logical outputs ``full``, neuron
    states and the delays' lines of past drives."""

    net: Netlist
    N: int
    t: int = 0
    full: dict[str, torch.Tensor] = field(default_factory=dict)
    state: dict[str, object] = field(default_factory=dict)
    lines: dict[str, torch.Tensor] = field(default_factory=dict)


@ONE_STEP.register(NeuronPopulation, OrPopulation)
def _neuron_step(run: _Run, p: NeuronPopulation) -> torch.Tensor:
    drive = _drive(run.net, p.name, run.full, run.N, p.size) + torch.as_tensor(p.bias)
    params = _params(p)
    if p.name not in run.state:
        run.state[p.name] = dynamics.initial_state(
            params, torch.full((run.N, p.size), p.params.v_init, dtype=torch.float64))
    s, run.state[p.name] = dynamics.step(run.state[p.name], drive, params)
    return s


@ONE_STEP.register(ProductPopulation)
def _product_step(run: _Run, p: ProductPopulation) -> torch.Tensor:
    return _product(run.net, p, run.full, run.N)


@ONE_STEP.register(HostPopulation)
def _host_step(run: _Run, p: HostPopulation) -> torch.Tensor:
    if p.fn.window:
        raise SnnCompileError(window_refusal(p, "the stepped netlist simulation (a netlist with delays)"), WINDOW_HINT,
                              EXIT_UNSUPPORTED)
    return host_values(run.net, p, run.full, run.N)


@ONE_STEP.register(DelayPopulation)
def _delay_step(run: _Run, p: DelayPopulation) -> torch.Tensor:
    line = run.lines[p.name]   # the drive of step t − k sits in slot (t − k) mod max k
    slot = torch.as_tensor((run.t - np.asarray(p.steps)) % len(line))
    return line[slot].clone() if slot.dim() == 0 else \
        line[slot, :, torch.arange(p.size)].T.contiguous()   # not a view: the slot is rewritten


@ONE_STEP.register(InputPopulation)
def _input_step(run: _Run, p: InputPopulation) -> torch.Tensor:
    raise ValueError(f"`{p.name}` is the input: its values are given, not stepped")


def _stepped(net: Netlist, x: np.ndarray) -> dict[str, np.ndarray]:
    """One time step at a time (for netlists with delay populations)."""
    T, N = x.shape[:2]
    order = step_order(net)
    x = torch.as_tensor(np.asarray(x, dtype=np.float64).reshape(T, N, -1))
    source = net.source.name
    run = _Run(net, N, lines={p.name: torch.zeros((int(np.max(p.steps)), N, p.size), dtype=torch.float64)
                              for p in net.delays})
    rec: dict[str, list[torch.Tensor]] = {n: [] for n in order}
    with torch.no_grad():
        for t in range(T):
            run.t, run.full = t, {source: x[t]}
            for name in order:
                if name == OUTPUT:
                    y = _drive(net, OUTPUT, run.full, N, int(np.prod(net.output_shape))) + torch.as_tensor(net.output_bias)
                    rec[name].append(y)
                    continue
                p = net.populations[name]
                s = ONE_STEP(p)(run, p)
                rec[name].append(s)
                run.full[name] = torch.as_tensor(p.expand(s.numpy()))
            for p in net.delays:   # this step's drive, sent ``steps`` steps from now
                run.lines[p.name][t % len(run.lines[p.name])] = \
                    _drive(net, p.name, run.full, N, p.size) + torch.as_tensor(p.bias)
    return {n: torch.stack(v).numpy() for n, v in rec.items() if n != OUTPUT or net.output_kind is OutputKind.VALUES}


def _params(p) -> dynamics.Dynamics:
    """Per-neuron thresholds and soft-reset amounts as tensors (they broadcast over the batch)."""
    arrays = {k: torch.as_tensor(v) for k in ("v_threshold", "reset_by")
              if isinstance(v := getattr(p.params, k, None), np.ndarray)}
    return p.params.with_params(**arrays) if arrays else p.params


def gather(net: Netlist, operand, full: dict[str, torch.Tensor]) -> torch.Tensor:
    """Operand values [rows, elements] from the source's logical outputs (removed ones are 0)."""
    vals = full[operand.src][:, torch.as_tensor(operand.idx)]
    return vals * operand.scale if operand.scale != 1.0 else vals


simulate_netlist = simulate_netlist  # the name earlier releases used
