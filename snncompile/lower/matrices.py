"""Sparse matrices of the linear per-sample operators (C-order flattening)."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from snncompile.ir import Conv2d, Linear, Pool2d


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


def conv2d_matrix(node: Conv2d, in_shape: tuple[int, int, int]) -> sp.csr_matrix:
    rows, cols, vals, shape = conv2d_taps(node, in_shape, node.effective_weight, node.mask)
    return sp.csr_matrix((vals, (rows, cols)), shape=shape)


def linear_matrix(node: Linear, in_shape: tuple[int, ...]) -> sp.csr_matrix:
    """Linear over the last axis; leading (token) axes share the weights."""
    r, c = np.nonzero(node.mask)
    w = sp.csr_matrix((node.weight[r, c], (r, c)), shape=node.weight.shape)
    lead = int(np.prod(in_shape[:-1])) if len(in_shape) > 1 else 1
    return w if lead == 1 else sp.kron(sp.identity(lead, format="csr"), w, format="csr")


def pool2d_matrix(node: Pool2d, in_shape: tuple[int, int, int]) -> sp.csr_matrix:
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
    if node.mode == "max":
        vals = np.ones(valid.shape)
    elif node.count_include_pad:
        vals = np.full(valid.shape, 1.0 / (kh * kw))
    else:
        counts = valid.sum(axis=(3, 4), keepdims=True)
        vals = np.broadcast_to(1.0 / counts, valid.shape)
    return sp.csr_matrix((vals[valid], (rows[valid], cols[valid])), shape=(c * ho * wo, c * h * w))
