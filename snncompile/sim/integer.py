"""Integer reference simulator: predicts Lava's fixed_pt run bit for bit, without Lava.

Steps a quantized Netlist (see ``snncompile.fixedpoint.quantize``) in the same integer
arithmetic as Lava's bit-accurate Sparse/Dense models (integer weight mantissas, sum,
then ``<< weight_exp`` or an arithmetic ``>> -weight_exp``) and the SJNeuron fixed_pt model
(``neuron_int.step``). Populations update in depth order on logically aligned steps.
"""

from __future__ import annotations

import numpy as np

from snncompile.fixedpoint import neuron_int
from snncompile.netlist import OUTPUT, Netlist


def quantize_input(plan: Netlist, x: np.ndarray) -> np.ndarray:
    return np.round(np.asarray(x, dtype=np.float64) * plan.input_scale).astype(np.int64)


def _shift(acc: np.ndarray, exp: int) -> np.ndarray:
    return np.left_shift(acc, exp) if exp > 0 else np.right_shift(acc, -exp)


def _synaptic_input(plan: Netlist, dst: str, cur: dict[str, np.ndarray], n: int, size: int) -> np.ndarray:
    acc = np.zeros((n, size), dtype=np.int64)
    for proj in plan.into(dst):
        w = proj.weights.astype(np.int64)
        acc += _shift((w @ cur[proj.src].T).T.astype(np.int64), proj.weight_exp)
    return acc


def simulate_int(plan: Netlist, x: np.ndarray) -> dict[str, np.ndarray]:
    """x [T, N, ...] floats → {population: [T, N, size] int spikes or products}, and for a
    value readout ``OUTPUT``: [T, N, size] dequantized floats."""
    if not plan.fixed_point:
        raise ValueError("simulate_int needs a quantized plan (quantize_plan)")
    xq = quantize_input(plan, x)
    T, N = xq.shape[:2]
    flat = xq.reshape(T, N, -1)
    order = sorted(plan.populations.values(), key=lambda p: p.depth)
    v = {p.name: np.full((N, p.size), p.qparams.v_reset, dtype=np.int64) for p in order if p.qparams}
    out = {p.name: np.zeros((T, N, p.size), dtype=np.int64) for p in order if p.kind != "input"}
    if plan.output_kind == "values":
        out[OUTPUT] = np.zeros((T, N, int(np.prod(plan.output_shape))))
    cur: dict[str, np.ndarray] = {}
    for t in range(T):
        for p in order:
            if p.kind == "input":
                cur[p.name] = flat[t]
                continue
            if p.kind == "matmul":
                # integer factors: constant scales live in the quantized weights downstream
                a, b = (plan.populations[o.src].expand(cur[o.src])[:, o.idx].reshape(N, *o.shape)
                        for o in p.operands)
                cur[p.name] = (np.matmul(a, b) if p.product == "matmul" else a * b).reshape(N, -1)
            else:
                drive = _synaptic_input(plan, p.name, cur, N, p.size) + p.qbias
                cur[p.name], v[p.name] = neuron_int.step(v[p.name], drive, p.qparams)
            out[p.name][t] = cur[p.name]
        if plan.output_kind == "values":
            acc = _synaptic_input(plan, OUTPUT, cur, N, out[OUTPUT].shape[2]) + plan.output_qbias
            out[OUTPUT][t] = acc / plan.output_scale
    return out
