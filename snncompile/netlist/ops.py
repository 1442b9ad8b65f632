"""Unrolling one chain node into an explicit sparse matrix (C-order flattening).

Only backends that need explicit synapses call this, one projection at a time; every
other consumer applies a chain with :data:`snncompile.ir.semantics.STEP`.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from snncompile.ir import (
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
from snncompile.ir.registry import Registry, not_applicable

UNROLL = Registry("unrolled matrix")


def _out_len(n: int, k: int, s: int, p: int, d: int = 1) -> int:
    return (n + 2 * p - d * (k - 1) - 1) // s + 1


def conv2d_taps(node: Conv2d, in_shape: tuple[int, int, int], weights: np.ndarray,
                pattern: np.ndarray | None = None):
    """Rows, cols and values of every (output, input) pair that a kernel tap joins.

    Padding positions are excluded; only taps where ``pattern`` (default: weights != 0)
    is true appear, with their (possibly zero) weight.
    """
    cin, h, w = in_shape
    cout, cin_g, kh, kw = weights.shape
    sy, sx = node.stride
    py, px = node.padding
    dy, dx = node.dilation
    ho, wo = _out_len(h, kh, sy, py, dy), _out_len(w, kw, sx, px, dx)
    co, ci_l, ky, kx = np.nonzero(weights if pattern is None else pattern)
    vals = weights[co, ci_l, ky, kx]
    cout_g = cout // node.groups
    ci = (co // cout_g) * cin_g + ci_l
    oy, ox = np.meshgrid(np.arange(ho), np.arange(wo), indexing="ij")
    oy, ox = oy.ravel(), ox.ravel()
    iy = oy[None, :] * sy - py + ky[:, None] * dy
    ix = ox[None, :] * sx - px + kx[:, None] * dx
    valid = (iy >= 0) & (iy < h) & (ix >= 0) & (ix < w)
    rows = (co[:, None] * ho + oy[None, :]) * wo + ox[None, :]
    cols = (ci[:, None] * h + iy) * w + ix
    vals = np.broadcast_to(vals[:, None], valid.shape)
    return rows[valid], cols[valid], vals[valid], (cout * ho * wo, cin * h * w)


def _weights(node: Conv2d | Linear, mode: str) -> np.ndarray:
    if mode == "pattern":
        return node.mask.astype(np.float64)
    return np.asarray(node.effective_weight, dtype=np.float64)


@UNROLL.register(Conv2d)
def conv2d_matrix(node: Conv2d, in_shape: tuple[int, ...], mode: str = "linear") -> sp.csr_matrix:
    rows, cols, vals, shape = conv2d_taps(node, in_shape, _weights(node, mode), node.mask)
    return sp.csr_matrix((vals, (rows, cols)), shape=shape)


@UNROLL.register(Linear)
def linear_matrix(node: Linear, in_shape: tuple[int, ...], mode: str = "linear") -> sp.csr_matrix:
    """Linear over the last axis; leading (token) axes share the weights."""
    r, c = np.nonzero(node.mask)
    w = sp.csr_matrix((_weights(node, mode)[r, c], (r, c)), shape=node.weight.shape)
    lead = int(np.prod(in_shape[:-1])) if len(in_shape) > 1 else 1
    return w if lead == 1 else sp.kron(sp.identity(lead, format="csr"), w, format="csr")


@UNROLL.register(Pool2d)
def pool2d_matrix(node: Pool2d, in_shape: tuple[int, ...], mode: str = "linear") -> sp.csr_matrix:
    """Average pooling as a matrix; for max pooling, the 0/1 window-membership matrix."""
    c, h, w = in_shape
    kh, kw = node.kernel
    sy, sx = node.stride
    py, px = node.padding
    ho, wo = _out_len(h, kh, sy, py), _out_len(w, kw, sx, px)
    ch, oy, ox, ky, kx = np.meshgrid(np.arange(c), np.arange(ho), np.arange(wo),
                                     np.arange(kh), np.arange(kw), indexing="ij")
    iy = oy * sy - py + ky
    ix = ox * sx - px + kx
    valid = (iy >= 0) & (iy < h) & (ix >= 0) & (ix < w)
    rows = ((ch * ho + oy) * wo + ox)
    cols = ((ch * h + iy) * w + ix)
    if node.mode in ("max", "sum") or mode == "pattern":
        vals = np.ones(valid.shape)
    elif node.count_include_pad:
        vals = np.full(valid.shape, 1.0 / (kh * kw))
    else:
        counts = valid.sum(axis=(3, 4), keepdims=True)
        vals = np.broadcast_to(1.0 / counts, valid.shape)
    return sp.csr_matrix((vals[valid], (rows[valid], cols[valid])), shape=(c * ho * wo, c * h * w))


@UNROLL.register(BatchNorm)
def _batchnorm(node: BatchNorm, in_shape, mode="linear"):
    scale, _ = node.scale_shift()
    if mode == "pattern":
        scale = (scale != 0).astype(np.float64)
    return sp.diags(np.repeat(scale, node.size // node.shape[0]), format="csr")


@UNROLL.register(Reshape)
def _reshape(node, in_shape, mode="linear"):
    return sp.identity(node.size, format="csr")


@UNROLL.register(Transpose)
def _transpose(node: Transpose, in_shape, mode="linear"):
    idx = np.arange(int(np.prod(in_shape))).reshape(in_shape).transpose(node.perm).ravel()
    return sp.csr_matrix((np.ones(len(idx)), (np.arange(len(idx)), idx)), shape=(len(idx),) * 2)


@UNROLL.register(Scale)
def _scale(node: Scale, in_shape, mode="linear"):
    return sp.identity(node.size, format="csr") * (1.0 if mode == "pattern" else node.factor)


@UNROLL.register(AdaptiveAvgPool2d)
def _adaptive(node: AdaptiveAvgPool2d, in_shape, mode="linear"):
    a_h, a_w = node.matrices(in_shape)
    if mode == "pattern":
        a_h, a_w = (a_h > 0).astype(np.float64), (a_w > 0).astype(np.float64)
    per_channel = sp.kron(sp.csr_matrix(a_h), sp.csr_matrix(a_w), format="csr")
    return sp.kron(sp.identity(in_shape[0], format="csr"), per_channel, format="csr")


@UNROLL.register(Slice)
def _slice(node: Slice, in_shape, mode="linear"):
    index = [slice(None)] * len(in_shape)
    index[node.axis] = slice(node.start, node.stop)
    cols = np.arange(int(np.prod(in_shape))).reshape(in_shape)[tuple(index)].ravel()
    return sp.csr_matrix((np.ones(len(cols)), (np.arange(len(cols)), cols)), shape=(len(cols), int(np.prod(in_shape))))


@UNROLL.register(Concat)
def _concat(node: Concat, in_shape, mode="linear"):
    """The one-input (slot) form: input element i goes to its place in the output."""
    start = sum(node.sizes[:node.slot])
    index = [slice(None)] * len(node.shape)
    index[node.axis] = slice(start, start + node.sizes[node.slot])
    rows = np.arange(node.size).reshape(node.shape)[tuple(index)].ravel()
    return sp.csr_matrix((np.ones(len(rows)), (rows, np.arange(len(rows)))), shape=(node.size, len(rows)))


@UNROLL.register(Reduce)
def _reduce(node: Reduce, in_shape, mode="linear"):
    idx = np.arange(int(np.prod(in_shape))).reshape(in_shape)
    kept = node.shape if node.keepdim else tuple(np.expand_dims(np.zeros(node.shape), node.axis).shape)
    out_idx = np.broadcast_to(np.arange(node.size).reshape(kept), in_shape)
    w = 1.0 / in_shape[node.axis] if node.mode == "mean" and mode != "pattern" else 1.0
    return sp.csr_matrix((np.full(idx.size, w), (out_idx.ravel(), idx.ravel())), shape=(node.size, idx.size))


@UNROLL.register(Mask)
def _mask(node: Mask, in_shape, mode="linear"):
    return sp.diags(node.keep.ravel().astype(np.float64), format="csr")


# populations and joins are not links of a chain
UNROLL.register(Input, Output, Neuron, MatMul, Add, Delay, Host)(not_applicable("unrolling"))
