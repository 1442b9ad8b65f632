"""What every handler shares: the module classes snncompile knows, the refusal messages,
and small conversions of torch values."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from snncompile.errors import EXIT_UNSUPPORTED, SnnCompileError
from snncompile.frontend.ops.registry import family_of
from snncompile.ir import AdaptiveAvgPool2d, Pool2d

try:  # spikingjelly is optional at import time: plain-torch models need none of it
    from spikingjelly.activation_based import layer as sj_layer
    from spikingjelly.activation_based import neuron as sj_neuron

    NEURON_TYPES: tuple[type, ...] = (sj_neuron.IFNode, sj_neuron.LIFNode,
                                      sj_neuron.ParametricLIFNode)
    SEQ_CONTAINERS: tuple[type, ...] = (sj_layer.SeqToANNContainer,)
    PASS_THROUGH: tuple[type, ...] = (nn.Dropout, nn.Identity, sj_layer.Dropout)
    VOTING: tuple[type, ...] = (sj_layer.VotingLayer,)
    SJ_PREFIX = "spikingjelly.activation_based"
except ImportError:  # pragma: no cover
    NEURON_TYPES, SEQ_CONTAINERS, VOTING, SJ_PREFIX = (), (), (), "\0"
    PASS_THROUGH = (nn.Dropout, nn.Identity)

try:  # snnTorch is optional: its neurons are recognised when it is installed
    import snntorch as _snntorch

    SNNTORCH_NEURON: tuple[type, ...] = (_snntorch.SpikingNeuron,)
    SNNTORCH_LEAKY: tuple[type, ...] = (_snntorch.Leaky,)
    SNNTORCH_RECURRENT: tuple[type, ...] = (_snntorch.RLeaky,)
except ImportError:  # pragma: no cover
    SNNTORCH_NEURON = SNNTORCH_LEAKY = SNNTORCH_RECURRENT = ()

SJ_LAYER_PREFIX = "spikingjelly.activation_based.layer"

SUPPORTED = (
    "neurons: spikingjelly IFNode, LIFNode, ParametricLIFNode (also legacy clock_driven names), snnTorch "
    "Leaky and Synaptic (where exact: docs/frontend.md), hand-written IF/LIF/PLIF (a stateful module or an "
    "inline membrane recurrence, verified on probe inputs); layers: Conv1d, Conv2d, Linear, BatchNorm1d/2d, MaxPool2d, AvgPool2d, "
    "AdaptiveAvgPool2d, Flatten, Dropout, Identity (torch.nn or spikingjelly layer.*), layer.VotingLayer, "
    "layer.SeqToANNContainer; any module of yours is traced through; operations: residual +/-, scalar "
    "affine (1 - x), spike products (matmul, *), cat/chunk/split/slicing, flatten/view/reshape/permute/"
    "transpose, mean/sum (over time at the output); see docs/frontend.md"
)


def is_neuron(m: nn.Module) -> bool:
    """A spiking neuron module of a registered family (``registry.neuron_family``: spikingjelly,
    snnTorch, hand-written): a leaf of the trace, compiled from its equations (or refused by name)."""
    return family_of(m) is not None


def unsupported(what: str, where: str) -> SnnCompileError:
    return SnnCompileError(f"unsupported {what} at `{where}`",
                           f"supported: {SUPPORTED}", EXIT_UNSUPPORTED)


def unsupported_layer(m: nn.Module, path: str) -> SnnCompileError:
    return SnnCompileError(f"unsupported layer `{path}` of type {type(m).__module__}.{type(m).__name__}",
                           f"supported: {SUPPORTED}", EXIT_UNSUPPORTED)


def contextual(message: str, hint: str) -> SnnCompileError:
    exc = SnnCompileError(message, hint, EXIT_UNSUPPORTED)
    exc.contextual = True   # names its module already: not re-wrapped as "a module snncompile does not know"
    return exc


def selection(what: str, module: str) -> SnnCompileError:
    return contextual(
        f"data-dependent selection at `{module}`: {what} picks tokens/elements by values computed from the "
        "input (SparseSpikformer-style top-k token selection), so the network would change with every sample",
        "compile a static keep-mask instead: multiply by a 0/1 buffer (e.g. `self.register_buffer('token_mask', "
        "...)`) or pass --patch-mask FILE.npy with the tokens to keep (e.g. the most often kept tokens at your "
        "keep ratio on the training set)")


def pair(v: Any) -> tuple[int, int]:
    return (int(v), int(v)) if isinstance(v, int) else (int(v[0]), int(v[1]))


def as_numpy(t: torch.Tensor | None) -> np.ndarray | None:
    """The tensor's values as numpy without a copy where the dtype allows (float32/64):
    a paper-size model must not be held twice. Read-only, because it shares memory with the
    model: passes replace arrays, they never write into them."""
    if t is None:
        return None
    t = t.detach().cpu()
    if t.dtype not in (torch.float32, torch.float64):
        t = t.to(torch.float64)
    a = t.numpy()
    a.flags.writeable = False
    return a


def adaptive_pool(out: tuple[int, ...], in_shape: tuple[int, ...], mode: str,
                  where: str) -> Pool2d | AdaptiveAvgPool2d:
    """AdaptiveAvg/MaxPool2d with a static output size as a plain pooling: exact when the
    input size is a multiple of the output size (equal, disjoint windows)."""
    (h, w), (oh, ow) = in_shape[-2:], out[-2:]
    if h % oh or w % ow:
        if mode == "avg":   # windows of unequal size (or overlapping): exact as its own node
            return AdaptiveAvgPool2d(out, where)
        raise unsupported(f"adaptive max pooling from {h}×{w} to {oh}×{ow} (windows of unequal size)", where)
    k = (h // oh, w // ow)
    return Pool2d(out, where, mode=mode, kernel=k, stride=k, padding=(0, 0))
