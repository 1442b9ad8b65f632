"""ONNX emission of one chain link (:class:`snncompile.netlist.Chain` node) per IR node type.

Each entry of :data:`ONNX` maps a value ``x`` of shape [N, *in_shape] to [N, *node.shape]
exactly as ``STEP(node)(node, [x], 1, "linear")`` does (the bias-free map; biases are on
the target population). ``mode="max"`` is the ANN variant's reading of OR synapses: the
window of a max-pool of spikes becomes a MaxPool of activations.

onnxruntime has no float64 Conv or AveragePool kernel, so a convolution is written as
im2col (Pad, strided Slices, Concat) and one MatMul per group, and a pooling window as a
Sum of strided Slices: float64 throughout. With ``dtype="float32"`` a convolution is
onnxruntime's own Conv.
"""

from __future__ import annotations

import numpy as np

from backends.onnx.builder import Builder
from snncompile.errors import EXIT_UNSUPPORTED, SnnCompileError
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

ONNX = Registry("onnx emission")
LINEAR, MAX = "linear", "max"


def _linear_only(node, mode: str, where: str) -> None:
    if mode != LINEAR:
        raise SnnCompileError(f"`{node.source or where}` ({node.op}) feeds an OR population, which the ANN "
                              "variant writes as a max-pool; only pooling windows can be",
                              "export the spiking model alone (the ANN variant needs OR synapses that are "
                              "a max-pool window)", EXIT_UNSUPPORTED)


def _out_len(n: int, k: int, s: int, p: int, d: int = 1) -> int:
    return (n + 2 * p - d * (k - 1) - 1) // s + 1


def _taps(b: Builder, x: str, in_shape: tuple[int, ...], kernel: tuple[int, int], stride: tuple[int, int],
          padding: tuple[int, int], dilation: tuple[int, int], hint: str,
          keep: list[tuple[int, int]] | None = None) -> list[str]:
    """The strided input window of each kernel tap (u, v), [N, C, H_out, W_out] each, in
    row-major tap order (only the taps in ``keep``); zero padding included."""
    _, h, w = in_shape
    (kh, kw), (sh, sw), (ph, pw), (dh, dw) = kernel, stride, padding, dilation
    ho, wo = _out_len(h, kh, sh, ph, dh), _out_len(w, kw, sw, pw, dw)
    if ph or pw:
        x = b.op("Pad", [x, b.ints([0, 0, ph, pw, 0, 0, ph, pw], f"{hint}_pads")], f"{hint}_padded")
    taps = []
    for u, v in keep if keep is not None else [(u, v) for u in range(kh) for v in range(kw)]:
        y0, x0 = u * dh, v * dw
        starts = b.ints([y0, x0], f"{hint}_s{u}{v}")
        ends = b.ints([y0 + sh * (ho - 1) + 1, x0 + sw * (wo - 1) + 1], f"{hint}_e{u}{v}")
        taps.append(b.op("Slice", [x, starts, ends, b.ints([2, 3], f"{hint}_axes"), b.ints([sh, sw], f"{hint}_st")],
                         f"{hint}_tap{u}{v}"))
    return taps


def max_pool(b: Builder, x: str, kernel, stride, padding, hint: str) -> str:
    return b.op("MaxPool", [x], hint, kernel_shape=list(kernel), strides=list(stride),
                pads=[padding[0], padding[1], padding[0], padding[1]])


def _is_max_window(node: Conv2d) -> bool:
    """An OR synapse layer: depthwise, weights 1 (0 where a removed neuron's synapse went:
    its activation is 0, which changes no maximum of activations ≥ 0)."""
    c = node.weight.shape[0]
    w = node.effective_weight
    return node.groups == c and w.shape[1] == 1 and bool(np.all((w == 1.0) | (w == 0.0))) \
        and node.dilation == (1, 1)


@ONNX.register(Conv2d)
def conv2d(b: Builder, node: Conv2d, x: str, in_shape: tuple[int, ...], mode: str, where: str) -> str:
    if mode == MAX:
        if not _is_max_window(node):
            _linear_only(node, mode, where)
        return max_pool(b, x, node.weight.shape[2:], node.stride, node.padding, where)
    w = np.asarray(node.effective_weight, dtype=np.float64)
    cout, cin_g, kh, kw = w.shape
    g = node.groups
    if b.dtype == "float32":  # onnxruntime's Conv (float32 only)
        ph, pw = node.padding
        return b.op("Conv", [x, b.const(w, f"{where}_W")], where, strides=list(node.stride),
                    pads=[ph, pw, ph, pw], dilations=list(node.dilation), group=g, kernel_shape=[kh, kw])
    keep = [(u, v) for u in range(kh) for v in range(kw) if np.any(w[:, :, u, v])] or [(0, 0)]
    taps = _taps(b, x, in_shape, (kh, kw), node.stride, node.padding, node.dilation, where, keep)
    _, ho, wo = node.shape
    cols = b.op("Concat", [b.op("Unsqueeze", [t, b.ints([1], f"{where}_ax1")], f"{t}_u") for t in taps],
                f"{where}_cols", axis=1)                                    # [N, K, C_in, H_o, W_o]
    cols = b.op("Reshape", [cols, b.ints([-1, len(keep), g, cin_g, ho * wo], f"{where}_cshape")],
                f"{where}_cols_g")
    cols = b.op("Transpose", [cols], f"{where}_cols_t", perm=[0, 2, 1, 3, 4])  # [N, G, K, C_in/G, HW]
    cols = b.op("Reshape", [cols, b.ints([-1, g, len(keep) * cin_g, ho * wo], f"{where}_kshape")],
                f"{where}_im2col")
    taps_w = np.stack([w[:, :, u, v] for u, v in keep], axis=1)              # [C_out, K, C_in/G]
    wmat = taps_w.reshape(g, cout // g, len(keep) * cin_g)
    y = b.op("MatMul", [b.const(wmat, f"{where}_W"), cols], f"{where}_mm")   # [N, G, C_out/G, HW]
    return b.reshape(y, tuple(node.shape), where)


@ONNX.register(Pool2d)
def pool2d(b: Builder, node: Pool2d, x: str, in_shape: tuple[int, ...], mode: str, where: str) -> str:
    if mode == MAX:
        if node.mode != "max":
            _linear_only(node, mode, where)
        return max_pool(b, x, node.kernel, node.stride, node.padding, where)
    # linear: the window sum (zero padding adds nothing), divided for an average; a max
    # pool's linear map is its window sum (the drive of OR neurons)
    taps = _taps(b, x, in_shape, node.kernel, node.stride, node.padding, (1, 1), where)
    total = taps[0] if len(taps) == 1 else b.op("Sum", taps, f"{where}_sum")
    if node.mode in ("max", "sum"):
        return total
    kh, kw = node.kernel
    if node.count_include_pad:
        return b.op("Div", [total, b.scalar(float(kh * kw))], where)
    _, h, w = in_shape
    _, ho, wo = node.shape
    ones = np.pad(np.ones((h, w)), [(node.padding[0],) * 2, (node.padding[1],) * 2])
    counts = np.array([[ones[i * node.stride[0]:i * node.stride[0] + kh, j * node.stride[1]:j * node.stride[1] + kw]
                        .sum() for j in range(wo)] for i in range(ho)])
    return b.op("Div", [total, b.const(counts[None], f"{where}_count")], where)


@ONNX.register(Linear)
def linear(b: Builder, node: Linear, x: str, in_shape, mode: str, where: str) -> str:
    _linear_only(node, mode, where)
    w = np.asarray(node.effective_weight, dtype=np.float64)
    return b.op("MatMul", [x, b.const(w.T, f"{where}_Wt")], where)


@ONNX.register(BatchNorm)
def batchnorm(b: Builder, node: BatchNorm, x: str, in_shape, mode: str, where: str) -> str:
    _linear_only(node, mode, where)
    scale, _ = node.scale_shift()
    return b.op("Mul", [x, b.const(scale.reshape((-1,) + (1,) * (len(node.shape) - 1)), f"{where}_scale")], where)


@ONNX.register(Reshape)
def reshape(b: Builder, node: Reshape, x: str, in_shape, mode: str, where: str) -> str:
    return b.reshape(x, tuple(node.shape), where)


@ONNX.register(Transpose)
def transpose(b: Builder, node: Transpose, x: str, in_shape, mode: str, where: str) -> str:
    return b.op("Transpose", [x], where, perm=[0, *(p + 1 for p in node.perm)])


@ONNX.register(Scale)
def scale(b: Builder, node: Scale, x: str, in_shape, mode: str, where: str) -> str:
    _linear_only(node, mode, where)
    return b.op("Mul", [x, b.scalar(node.factor)], where)


@ONNX.register(AdaptiveAvgPool2d)
def adaptive_avg_pool(b: Builder, node: AdaptiveAvgPool2d, x: str, in_shape, mode: str, where: str) -> str:
    """y = A_h · x · A_wᵀ per channel: two float64 MatMuls (windows of unequal size)."""
    a_h, a_w = node.matrices(tuple(in_shape))
    y = b.op("MatMul", [x, b.const(a_w.T, f"{where}_Aw")], where)             # [N, C, H, W_out]
    return b.op("MatMul", [b.const(a_h, f"{where}_Ah"), y], where)            # [N, C, H_out, W_out]


@ONNX.register(Slice)
def slice_(b: Builder, node: Slice, x: str, in_shape, mode: str, where: str) -> str:
    return b.op("Slice", [x, b.ints([node.start], f"{where}_start"), b.ints([node.stop], f"{where}_stop"),
                          b.ints([node.axis + 1], f"{where}_axis")], where)


@ONNX.register(Concat)
def concat(b: Builder, node: Concat, x: str, in_shape, mode: str, where: str) -> str:
    """The one-input (slot) form of a chain: the input padded with zeros to its place."""
    if node.slot < 0:
        raise SnnCompileError(f"`{node.source or where}`: a concatenation of several inputs inside a chain",
                              "report this model: lowering places each input of a concat separately",
                              EXIT_UNSUPPORTED)
    start = sum(node.sizes[:node.slot])
    before, after = [0] * (len(node.shape) + 1), [0] * (len(node.shape) + 1)
    before[node.axis + 1] = start
    after[node.axis + 1] = sum(node.sizes) - start - node.sizes[node.slot]
    return b.op("Pad", [x, b.ints(before + after, f"{where}_pads")], where)


@ONNX.register(Reduce)
def reduce(b: Builder, node: Reduce, x: str, in_shape, mode: str, where: str) -> str:
    _linear_only(node, mode, where)
    keep = int(node.keepdim)
    if node.mode == "mean":
        return b.op("ReduceMean", [x], where, axes=[node.axis + 1], keepdims=keep)
    return b.op("ReduceSum", [x, b.ints([node.axis + 1], f"{where}_axis")], where, keepdims=keep)


@ONNX.register(Mask)
def mask(b: Builder, node: Mask, x: str, in_shape, mode: str, where: str) -> str:
    _linear_only(node, mode, where)
    return b.op("Mul", [x, b.const(node.keep.astype(np.float64), f"{where}_keep")], where)


# populations and joins are not links of a chain: backends.onnx.step emits them by kind
ONNX.register(Input, Output, Neuron, MatMul, Add, Delay, Host)(not_applicable("onnx emission"))
