"""What each IR node computes, as torch functions on float64 tensors ``[N, *shape]``.

One entry per node type in :data:`STEP`. Every consumer that evaluates nodes uses these:
the reference simulator (``mode="affine"``), the netlist's projections (``"linear"``: the
bias-free part of an affine node, biases are folded into the target population) and the
structural analysis of :mod:`snncompile.ir.structure` (``"pattern"``: 1 per stored
synapse, ``"connect"``: 1 per stored nonzero synapse; non-negative, no biases), which
counts synapses and finds dead neurons without unrolling any layer.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from snncompile.ir.dynamics import Dynamics, initial_state, step
from snncompile.ir.host import host_apply
from snncompile.ir.nodes import (
    AdaptiveAvgPool2d,
    Add,
    BatchNorm,
    Concat,
    Conv2d,
    Delay,
    Host,
    Input,
    Linear,
    Mask,
    MatMul,
    Neuron,
    Output,
    Pool2d,
    Reduce,
    Reshape,
    Scale,
    Slice,
    Transpose,
)
from snncompile.ir.registry import Registry

MODES = ("affine", "linear", "pattern", "connect")
STEP = Registry("reference step")


def tensor(a: np.ndarray | None) -> torch.Tensor | None:
    if a is None:
        return None
    a = np.asarray(a, dtype=np.float64)
    # read-only arrays share memory with the source model: torch must not get write access
    return torch.as_tensor(a if a.flags.writeable else a.copy())


def neuron_params(node: Neuron, like: torch.Tensor | None = None) -> Dynamics:
    """The dynamics of a Neuron node with per-neuron thresholds and soft-reset amounts
    flattened for numpy (float64), or shaped like ``like`` for torch; scalars as floats."""
    def per_neuron(a):
        if isinstance(a, np.ndarray):
            return torch.as_tensor(a, dtype=like.dtype) if like is not None else np.asarray(a, np.float64).ravel()
        return None if a is None else float(a)

    d = node.dynamics
    changes = {k: per_neuron(getattr(d, k)) for k in ("v_threshold", "reset_by") if hasattr(d, k)}
    if all(v is getattr(d, k) for k, v in changes.items()):
        # nothing changes (floats stay the same objects, None stays None): the dynamics
        # themselves (frozen), not a rebuilt copy (~10 µs, once per population in a lowering)
        return d
    return d.with_params(**changes)


def _indicator(a: np.ndarray, like: torch.Tensor) -> torch.Tensor:
    """A 0/1 array in the dtype of ``like`` (structural sweeps may run in float32: their
    values are non-negative path counts, exact far beyond any fan-in)."""
    a = np.asarray(a, dtype=bool)
    return torch.from_numpy(a if a.flags.writeable else np.array(a)).to(like.dtype)


def _weights(node: Conv2d | Linear, mode: str, like: torch.Tensor) -> torch.Tensor:
    if mode == "pattern":
        return _indicator(node.mask, like)
    if mode == "connect":
        return _indicator(node.mask & (node.weight != 0), like)
    return tensor(node.effective_weight)


def _bias(node, mode: str) -> torch.Tensor | None:
    return tensor(node.bias) if mode == "affine" else None


@STEP.register(Input, Output, Reshape)
def _identity(node, ins, steps, mode="affine"):
    return ins[0].reshape(ins[0].shape[0], *node.shape)


def _on_zeros(node: Conv2d | Linear, x: torch.Tensor, mode: str, channel_axis: int) -> torch.Tensor | None:
    """The node's value on an all-zero input ``x`` without touching its weights: the bias
    (``affine``) or zeros, exactly what the sum gives. None if ``x`` has a nonzero. The
    constant-drive sweeps (lowering's biases, dead neurons) feed zeros out of every population."""
    if mode not in ("affine", "linear") or torch.any(x):
        return None
    out = x.new_zeros((x.shape[0], *node.shape))
    b = _bias(node, mode)
    if b is None:
        return out
    shape = [1] * out.dim()
    shape[channel_axis] = -1
    return out + b.to(x.dtype).reshape(shape)


def _all_ones(node: Conv2d | Linear, mode: str) -> bool:
    """True if the node's structural pattern is all ones: every synapse stored (and, for
    ``connect``, nonzero). Its map is then a window sum of the channel sum, weights unread."""
    if mode not in ("pattern", "connect") or not node.dense:
        return False
    return mode == "pattern" or bool(np.all(node.weight != 0))


def _conv_ones(node: Conv2d, x: torch.Tensor) -> torch.Tensor:
    """The all-ones conv: per group, the window sum of the sum over the group's input
    channels, the same for each of the group's output channels (the same integers)."""
    n, c = x.shape[:2]
    g, cout = node.groups, node.weight.shape[0]
    summed = x.reshape(n, g, c // g, *x.shape[2:]).sum(2)
    y = F.conv2d(summed, x.new_ones((g, 1, *node.weight.shape[2:])), None, node.stride, node.padding,
                 node.dilation, g)
    return y[:, :, None].expand(n, g, cout // g, *y.shape[2:]).reshape(n, cout, *y.shape[2:])


@STEP.register(Conv2d)
def _conv(node: Conv2d, ins, steps, mode="affine"):
    zero = _on_zeros(node, ins[0], mode, 1)
    if zero is not None:
        return zero
    if _all_ones(node, mode):
        return _conv_ones(node, ins[0])
    return F.conv2d(ins[0], _weights(node, mode, ins[0]), _bias(node, mode), node.stride, node.padding,
                    node.dilation, node.groups)


@STEP.register(Linear)
def _linear(node: Linear, ins, steps, mode="affine"):
    zero = _on_zeros(node, ins[0], mode, -1)
    if zero is not None:
        return zero
    if _all_ones(node, mode):   # every output sums the whole input row
        x = ins[0]
        return x.sum(-1, keepdim=True).expand(*x.shape[:-1], node.weight.shape[0]).contiguous()
    return F.linear(ins[0], _weights(node, mode, ins[0]), _bias(node, mode))


@STEP.register(BatchNorm)
def _batchnorm(node: BatchNorm, ins, steps, mode="affine"):
    scale, shift = node.scale_shift()
    shape = (1, -1) + (1,) * (ins[0].dim() - 2)
    if mode in ("pattern", "connect"):
        return ins[0] * _indicator(scale != 0, ins[0]).reshape(shape)
    if mode == "linear":
        shift = None
    out = ins[0] * tensor(scale).reshape(shape)
    return out if shift is None else out + tensor(shift).reshape(shape)


@STEP.register(Pool2d)
def _pool(node: Pool2d, ins, steps, mode="affine"):
    if node.mode == "avg" and mode in ("affine", "linear"):
        return F.avg_pool2d(ins[0], node.kernel, node.stride, node.padding,
                            count_include_pad=node.count_include_pad)
    if node.mode == "max" and mode == "affine":
        return F.max_pool2d(ins[0], node.kernel, node.stride, node.padding)
    # window sum: the structure of either pooling, and the drive of a max-pool's OR neurons
    # (zero padding adds nothing to a sum)
    return F.avg_pool2d(ins[0], node.kernel, node.stride, node.padding, count_include_pad=True,
                        divisor_override=1)


@STEP.register(Add)
def _add(node, ins, steps, mode="affine"):
    return ins[0] + ins[1]


@STEP.register(Transpose)
def _transpose(node: Transpose, ins, steps, mode="affine"):
    return ins[0].permute(0, *(a + 1 for a in node.perm))


@STEP.register(Scale)
def _scale(node: Scale, ins, steps, mode="affine"):
    if mode in ("pattern", "connect"):
        return ins[0]
    y = ins[0] * node.factor
    return y + node.offset if mode == "affine" and node.offset else y


@STEP.register(AdaptiveAvgPool2d)
def _adaptive(node: AdaptiveAvgPool2d, ins, steps, mode="affine"):
    a_h, a_w = node.matrices(tuple(ins[0].shape[1:]))
    if mode in ("pattern", "connect"):   # window membership
        a_h, a_w = (a_h > 0).astype(np.float64), (a_w > 0).astype(np.float64)
    a_h, a_w = (torch.as_tensor(a, dtype=ins[0].dtype) for a in (a_h, a_w))
    return a_h @ ins[0] @ a_w.T


@STEP.register(Slice)
def _slice(node: Slice, ins, steps, mode="affine"):
    return ins[0].narrow(node.axis + 1, node.start, node.stop - node.start)


@STEP.register(Concat)
def _concat(node: Concat, ins, steps, mode="affine"):
    if node.slot < 0:
        return torch.cat(ins, dim=node.axis + 1)
    x = ins[0]
    out = x.new_zeros((x.shape[0], *node.shape))
    start = sum(node.sizes[:node.slot])
    index = [slice(None)] * out.dim()
    index[node.axis + 1] = slice(start, start + node.sizes[node.slot])
    out[tuple(index)] = x
    return out


@STEP.register(Reduce)
def _reduce(node: Reduce, ins, steps, mode="affine"):
    fn = torch.mean if node.mode == "mean" and mode in ("affine", "linear") else torch.sum
    return fn(ins[0], node.axis + 1, keepdim=node.keepdim)


@STEP.register(MatMul)
def _matmul(node: MatMul, ins, steps, mode="affine"):
    a, b = ins
    return torch.matmul(a, b) if node.mode == "matmul" else a * b


@STEP.register(Host)
def _host(node: Host, ins, steps, mode="affine"):
    if mode != "affine":
        raise ValueError(f"a host operation ({node.fn.describe()}) is not linear: never inside a chain")
    n = ins[0].shape[0]
    return host_apply(node.fn, [x.reshape(n, *x.shape[1:]) for x in ins], tuple(node.shape), steps=steps)


@STEP.register(Mask)
def _mask(node: Mask, ins, steps, mode="affine"):
    return ins[0] * _indicator(node.keep, ins[0])


@STEP.register(Neuron)
def _neuron(node: Neuron, ins, steps, mode="affine"):
    """Steps the population through time; ``ins[0]`` is [steps·B, *shape], time-major.
    Returns spikes, or the membrane values of a non-spiking model."""
    x = ins[0].reshape(steps, -1, *node.shape)
    p = neuron_params(node, x)
    v = initial_state(p, torch.full_like(x[0], p.v_init))
    spikes = torch.empty_like(x)
    for t in range(steps):
        spikes[t], v = step(v, x[t], p)
    if node.alive is not None:  # removed neurons do not exist in the compiled network
        spikes *= torch.as_tensor(node.alive.astype(np.float64))
    return spikes.reshape(-1, *node.shape)


@STEP.register(Delay)
def _delay(node: Delay, ins, steps, mode="affine"):
    """The input shifted ``node.steps`` later in time (``ins[0]`` is [steps·B, *shape],
    time-major); zeros first. The structural modes see which element feeds which: the identity."""
    if mode != "affine":
        return ins[0]
    x = ins[0].reshape(steps, -1, node.size)
    y = torch.zeros_like(x)
    for k, where in delay_groups(node):
        if k < steps:
            y[k:, :, where] = x[: steps - k, :, where]
    return y.reshape(-1, *node.shape)


def delay_groups(node: Delay) -> list[tuple[int, torch.Tensor | slice]]:
    """(k, flat elements delayed by k) for each distinct delay k of ``node``."""
    if np.ndim(node.steps) == 0:
        return [(int(node.steps), slice(None))]
    flat = np.asarray(node.steps).ravel()
    return [(int(k), torch.as_tensor(np.flatnonzero(flat == k))) for k in np.unique(flat)]


def delayed_step(node: Delay, past, t: int, batch: int) -> torch.Tensor:
    """A Delay's output at step ``t`` from ``past(step)`` ([B, *shape] values of its input)."""
    y = torch.zeros((batch, node.size), dtype=torch.float64)
    for k, where in delay_groups(node):
        if t - k >= 0:
            y[:, where] = past(t - k).reshape(batch, -1)[:, where]
    return y.reshape(batch, *node.shape)
