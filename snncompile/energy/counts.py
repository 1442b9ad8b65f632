"""Exact operation counts per synaptic layer, from the IR (and spikes, for SOPs).

Conventions (see docs/energy.md):
- ``synapses``: (pre, post) pairs joined by a nonzero weight; convolutions count over
  output positions with padding excluded. ``synapses_dense``: the same with every weight
  nonzero.
- ``macs``: multiply-accumulates of the ANN with the same topology for one forward pass
  (conv: Cout·Hout·Wout·Cin/groups·k², padding included, as published MAC tables count).
- ``sops``: Σ over time steps and input spikes of that input's nonzero fan-out, per sample.
  An input that is a sum of spikes (residual add) of value n counts n times.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from snncompile.ir import Add, Conv2d, IRGraph, Linear, Neuron, Pool2d, Reshape


@dataclass
class LayerCount:
    name: str
    op: str
    in_shape: tuple[int, ...]
    out_shape: tuple[int, ...]
    synapses: int
    synapses_dense: int
    macs: int
    input_spiking: bool
    firing_rate_in: float | None = None   # mean input spikes per input neuron per step
    sops: float | None = None             # per sample, over all steps (spiking input)
    snn_macs: float | None = None         # per sample, over all steps (real-valued input)


def _valid_counts(n_in: int, n_out: int, k: int, s: int, p: int, d: int) -> np.ndarray:
    """For each kernel tap, the number of output positions where it lands inside the input."""
    o = np.arange(n_out)[None, :] * s - p + np.arange(k)[:, None] * d
    return ((o >= 0) & (o < n_in)).sum(axis=1)


def conv_counts(node: Conv2d, in_shape: tuple[int, ...]) -> tuple[int, int, int]:
    """(synapses, synapses_dense, macs) of a Conv2d node."""
    _, h, w = in_shape
    cout, cin_g, kh, kw = node.weight.shape
    _, ho, wo = node.shape
    vy = _valid_counts(h, ho, kh, node.stride[0], node.padding[0], node.dilation[0])
    vx = _valid_counts(w, wo, kw, node.stride[1], node.padding[1], node.dilation[1])
    per_tap = np.outer(vy, vx)
    taps = node.mask.sum(axis=(0, 1))
    synapses = int((taps * per_tap).sum())
    dense = int(cout * cin_g * per_tap.sum())
    macs = int(cout * ho * wo * cin_g * kh * kw)
    return synapses, dense, macs


def linear_counts(node: Linear) -> tuple[int, int, int]:
    lead = node.size // node.weight.shape[0]
    nnz = int(node.mask.sum())
    dense = int(node.weight.size)
    return lead * nnz, lead * dense, lead * dense


def fan_out(node: Conv2d | Linear, in_shape: tuple[int, ...]) -> np.ndarray:
    """Nonzero fan-out of every input element, shape ``in_shape``."""
    if isinstance(node, Linear):
        per = node.mask.sum(axis=0).astype(np.float64)
        return np.broadcast_to(per, in_shape).copy()
    cin, h, w = in_shape
    _, ho, wo = node.shape
    k = node.mask.astype(np.float64)
    out_pad = []
    for n, no, kk, s, p, d in ((h, ho, k.shape[2], node.stride[0], node.padding[0], node.dilation[0]),
                               (w, wo, k.shape[3], node.stride[1], node.padding[1], node.dilation[1])):
        out_pad.append(n - ((no - 1) * s - 2 * p + d * (kk - 1) + 1))
    ones = torch.ones((1, node.shape[0], ho, wo), dtype=torch.float64)
    res = F.conv_transpose2d(ones, torch.as_tensor(k), None, node.stride, node.padding,
                             tuple(out_pad), node.groups, node.dilation)
    return res[0].numpy()


def spike_valued(graph: IRGraph, name: str) -> bool:
    """True if ``name``'s values are spikes or sums of spikes (known from the graph)."""
    node = graph.node(name)
    if isinstance(node, Neuron):
        return True
    if isinstance(node, Reshape) or (isinstance(node, Pool2d) and node.mode == "max"):
        return spike_valued(graph, graph.inputs(name)[0])
    if isinstance(node, Add):
        return all(spike_valued(graph, s) for s in graph.inputs(name))
    return False


def static_counts(graph: IRGraph) -> list[LayerCount]:
    rows = []
    for name, node in graph.items():
        if not isinstance(node, (Conv2d, Linear)):
            continue
        src = graph.inputs(name)[0]
        in_shape = graph.node(src).shape
        syn, dense, macs = conv_counts(node, in_shape) if isinstance(node, Conv2d) else linear_counts(node)
        rows.append(LayerCount(name, node.op, in_shape, node.shape, syn, dense, macs,
                               spike_valued(graph, src)))
    return rows


def dynamic_counts(graph: IRGraph, rows: list[LayerCount], values: dict[str, np.ndarray]) -> None:
    """Fill SOPs / SNN MACs from simulated values ({node: [T, B, *shape]}), per sample."""
    for row in rows:
        src = graph.inputs(row.name)[0]
        v = values[src]
        T, B = v.shape[:2]
        if row.input_spiking:
            fo = fan_out(graph.node(row.name), row.in_shape)
            row.sops = float(np.tensordot(v.reshape(T, B, -1), fo.reshape(-1), axes=([2], [0])).sum() / B)
            row.firing_rate_in = float(v.mean())
        else:
            row.snn_macs = float(row.macs * T)
