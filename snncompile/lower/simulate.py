"""Step a NetworkPlan in numpy, batched and without pipelining.

A check of the lowering that needs no Lava: populations update in depth order each step,
each reading its sources' spikes of the same logical step. Returns the same layout as
the Lava backend ({population: [T, N, size]}, and OUTPUT values).
"""

from __future__ import annotations

import numpy as np

from snncompile.lower.populations import OUTPUT, NetworkPlan
from snncompile.sim import neuron_math


def simulate_plan(plan: NetworkPlan, x: np.ndarray) -> dict[str, np.ndarray]:
    T, N = x.shape[:2]
    order = sorted(plan.populations.values(), key=lambda p: p.depth)
    cur: dict[str, np.ndarray] = {}
    v = {p.name: np.full((N, p.size), p.params.v_init) for p in order if p.params is not None}
    out = {p.name: np.zeros((T, N, p.size)) for p in order if p.kind != "input"}
    if plan.output_kind == "values":
        out[OUTPUT] = np.zeros((T, N, int(np.prod(plan.output_shape))))
    flat = np.asarray(x, dtype=np.float64).reshape(T, N, -1)
    for t in range(T):
        for p in order:
            if p.kind == "input":
                cur[p.name] = flat[t]
                continue
            if p.kind == "matmul":
                a, b = (gather(plan, o, cur).reshape(N, *o.shape) for o in p.operands)
                cur[p.name] = (np.matmul(a, b) if p.product == "matmul" else a * b).reshape(N, -1)
                out[p.name][t] = cur[p.name]
                continue
            a = np.zeros((N, p.size))
            for proj in plan.into(p.name):
                a = a + (proj.weights @ cur[proj.src].T).T
            s, v[p.name] = neuron_math.step(v[p.name], a + p.bias, p.params)
            cur[p.name] = s
            out[p.name][t] = s
        if plan.output_kind == "values":
            acc = np.zeros((N, out[OUTPUT].shape[2]))
            for proj in plan.into(OUTPUT):
                acc = acc + (proj.weights @ cur[proj.src].T).T
            out[OUTPUT][t] = acc + plan.output_bias
    return out


def gather(plan: NetworkPlan, operand, cur: dict[str, np.ndarray]) -> np.ndarray:
    """Operand values [N, elements] from the source's kept neurons (removed ones are 0)."""
    src = plan.populations[operand.src]
    full = src.expand(cur[operand.src])
    return full[:, operand.idx] * operand.scale if operand.scale != 1.0 else full[:, operand.idx]
