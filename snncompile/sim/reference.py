"""Reference simulator: runs the IR over T steps, batched, in float64 torch.

It is the oracle every backend is checked against. Stateless nodes run on all time
steps at once; neuron populations step through time with ``neuron_math.step``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from snncompile.ir import (
    Add,
    BatchNorm,
    Conv2d,
    Input,
    IRGraph,
    Linear,
    Mask,
    MatMul,
    Neuron,
    Output,
    Pool2d,
    Reduce,
    Reshape,
    Scale,
    Transpose,
)
from snncompile.sim import neuron_math


@dataclass
class SimResult:
    spikes: dict[str, np.ndarray] = field(default_factory=dict)  # neuron → [T, B, *shape] uint8
    output: np.ndarray | None = None                               # [T, B, *out] float64
    values: dict[str, np.ndarray] = field(default_factory=dict)   # every node, if asked


def neuron_params(node: Neuron, like: torch.Tensor | None = None) -> neuron_math.NeuronParams:
    th = node.v_threshold
    if isinstance(th, np.ndarray) and like is not None:
        th = torch.as_tensor(th, dtype=like.dtype)
    return neuron_math.NeuronParams(model=node.model, v_threshold=th, v_reset=node.v_reset,
                                    tau=node.tau, decay=node.decay, decay_input=node.decay_input)


def _t(a: np.ndarray | None) -> torch.Tensor | None:
    return None if a is None else torch.as_tensor(np.asarray(a, dtype=np.float64))


def simulate(graph: IRGraph, x: np.ndarray, keep_values: bool = False) -> SimResult:
    """Run ``graph`` on ``x`` of shape [T, B, *input_shape]; return spikes and output."""
    x = np.array(x, dtype=np.float64)  # a private, writable copy (inputs may be broadcast views)
    T, B = x.shape[:2]
    vals: dict[str, torch.Tensor] = {}   # node → [T*B, *shape]
    res = SimResult()
    with torch.no_grad():
        for name, node in graph.items():
            ins = [vals[s] for s in graph.inputs(name)]
            if isinstance(node, Input):
                out = torch.as_tensor(x).reshape(T * B, *node.shape)
            elif isinstance(node, Conv2d):
                out = F.conv2d(ins[0], _t(node.effective_weight), _t(node.bias), node.stride,
                               node.padding, node.dilation, node.groups)
            elif isinstance(node, Linear):
                out = F.linear(ins[0], _t(node.effective_weight), _t(node.bias))
            elif isinstance(node, BatchNorm):
                out = F.batch_norm(ins[0], _t(node.mean), _t(node.var), _t(node.weight),
                                   _t(node.bias), False, 0.0, node.eps)
            elif isinstance(node, Pool2d):
                if node.mode == "max":
                    out = F.max_pool2d(ins[0], node.kernel, node.stride, node.padding)
                else:
                    out = F.avg_pool2d(ins[0], node.kernel, node.stride, node.padding,
                                       count_include_pad=node.count_include_pad)
            elif isinstance(node, Reshape):
                out = ins[0].reshape(T * B, *node.shape)
            elif isinstance(node, Add):
                out = ins[0] + ins[1]
            elif isinstance(node, Transpose):
                out = ins[0].permute(0, *(a + 1 for a in node.perm))
            elif isinstance(node, Scale):
                out = ins[0] * node.factor
            elif isinstance(node, Reduce):
                fn = torch.mean if node.mode == "mean" else torch.sum
                out = fn(ins[0], node.axis + 1, keepdim=node.keepdim)
            elif isinstance(node, MatMul):
                out = torch.matmul(ins[0], ins[1]) if node.mode == "matmul" else ins[0] * ins[1]
            elif isinstance(node, Mask):
                out = ins[0] * torch.as_tensor(node.keep.astype(np.float64))
            elif isinstance(node, Neuron):
                xin = ins[0].reshape(T, B, *node.shape)
                p = neuron_params(node, xin)
                v = torch.full_like(xin[0], p.v_init)
                spikes = torch.empty_like(xin)
                for t in range(T):
                    spikes[t], v = neuron_math.step(v, xin[t], p)
                if node.alive is not None:  # removed neurons do not exist in the compiled net
                    spikes *= torch.as_tensor(node.alive.astype(np.float64))
                res.spikes[name] = spikes.to(torch.uint8).numpy()
                out = spikes.reshape(T * B, *node.shape)
            elif isinstance(node, Output):
                out = ins[0]
                res.output = out.reshape(T, B, *node.shape).numpy().copy()
            else:  # pragma: no cover - every IR type is handled above
                raise TypeError(f"reference simulator cannot run {node.op}")
            if tuple(out.shape[1:]) != tuple(node.shape):
                raise ValueError(f"{name}: produced shape {tuple(out.shape[1:])}, IR says {node.shape}")
            vals[name] = out
            if keep_values:
                res.values[name] = out.reshape(T, B, *node.shape).numpy()
    return res
