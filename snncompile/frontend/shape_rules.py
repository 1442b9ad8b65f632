"""Meta outputs the tracer makes without running torch's meta kernels.

Where the rule is short and exact, the output of an operation on meta tensors (shape,
dtype, layout) is made directly: convolutions, linear layers, eval-mode batch norms, 2-d
max/avg and adaptive average pooling, ``a @ b``, ``x.mean(dim)`` / ``x.sum(dim)``,
elementwise arithmetic on equal shapes or with a Python number, ``x += y``. Anything else,
and any input such an operation would refuse, returns None: the tracer then runs the
operation on the meta copy. Two reasons: several meta kernels are Python decompositions
(~0.2 ms a call), and some import torch's symbolic-shape machinery and sympy, which costs
0.3–1.3 s on a command's first trace. Every rule is checked against torch's own meta output
(tests/frontend/test_meta_shapes.py).
"""

from __future__ import annotations

import math
import operator
from typing import Any

import torch
from torch import nn


def like(x: torch.Tensor) -> torch.Tensor:
    """``torch.empty_like(x)`` (meta): for a non-overlapping dense ``x`` (contiguous, or a
    transposed view: empty_like keeps its layout), made directly, without its Python
    decomposition (~25 µs against 2 µs, some 50 times per ResNet-18 trace), which also imports
    torch's symbolic shapes and sympy on a first trace (0.3–1.3 s)."""
    if _dense(x):
        return torch.empty_strided(x.shape, _elementwise_strides(tuple(x.shape), [x.stride()]), dtype=x.dtype,
                                   device=x.device)
    return torch.empty_like(x)


def _dense(x: torch.Tensor) -> bool:
    """Non-overlapping and dense (torch's definition): the strides, smallest first, are the
    running products of the sizes, dimensions of size 1 aside; never for an empty tensor."""
    if x.numel() == 0 or x.layout != torch.strided:
        return False
    expected = 1
    for size, stride in sorted(zip(x.shape, x.stride()), key=lambda e: e[1]):
        if size == 1:
            continue
        if stride != expected:
            return False
        expected *= size
    return True


# x + y on two dense float tensors of one shape and dtype (laid out as torch lays out the result),
# or on a float tensor and a Python number: the result is shaped and typed as the tensor (the meta kernels of elementwise ops are
# Python decompositions, ~0.2 ms a call, and the first imports torch._dynamo and sympy)
_ELEMENTWISE = (operator.add, operator.sub, operator.mul, operator.truediv, torch.add, torch.sub, torch.mul,
                torch.div)


# x += y on two float tensors of one shape and dtype: x itself (an in-place operator returns
# its target; the meta kernel would import torch's symbolic shapes to check the broadcast)
_IN_PLACE = (operator.iadd, operator.isub, operator.imul)


def same_operands(target: Any, args: tuple, kwargs: dict) -> torch.Tensor | None:
    if target is operator.matmul or target is torch.matmul:
        return None if kwargs or len(args) != 2 else _matmul_shape(*args)
    in_place = any(target is f for f in _IN_PLACE)
    if kwargs or len(args) != 2 or not (in_place or any(target is f for f in _ELEMENTWISE)):
        return None
    x, y = args
    if not in_place and _number(x) and isinstance(y, torch.Tensor):
        x, y = y, x   # 2.0 * t: the same result shape and dtype as t * 2.0
    if isinstance(x, torch.Tensor) and x.is_floating_point() and _number(y) and not in_place:
        return like(x)   # a Python number keeps a float tensor's dtype (torch's type promotion)
    if not (isinstance(x, torch.Tensor) and isinstance(y, torch.Tensor) and x.is_floating_point()):
        return None
    if in_place:
        # (an overlapping target, e.g. an expanded view, is refused by torch: let it)
        return x if x.shape == y.shape and x.dtype == y.dtype and x.device == y.device and _dense(x) else None
    if x.shape != y.shape or x.dtype != y.dtype or x.device != y.device:
        return None
    if not (_dense(x) and _dense(y)):
        return None
    strides = _elementwise_strides(tuple(x.shape), [x.stride(), y.stride()])
    return torch.empty_strided(x.shape, strides, dtype=x.dtype, device=x.device)


def _number(v: Any) -> bool:
    """A Python float, or an int torch takes as a scalar (outside [−2⁶³, 2⁶⁴) it raises)."""
    return type(v) is float or (type(v) is int and -(1 << 63) <= v < 1 << 64)


def _elementwise_strides(shape: tuple[int, ...], strides: list[tuple[int, ...]]) -> tuple[int, ...]:
    """The output strides of an elementwise op on inputs of one shape with these strides:
    torch's rule (TensorIterator's dimension order, ported in torch._prims_common as
    compute_elementwise_output_strides, which imports its symbolic shapes): dimensions
    ordered fastest first by the first input whose strides tell them apart (equal strides:
    the shorter first), contiguous in that order; all channels-last: channels-last."""
    ndim = len(shape)
    contiguous = all(_contiguous(shape, st) for st in strides)
    channels_last = ndim == 4 and all(_channels_last(shape, st) for st in strides)
    if contiguous and not channels_last:
        order = list(reversed(range(ndim)))
    elif channels_last and not contiguous:
        order = [1, 3, 2, 0]   # fastest first: C, W, H, N
    else:   # (both: the general order, which may place axes of size 1 otherwise)
        order = _fastest_first(shape, strides)
    out = [0] * ndim
    step = 1
    for d in order:
        out[d] = step
        step *= max(shape[d], 1)
    return tuple(out)


def _fastest_first(shape: tuple[int, ...], strides: list[tuple[int, ...]]) -> list[int]:
    def should_swap(a: int, b: int) -> int:
        for st in strides:
            if st[a] == 0 or st[b] == 0:
                continue
            if st[a] != st[b]:
                return -1 if st[a] < st[b] else 1
            if shape[a] > shape[b]:
                return 1
        return 0

    perm = list(reversed(range(len(shape))))
    for i in range(1, len(shape)):
        d1 = i
        for d0 in reversed(range(i)):
            c = should_swap(perm[d0], perm[d1])
            if c > 0:
                perm[d0], perm[d1] = perm[d1], perm[d0]
                d1 = d0
            elif c < 0:
                break
    return perm


def _contiguous(shape: tuple[int, ...], strides: tuple[int, ...]) -> bool:
    expected = 1
    for n, st in zip(reversed(shape), reversed(strides)):
        if n != 1 and st != expected:
            return False
        expected *= n
    return True


def _channels_last(shape: tuple[int, ...], strides: tuple[int, ...]) -> bool:
    expected = 1
    for d in (1, 3, 2, 0):
        if shape[d] != 1 and strides[d] != expected:
            return False
        expected *= shape[d]
    return True


def reduced(method: str, args: tuple, kwargs: dict) -> torch.Tensor | None:
    """``x.mean(dim)`` / ``x.sum(dim)`` (keepdim as given) of a float tensor over int axes: a
    contiguous tensor of the reduced shape, as torch's meta reduction makes it (whose Python
    reference imports torch's symbolic shapes and sympy on a first trace)."""
    if method not in ("mean", "sum") or not 1 <= len(args) <= 3 or set(kwargs) - {"dim", "keepdim"}:
        return None
    x, dim, keepdim = (*args, *[None, False][len(args) - 1:])   # (keepdim omitted: False; None is refused)
    dim, keepdim = kwargs.get("dim", dim), kwargs.get("keepdim", keepdim)
    if not (isinstance(x, torch.Tensor) and x.is_floating_point() and x.dim() > 0) or type(keepdim) is not bool:
        return None
    dims = (dim,) if type(dim) is int else tuple(dim) if isinstance(dim, (tuple, list)) and dim else None
    if dims is None or not all(type(d) is int and -x.dim() <= d < x.dim() for d in dims):
        return None
    axes = {d % x.dim() for d in dims}
    if len(axes) != len(dims):
        return None   # an axis twice: torch raises
    shape = [1 if i in axes else n for i, n in enumerate(x.shape) if keepdim or i not in axes]
    return torch.empty(shape, dtype=x.dtype, device=x.device)


def method_output(method: str, args: tuple, kwargs: dict) -> torch.Tensor | None:
    """The meta output of a tensor method a rule below knows (None: run torch's)."""
    if method in ("mean", "sum"):
        return reduced(method, args, kwargs)
    if method == "repeat":
        return repeated(args, kwargs)
    return None


def repeated(args: tuple, kwargs: dict) -> torch.Tensor | None:
    """``x.repeat(*sizes)`` / ``x.repeat(sizes)`` with sizes of Python ints, at least one per
    axis of x and none negative (Spikformer's ``x.unsqueeze(0).repeat(T, 1, 1, 1, 1)``): a
    contiguous tensor of x's shape, padded with leading 1s, times the sizes (torch's meta
    kernel checks its arguments through torch's symbolic shapes, which import sympy). Sizes
    of the wrong rank or negative raise what that kernel raises (a trace tries several
    input layouts, and the wrong ones end here)."""
    if kwargs or len(args) < 2 or not isinstance(args[0], torch.Tensor):
        return None
    x, sizes = args[0], args[1:]
    if len(sizes) == 1 and isinstance(sizes[0], (tuple, list, torch.Size)):
        sizes = tuple(sizes[0])
    if not sizes or not all(type(s) is int and -2 ** 31 < s < 2 ** 31 for s in sizes):
        return None
    if len(sizes) < x.dim():
        raise RuntimeError("Number of dimensions of repeat dims can not be smaller than number of dimensions of tensor")
    for i, s in enumerate(sizes):
        if s < 0:
            raise RuntimeError(f"Repeats cannot be negative, found {s} at index {i}")
    padded = (1,) * (len(sizes) - x.dim()) + tuple(x.shape)
    shape = [n * s for n, s in zip(padded, sizes)]
    if math.prod(shape) >= 2 ** 62:
        return None
    return torch.empty(shape, dtype=x.dtype, device=x.device)


def _matmul_shape(a: Any, b: Any) -> torch.Tensor | None:
    """a @ b for float tensors of one dtype, a of rank ≥ b's ≥ 2 (attention's q @ kᵀ, attn @ v):
    [..., n, k] @ [..., k, p] → [broadcast(...), n, p], contiguous (torch folds or batches it;
    the meta kernel of bmm would import torch's symbolic shapes and sympy)."""
    if not (isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor) and a.is_floating_point()):
        return None
    if a.dtype != b.dtype or a.device != b.device or not a.dim() >= b.dim() >= 2 or a.shape[-1] != b.shape[-2]:
        return None
    batch = []
    for m, n in zip(reversed(a.shape[:-2]), [*reversed(b.shape[:-2]), *[1] * (a.dim() - b.dim())]):
        if m != n and 1 not in (m, n):
            return None
        batch.append(n if m == 1 else m)
    return torch.empty((*reversed(batch), a.shape[-2], b.shape[-1]), dtype=a.dtype, device=a.device)


# batch norm's meta kernel is a Python decomposition (a few ms per call on a paper-size
# model); in eval mode its output has its input's shape, which the checks below confirm
_BN_RANKS = {nn.BatchNorm1d: (2, 3), nn.BatchNorm2d: (4,), nn.BatchNorm3d: (5,)}


def module_output(mod: nn.Module, args: tuple, kwargs: dict) -> torch.Tensor | None:
    """The meta output of an eval-mode batch norm, convolution, linear layer or 2-d (adaptive)
    pooling (torch's, or spikingjelly's wrapper in either step mode, or a SeqToANNContainer of
    these) on a valid input, without running it; None: run the module (it then also raises
    what it raises on an invalid input)."""
    if kwargs or len(args) != 1 or not isinstance(args[0], torch.Tensor) or not args[0].is_floating_point():
        return None
    x, cls = args[0], type(mod)
    if cls.__module__ == _SJ_CONTAINER and cls.__name__ == "SeqToANNContainer":
        return _seq_to_ann_shape(mod, x)
    if cls.__module__.startswith(_SJ_LAYER) and cls.__name__ == "VotingLayer":
        return _voting_shape(mod, x)
    if not (cls.__module__.startswith("torch.nn.modules") or (cls.__module__.startswith(_SJ_LAYER)
                                                              and cls.__name__ in _SJ_STOCK)):
        return None   # a subclass (spikingjelly's WSConv2d) may compute something else: run it
    weight, bias = getattr(mod, "weight", None), getattr(mod, "bias", None)
    if any(isinstance(t, torch.Tensor) and t.dtype != x.dtype for t in (weight, bias)):
        return None   # a dtype mismatch raises in the module: let it
    lead = 2 if getattr(mod, "step_mode", "s") == "m" else 1
    if isinstance(mod, nn.modules.batchnorm._BatchNorm):
        return _batch_norm_shape(mod, x, lead)
    if isinstance(mod, nn.modules.conv._ConvNd) and not isinstance(mod, nn.modules.conv._ConvTransposeNd):
        return _conv_shape(mod, x, lead)
    if isinstance(mod, nn.Linear) and x.dim() >= 2 and x.shape[-1] == mod.in_features:
        return torch.empty((*x.shape[:-1], mod.out_features), dtype=x.dtype, device=x.device)
    if isinstance(mod, (nn.MaxPool2d, nn.AvgPool2d)):
        return _pool_shape(mod, x, lead)
    if isinstance(mod, nn.AdaptiveAvgPool2d):
        return _adaptive_shape(mod, x, lead)
    return None


_SJ_LAYER = "spikingjelly.activation_based.layer"
_SJ_STOCK = {"Conv1d", "Conv2d", "Conv3d", "Linear", "BatchNorm1d", "BatchNorm2d", "BatchNorm3d", "MaxPool2d",
             "AvgPool2d", "AdaptiveAvgPool2d"}


_SJ_CONTAINER = "spikingjelly.activation_based.layer.container"


def _seq_to_ann_shape(mod: nn.Sequential, x: torch.Tensor) -> torch.Tensor | None:
    """[T, B, ...] flattened to [T·B, ...], through every (single-step) layer, back to [T, B, ...]
    (spikingjelly's seq_to_ann_forward); None unless every layer has a rule."""
    if x.dim() < 3 or not x.is_contiguous():
        return None
    y = torch.empty((x.shape[0] * x.shape[1], *x.shape[2:]), dtype=x.dtype, device=x.device)
    for layer in mod:
        if getattr(layer, "step_mode", "s") != "s":
            return None
        y = module_output(layer, (y,), {})
        if y is None or not y.is_contiguous():
            return None
    return torch.empty((x.shape[0], x.shape[1], *y.shape[1:]), dtype=y.dtype, device=y.device)


def _batch_norm_shape(mod: nn.Module, x: torch.Tensor, lead: int) -> torch.Tensor | None:
    ranks = next((r for cls, r in _BN_RANKS.items() if isinstance(mod, cls)), None)
    if ranks is None or mod.training or x.dim() - lead + 1 not in ranks or x.shape[lead] != mod.num_features:
        return None
    if mod.running_mean is None or mod.running_mean.dtype != x.dtype:
        return None   # (no running statistics: batch statistics even in eval, with their own checks)
    return like(x)


def _conv_shape(mod: nn.Module, x: torch.Tensor, lead: int) -> torch.Tensor | None:
    """out = ⌊(n + 2p − d·(k − 1) − 1) / s⌋ + 1 per spatial axis (torch's Conv*d), batched input only."""
    dims = len(mod.kernel_size)
    if isinstance(mod.padding, str) or x.dim() != lead + 1 + dims or x.shape[lead] != mod.in_channels:
        return None
    out = [(n + 2 * p - d * (k - 1) - 1) // s + 1 for n, k, s, p, d in
           zip(x.shape[lead + 1:], mod.kernel_size, mod.stride, mod.padding, mod.dilation)]
    if min(out) < 1:
        return None
    if mod.padding_mode != "zeros" and any(p >= n for n, p in zip(x.shape[lead + 1:], mod.padding)):
        return None   # reflect/circular padding wider than the input: torch decides (and refuses)
    return torch.empty((*x.shape[:lead], mod.out_channels, *out), dtype=x.dtype, device=x.device)


def _pool_shape(mod: nn.MaxPool2d | nn.AvgPool2d, x: torch.Tensor, lead: int) -> torch.Tensor | None:
    """out = ⌊(n + 2p − d·(k − 1) − 1 (+ s − 1 with ceil_mode)) / s⌋ + 1 per axis, less one
    where ceil_mode starts the last window in the right padding (torch's pooling_output_shape);
    batched contiguous input and the parameters torch accepts only. (The meta kernel of 2-d
    pooling imports torch's symbolic-shape machinery and sympy: ~0.3–1.3 s on a first trace.)"""
    if getattr(mod, "return_indices", False) or getattr(mod, "divisor_override", None) is not None \
            or x.dim() != lead + 3 or not x.is_contiguous() or 0 in x.shape:
        return None
    def two(v: Any) -> tuple[int, int] | None:
        v = (v, v) if isinstance(v, int) else tuple(v)
        return v if len(v) == 2 and all(type(e) is int for e in v) else None
    k, p = two(mod.kernel_size), two(mod.padding)
    s = two(mod.stride if mod.stride not in (None, (), []) else mod.kernel_size)
    d = two(getattr(mod, "dilation", 1))
    if None in (k, s, p, d):
        return None
    out = []
    for n, kk, ss, pp, dd in zip(x.shape[lead + 1:], k, s, p, d):
        if kk < 1 or ss < 1 or dd < 1 or not 0 <= pp <= kk // 2:   # (torch's limit, dilated or not)
            return None
        o = (n + 2 * pp - dd * (kk - 1) - 1 + (ss - 1 if mod.ceil_mode else 0)) // ss + 1
        if mod.ceil_mode and (o - 1) * ss >= n + pp:
            o -= 1
        if o < 1:
            return None
        out.append(o)
    return torch.empty((*x.shape[:lead + 1], *out), dtype=x.dtype, device=x.device)


def _voting_shape(mod: nn.Module, x: torch.Tensor) -> torch.Tensor | None:
    """spikingjelly's VotingLayer: the mean of each run of ``voting_size`` features of the last
    axis (``avg_pool1d`` of [B, 1, N]), [B, N] → [B, ⌊N / v⌋] per step; contiguous input of one
    sample axis only, N ≥ v. (avg_pool1d's meta kernel imports sympy on a first trace.)"""
    v, lead = getattr(mod, "voting_size", None), 2 if getattr(mod, "step_mode", "s") == "m" else 1
    if type(v) is not int or v < 1 or x.dim() != lead + 1 or not x.is_contiguous() or not x.shape[-1] >= v \
            or 0 in x.shape:
        return None
    return torch.empty((*x.shape[:-1], x.shape[-1] // v), dtype=x.dtype, device=x.device)


def _adaptive_shape(mod: nn.AdaptiveAvgPool2d, x: torch.Tensor, lead: int) -> torch.Tensor | None:
    """The output size asked for (None: the input's) on batched contiguous input."""
    if x.dim() != lead + 3 or not x.is_contiguous() or 0 in x.shape:
        return None
    size = mod.output_size
    size = (size, size) if isinstance(size, int) else tuple(size)
    if len(size) != 2 or not all(o is None or (type(o) is int and o >= 1) for o in size):
        return None
    out = [n if o is None else o for n, o in zip(x.shape[-2:], size)]
    return torch.empty((*x.shape[:-2], *out), dtype=x.dtype, device=x.device)
