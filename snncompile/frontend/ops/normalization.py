"""Normalization layers: BatchNorm1d/2d with running statistics (an affine map at inference)."""

from __future__ import annotations

import numpy as np
from torch import nn

from snncompile.frontend.ops.common import as_numpy, unsupported
from snncompile.frontend.ops.context import Converter
from snncompile.frontend.ops.registry import layer
from snncompile.ir import BatchNorm


@layer(nn.BatchNorm1d, nn.BatchNorm2d)
def batch_norm(cx: Converter, m: nn.Module, path: str, src: str, out_shape: tuple[int, ...]) -> str:
    in_shape = cx.g.node(src).shape
    if not m.track_running_stats or m.running_mean is None:
        raise unsupported("BatchNorm without running statistics", path)
    c = m.num_features
    w = as_numpy(m.weight) if m.affine else np.ones(c)
    b = as_numpy(m.bias) if m.affine else np.zeros(c)
    if not in_shape or in_shape[0] != c:
        raise unsupported(f"BatchNorm over axis of size {in_shape[:1]} "
                          f"(expects channels first, {c})", path)
    node = BatchNorm(out_shape, path, mean=as_numpy(m.running_mean), var=as_numpy(m.running_var),
                     weight=w, bias=b, eps=float(m.eps))
    return cx.add(path, node, [src])
