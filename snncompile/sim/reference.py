"""Reference simulator: runs the IR over T steps, batched, in float64 torch.

It is the oracle every backend is checked against. Each node computes what its entry in
:data:`snncompile.ir.semantics.STEP` says: stateless nodes on all time steps at once,
neuron populations stepping through time.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from snncompile.ir import Input, IRGraph, Neuron, Output
from snncompile.ir.semantics import STEP


@dataclass
class SimResult:
    spikes: dict[str, np.ndarray] = field(default_factory=dict)  # neuron → [T, B, *shape] uint8 (float64
    #                                                               membrane of a non-spiking neuron)
    output: np.ndarray | None = None                               # [T, B, *out] float64
    values: dict[str, np.ndarray] = field(default_factory=dict)   # every node, if asked


def simulate(graph: IRGraph, x: np.ndarray, keep_values: bool = False) -> SimResult:
    """Run ``graph`` on ``x`` of shape [T, B, *input_shape]; return spikes and output."""
    x = np.array(x, dtype=np.float64)  # a private, writable copy (inputs may be broadcast views)
    T, B = x.shape[:2]
    vals: dict[str, torch.Tensor] = {}   # node → [T*B, *shape]
    res = SimResult()
    with torch.no_grad():
        for name, node in graph.items_releasing(vals):  # big activations at 224 px
            srcs = graph.inputs(name)
            ins = [torch.as_tensor(x).reshape(T * B, *node.shape)] if isinstance(node, Input) \
                else [vals[s] for s in srcs]
            out = STEP(node)(node, ins, T)
            if tuple(out.shape[1:]) != tuple(node.shape):
                raise ValueError(f"{name}: produced shape {tuple(out.shape[1:])}, IR says {node.shape}")
            if isinstance(node, Neuron):
                out_t = out.reshape(T, B, *node.shape)
                res.spikes[name] = (out_t.to(torch.uint8) if node.emits_spikes else out_t).numpy()
            elif isinstance(node, Output):
                res.output = out.reshape(T, B, *node.shape).numpy().copy()
            vals[name] = out
            if keep_values:
                res.values[name] = out.reshape(T, B, *node.shape).numpy()
    return res
