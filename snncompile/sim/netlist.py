"""Run a float netlist in torch, batched, population by population.

A check of the lowering that needs no Lava: in a feed-forward netlist each population
(in depth order) reads its sources' whole [T, N, ·] outputs through its projections'
chains (nothing unrolled) and steps through time. A netlist with delay populations
(recurrent loops) is stepped one time step at a time instead: delays emit first, the other
populations follow in order, delays absorb last. Returns the same layout as the Lava
backend ({population: [T, N, size]}, and OUTPUT values).
"""

from __future__ import annotations

import numpy as np
import torch

from snncompile.ir import dynamics
from snncompile.netlist import OUTPUT, Netlist
from snncompile.sim.kernels import step_order


def _drive(net: Netlist, dst: str, full: dict[str, torch.Tensor], rows: int, size: int) -> torch.Tensor:
    acc = torch.zeros((rows, size), dtype=torch.float64)
    for proj in net.into(dst):
        y = proj.apply(full[proj.src])
        acc += y if proj.rows is None else y[:, torch.as_tensor(proj.rows)]
    return acc


def simulate_netlist(net: Netlist, x: np.ndarray) -> dict[str, np.ndarray]:
    if net.delays:
        return _stepped(net, x)
    T, N = x.shape[:2]
    full: dict[str, torch.Tensor] = {}  # population → logical outputs [T·N, logical size]
    out: dict[str, np.ndarray] = {}
    with torch.no_grad():
        for p in sorted(net.populations.values(), key=lambda p: p.depth):
            if p.kind == "input":
                full[p.name] = torch.as_tensor(np.asarray(x, dtype=np.float64).reshape(T * N, -1))
                continue
            if p.kind == "matmul":
                a, b = (gather(net, o, full).reshape(T * N, *o.shape) for o in p.operands)
                s = (torch.matmul(a, b) if p.product == "matmul" else a * b).reshape(T * N, -1)
            else:
                drive = (_drive(net, p.name, full, T * N, p.size) + torch.as_tensor(p.bias)).reshape(T, N, -1)
                params = _params(p)
                v = dynamics.initial_state(params, torch.full((N, p.size), p.params.v_init, dtype=torch.float64))
                s = torch.empty_like(drive)
                for t in range(T):
                    s[t], v = dynamics.step(v, drive[t], params)
                s = s.reshape(T * N, -1)
            out[p.name] = s.reshape(T, N, -1).numpy()
            full[p.name] = torch.as_tensor(p.expand(s.numpy()))
        if net.output_kind == "values":
            y = _drive(net, OUTPUT, full, T * N, int(np.prod(net.output_shape))) + torch.as_tensor(net.output_bias)
            out[OUTPUT] = y.reshape(T, N, -1).numpy()
    return out


def _stepped(net: Netlist, x: np.ndarray) -> dict[str, np.ndarray]:
    """One time step at a time (for netlists with delay populations)."""
    T, N = x.shape[:2]
    order = step_order(net)
    x = torch.as_tensor(np.asarray(x, dtype=np.float64).reshape(T, N, -1))
    source = next(p.name for p in net.populations.values() if p.kind == "input")
    state: dict[str, torch.Tensor] = {}
    lines = {p.name: torch.zeros((int(np.max(p.steps)), N, p.size), dtype=torch.float64) for p in net.delays}
    rec: dict[str, list[torch.Tensor]] = {n: [] for n in order}
    with torch.no_grad():
        for t in range(T):
            full = {source: x[t]}
            for name in order:
                if name == OUTPUT:
                    y = _drive(net, OUTPUT, full, N, int(np.prod(net.output_shape))) + torch.as_tensor(net.output_bias)
                    rec[name].append(y)
                    continue
                p = net.populations[name]
                if p.kind == "delay":   # the drive of step t − k sits in slot (t − k) mod max k
                    slot = torch.as_tensor((t - np.asarray(p.steps)) % len(lines[name]))
                    s = lines[name][slot].clone() if slot.dim() == 0 else \
                        lines[name][slot, :, torch.arange(p.size)].T.contiguous()   # not a view: the slot is rewritten
                elif p.kind == "matmul":
                    a, b = (gather(net, o, full).reshape(N, *o.shape) for o in p.operands)
                    s = (torch.matmul(a, b) if p.product == "matmul" else a * b).reshape(N, -1)
                else:
                    drive = _drive(net, name, full, N, p.size) + torch.as_tensor(p.bias)
                    params = _params(p)
                    if name not in state:
                        state[name] = dynamics.initial_state(
                            params, torch.full((N, p.size), p.params.v_init, dtype=torch.float64))
                    s, state[name] = dynamics.step(state[name], drive, params)
                rec[name].append(s)
                full[name] = torch.as_tensor(p.expand(s.numpy()))
            for p in net.delays:   # this step's drive, sent ``steps`` steps from now
                lines[p.name][t % len(lines[p.name])] = _drive(net, p.name, full, N, p.size) + torch.as_tensor(p.bias)
    return {n: torch.stack(v).numpy() for n, v in rec.items() if n != OUTPUT or net.output_kind == "values"}


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
