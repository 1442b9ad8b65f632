"""Synaptic layers: Conv1d, Conv2d, Linear (with their pruning masks)."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from snncompile.frontend.ops.common import as_numpy, pair, unsupported
from snncompile.frontend.ops.context import Converter
from snncompile.frontend.ops.registry import layer
from snncompile.ir import Conv2d, Linear


def synapse_weights(cx: Converter, m: nn.Module, path: str) -> tuple[np.ndarray, np.ndarray | None]:
    """Weights and explicit pruning mask (torch.nn.utils.prune or --masks), if any."""
    mask = cx.masks.get(path)
    orig = getattr(m, "weight_orig", None)
    pmask = getattr(m, "weight_mask", None)
    if isinstance(orig, torch.Tensor) and isinstance(pmask, torch.Tensor):
        pm = pmask.detach().cpu().numpy() != 0
        mask = pm if mask is None else (mask & pm)
        weight = as_numpy(orig) * pm
    else:
        weight = as_numpy(m.weight)
    if mask is not None:
        weight = np.where(mask, weight, 0.0)
    return weight, mask


@layer(nn.Conv2d)
def conv2d(cx: Converter, m: nn.Conv2d, path: str, src: str, out_shape: tuple[int, ...]) -> str:
    weight, mask = synapse_weights(cx, m, path)
    if m.padding_mode != "zeros" or isinstance(m.padding, str):
        if not (isinstance(m.padding, str) and m.padding == "valid"):
            raise unsupported(f"Conv2d padding {m.padding!r}/{m.padding_mode}", path)
    pad = (0, 0) if isinstance(m.padding, str) else pair(m.padding)
    node = Conv2d(out_shape, path, weight=weight, bias=as_numpy(m.bias),
                  stride=pair(m.stride), padding=pad, dilation=pair(m.dilation),
                  groups=m.groups, mask=mask)
    return cx.add(path, node, [src])


@layer(nn.Linear)
def linear(cx: Converter, m: nn.Linear, path: str, src: str, out_shape: tuple[int, ...]) -> str:
    weight, mask = synapse_weights(cx, m, path)
    node = Linear(out_shape, path, weight=weight, bias=as_numpy(m.bias), mask=mask)
    return cx.add(path, node, [src])


@layer(nn.Conv1d)
def conv1d(cx: Converter, m: nn.Conv1d, path: str, src: str, out_shape: tuple[int, ...]) -> str:
    """Conv1d over (C, L) as a Conv2d over (C, 1, L) with a 1 × k kernel."""
    if m.padding_mode != "zeros" or isinstance(m.padding, str) and m.padding != "valid":
        raise unsupported(f"Conv1d padding {m.padding!r}/{m.padding_mode}", path)
    c, length = cx.g.node(src).shape
    weight, mask = synapse_weights(cx, m, path)
    pad = 0 if isinstance(m.padding, str) else int(m.padding[0])
    flat = cx.reshape(src, (c, 1, length), path, f"{path}_as2d")
    node = Conv2d((out_shape[0], 1, out_shape[1]), path, weight=weight[:, :, None, :],
                  bias=as_numpy(m.bias), stride=(1, int(m.stride[0])), padding=(0, pad),
                  dilation=(1, int(m.dilation[0])), groups=m.groups,
                  mask=None if mask is None else mask[:, :, None, :])
    conv = cx.add(path, node, [flat])
    return cx.reshape(conv, out_shape, path, f"{path}_as1d")
