"""torch.fx tracing specialised on one concrete input shape.

Symbolic tracing alone refuses ``len(x.shape)``, ``T, B, C, H, W = x.shape``,
``if x.shape[-1] == 64`` and Python loops over T. Here every proxy carries the value the
operation would have on a *meta* copy of the model (shapes without storage), so shape
questions get concrete answers: shape-dependent Python runs once, as Python, and the
recorded graph is the straight-line program for that input shape. torch.export/dynamo
would do the same with guards, but it needs fake-tensor support in every neuron's Python
and cannot keep arbitrary modules as opaque units; this tracer keeps neurons and known
stateless layers as leaves and traces through every other module, wherever it is
defined. Branching on tensor *values* still stops the trace (the compiled network could
not follow it).
"""

from __future__ import annotations

import operator
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import fx, nn

from snncompile.errors import EXIT_UNSUPPORTED, SnnCompileError

MISSING = object()   # the value of an operation whose meta evaluation failed


class DataDependent(fx.proxy.TraceError):
    """forward() asked for a tensor's value (a branch, ``.item()``, iteration over values)."""


def _value(a: Any) -> Any:
    """The recorded value of a proxy (its meta tensor or Python value); other objects as is."""
    if isinstance(a, fx.Proxy):
        return a.node.meta.get("value", MISSING)
    if isinstance(a, torch.Tensor) and not a.is_meta:
        return a.to("meta")   # a constant created in forward() meets meta values
    return a


class ShapedProxy(fx.Proxy):
    """A proxy whose shape, size, rank and dtype are concrete (from its meta value)."""

    def _tensor(self, what: str) -> torch.Tensor:
        v = self.node.meta.get("value", MISSING)
        if not isinstance(v, torch.Tensor):
            raise fx.proxy.TraceError(f"`{what}` of `{self.node.format_node()}`, whose value could not be "
                                      "evaluated on the meta device")
        return v

    @property
    def shape(self) -> torch.Size:
        return self._tensor("shape").shape

    @property
    def ndim(self) -> int:
        return self._tensor("ndim").ndim

    @property
    def dtype(self) -> torch.dtype:
        return self._tensor("dtype").dtype

    @property
    def device(self) -> torch.device:
        return torch.device("cpu")   # the values live on the meta device; the model on the CPU

    @property
    def is_cuda(self) -> bool:
        return False

    def size(self, dim: int | None = None) -> Any:
        t = self._tensor("size")
        return t.size() if dim is None else t.size(dim)

    def dim(self) -> int:
        return self._tensor("dim").dim()

    def numel(self) -> int:
        return self._tensor("numel").numel()

    def __len__(self) -> int:
        v = self.node.meta.get("value", MISSING)
        if isinstance(v, (tuple, list)):
            return len(v)
        return len(self._tensor("len"))

    def __iter__(self):
        return iter([self[i] for i in range(len(self))])

    def ndimension(self) -> int:
        return self._tensor("ndimension").dim()

    def is_floating_point(self) -> bool:
        return self._tensor("is_floating_point").is_floating_point()

    def __bool__(self) -> bool:
        v = self.node.meta.get("value", MISSING)
        if isinstance(v, (bool, int, float)):   # a Python value about shapes or dtypes: concrete
            return bool(v)
        raise DataDependent(f"forward() branches on the value of `{self.node.format_node()}`")

    # ``h += c`` mutates h in torch; recorded as the in-place operator (not as h = h + c) so
    # that another name for the same tensor read later is caught (trace.py, _check_in_place)
    def __iadd__(self, other: Any) -> fx.Proxy:
        return self.tracer.create_proxy("call_function", operator.iadd, (self, other), {})

    def __isub__(self, other: Any) -> fx.Proxy:
        return self.tracer.create_proxy("call_function", operator.isub, (self, other), {})

    def __imul__(self, other: Any) -> fx.Proxy:
        return self.tracer.create_proxy("call_function", operator.imul, (self, other), {})

    def __itruediv__(self, other: Any) -> fx.Proxy:
        return self.tracer.create_proxy("call_function", operator.itruediv, (self, other), {})

    def __setitem__(self, index: Any, value: Any) -> None:
        """``out[mask] = c`` into a fresh tensor of zeros (DIET-SNN's spike function:
        ``out = zeros_like(x); out[x > 0] = 1.0``) is ``where(mask, c, 0)``: recorded as
        ``mask.to(dtype) * c`` and this proxy rebound to it, so every later read of ``out``
        sees the written value. Any other item assignment is refused (trace.py names it)."""
        old = self.node
        mask, base = _value(index), old.meta.get("value", MISSING)
        if not (isinstance(index, fx.Proxy) and isinstance(value, (int, float)) and not isinstance(value, bool)
                and isinstance(mask, torch.Tensor) and mask.dtype == torch.bool and isinstance(base, torch.Tensor)
                and mask.shape == base.shape and _fresh_zeros(old)):
            raise TypeError(f"'{type(self).__name__}' object does not support item assignment")
        out = self.tracer.create_proxy("call_method", "to", (index, base.dtype), {})
        if value != 1:
            out = out * float(value)
        self.node = out.node
        while old is not None and not old.users:   # the zeros (and .clone()/.detach() of them) are dead now
            inputs = old.all_input_nodes
            old.graph.erase_node(old)
            old = inputs[0] if len(inputs) == 1 and inputs[0].op != "placeholder" else None

    def item(self) -> Any:
        raise DataDependent(f"forward() reads a tensor value (`.item()` of `{self.node.format_node()}`)")

    def tolist(self) -> Any:
        raise DataDependent(f"forward() reads tensor values (`.tolist()` of `{self.node.format_node()}`)")


class ShapeTracer(fx.Tracer):
    """Traces ``root`` for concrete ``inputs`` (meta tensors), evaluating every operation
    on ``meta_root`` (a meta copy of ``root``). ``leaf(m)`` says which modules stay units."""

    def __init__(self, meta_root: nn.Module, leaf: Callable[[nn.Module], bool],
                 inputs: list[torch.Tensor]) -> None:
        super().__init__()
        self.meta_modules = dict(meta_root.named_modules())
        self.meta_root = meta_root
        self.leaf = leaf
        self.inputs = list(inputs)
        self.elementwise: Callable[[nn.Module], bool] = lambda m: False
        # modules known to return a tensor shaped and typed as their input (stock neurons):
        # their meta output is made, not computed (a neuron's Python costs ~0.2 ms a call)
        self.passthrough: Callable[[nn.Module], bool] = lambda m: False
        self._dtypes: dict[str, torch.dtype | None] = {}
        self._evaluating = False
        self.first_error: Exception | None = None   # the first operation that failed on meta values

    def proxy(self, node: fx.Node) -> fx.Proxy:
        return ShapedProxy(node, self)

    def create_arg(self, a: Any) -> Any:
        if isinstance(a, np.generic):   # np.prod(w.shape[1:]) in forward() (spikingjelly's WSConv2d)
            return a.item()
        return super().create_arg(a)

    def is_leaf_module(self, m: nn.Module, qualname: str) -> bool:
        return self.leaf(m)

    def getattr(self, attr: str, attr_val: Any, parameter_proxy_cache: dict[str, fx.Proxy]) -> Any:
        # fx patches every module's __getattr__ while tracing, so a meta module reading its own
        # weights in _evaluate would search the root's parameters for a proxy (never found)
        if self._evaluating:
            return attr_val
        return super().getattr(attr, attr_val, parameter_proxy_cache)

    def call_module(self, m: nn.Module, forward: Callable[..., Any], args: tuple, kwargs: dict) -> Any:
        if self._evaluating:   # a meta module running inside _evaluate: just run it
            return forward(*args, **kwargs)
        try:
            self.path_of_module(m)
        except NameError:   # a module built in forward(), e.g. a slice features[:2]: trace it through
            if self.elementwise(m):   # a neuron made anew at every call has no memory to compile
                raise SnnCompileError(
                    f"forward() builds a {type(m).__module__}.{type(m).__qualname__} neuron at every call: it "
                    "starts from rest each time, which a compiled (stateful) neuron cannot reproduce",
                    "create the neuron once in __init__ and call it in forward()", EXIT_UNSUPPORTED) from None
            return forward(*args, **kwargs)
        return super().call_module(m, forward, args, kwargs)

    def create_proxy(self, kind: str, target: Any, args: tuple, kwargs: dict, name: str | None = None,
                     type_expr: Any | None = None, proxy_factory_fn: Any = None) -> fx.Proxy:
        proxy = super().create_proxy(kind, target, args, kwargs, name, type_expr, proxy_factory_fn)
        proxy.node.meta["value"] = self._evaluate(kind, target, args, kwargs)
        if target in _COMPARISONS:   # a spike may be made here: where, for reports of inline neurons
            proxy.node.meta["site"] = user_site()
        return proxy

    def _evaluate(self, kind: str, target: Any, args: tuple, kwargs: dict) -> Any:
        if kind == "placeholder":
            return self.inputs.pop(0) if self.inputs else MISSING
        if kind == "get_attr":
            obj: Any = self.meta_root
            try:
                for part in str(target).split("."):
                    obj = getattr(obj, part)
            except AttributeError:
                return MISSING
            return obj
        a = fx.node.map_aggregate(args, _value)
        k = fx.node.map_aggregate(kwargs, _value)
        if any(v is MISSING for v in flat_values(a) + flat_values(k)):
            return MISSING
        self._evaluating = True
        try:
            with torch.no_grad():
                if kind == "call_function":
                    same = _same_operands(target, a, k)
                    return target(*a, **k) if same is None else same
                if kind == "call_method":
                    same = _reduced(target, a, k)
                    return getattr(a[0], target)(*a[1:], **k) if same is None else same
                if kind == "call_module":
                    return self._run_module(target, a, k)
        except Exception as exc:
            self.first_error = self.first_error or exc
            return MISSING
        finally:
            self._evaluating = False
        return MISSING


    def _run_module(self, target: str, a: tuple, k: dict) -> Any:
        mod = self.meta_modules[target]
        if target not in self._dtypes:   # meta modules do not change while tracing
            self._dtypes[target] = next((t.dtype for t in mod.parameters() if t.is_floating_point()), None)
        dtype = self._dtypes[target]
        if dtype is not None:   # snnTorch's spikes are float32 in a float64 model
            a = tuple(v.to(dtype) if isinstance(v, torch.Tensor) and v.is_floating_point() else v for v in a)
        shaped = _same_shape(mod, a, k)
        if shaped is not None:
            return shaped
        if self.passthrough(mod) and len(a) == 1 and not k and isinstance(a[0], torch.Tensor) \
                and a[0].is_floating_point():
            return _like(a[0])
        try:
            return mod(*a, **k)
        except Exception:
            if self.elementwise(mod) and a and isinstance(a[0], torch.Tensor):
                return _like(a[0])   # a neuron: one output per input element
            raise


def _like(x: torch.Tensor) -> torch.Tensor:
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


# x + y on two contiguous float tensors of one shape and dtype, or on a float tensor and a Python
# number: the result is shaped and typed as the tensor (the meta kernels of elementwise ops are
# Python decompositions, ~0.2 ms a call, and the first imports torch._dynamo and sympy)
_ELEMENTWISE = (operator.add, operator.sub, operator.mul, operator.truediv, torch.add, torch.sub, torch.mul,
                torch.div)


# x += y on two float tensors of one shape and dtype: x itself (an in-place operator returns
# its target; the meta kernel would import torch's symbolic shapes to check the broadcast)
_IN_PLACE = (operator.iadd, operator.isub, operator.imul)


def _same_operands(target: Any, args: tuple, kwargs: dict) -> torch.Tensor | None:
    if target is operator.matmul or target is torch.matmul:
        return None if kwargs or len(args) != 2 else _matmul_shape(*args)
    in_place = any(target is f for f in _IN_PLACE)
    if kwargs or len(args) != 2 or not (in_place or any(target is f for f in _ELEMENTWISE)):
        return None
    x, y = args
    if not in_place and type(x) in (int, float) and isinstance(y, torch.Tensor):
        x, y = y, x   # 2.0 * t: the same result shape and dtype as t * 2.0
    if isinstance(x, torch.Tensor) and x.is_floating_point() and type(y) in (int, float) and not in_place:
        return _like(x)   # a Python number keeps a float tensor's dtype (torch's type promotion)
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


def _reduced(method: str, args: tuple, kwargs: dict) -> torch.Tensor | None:
    """``x.mean(dim)`` / ``x.sum(dim)`` (keepdim as given) of a float tensor over int axes: a
    contiguous tensor of the reduced shape, as torch's meta reduction makes it (whose Python
    reference imports torch's symbolic shapes and sympy on a first trace)."""
    if method not in ("mean", "sum") or len(args) > 3 or set(kwargs) - {"dim", "keepdim"}:
        return None
    x, dim, keepdim = (*args, *[None] * (3 - len(args)))
    dim, keepdim = kwargs.get("dim", dim), kwargs.get("keepdim", keepdim)
    if not (isinstance(x, torch.Tensor) and x.is_floating_point() and x.dim() > 0) or type(keepdim) not in (bool, type(None)):
        return None
    dims = (dim,) if type(dim) is int else tuple(dim) if isinstance(dim, (tuple, list)) and dim else None
    if dims is None or not all(type(d) is int and -x.dim() <= d < x.dim() for d in dims):
        return None
    axes = {d % x.dim() for d in dims}
    if len(axes) != len(dims):
        return None   # an axis twice: torch raises
    shape = [1 if i in axes else n for i, n in enumerate(x.shape) if keepdim or i not in axes]
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


def _same_shape(mod: nn.Module, args: tuple, kwargs: dict) -> torch.Tensor | None:
    """The meta output of an eval-mode batch norm, convolution, linear layer or 2-d (adaptive) pooling (torch's, or
    spikingjelly's wrapper in either step mode) on a valid input, without running it; None:
    run the module (it then also raises what it raises on an invalid input)."""
    if kwargs or len(args) != 1 or not isinstance(args[0], torch.Tensor) or not args[0].is_floating_point():
        return None
    x, cls = args[0], type(mod)
    if not (cls.__module__.startswith("torch.nn.modules") or (cls.__module__.startswith(_SJ_LAYER)
                                                              and cls.__name__ in _SJ_STOCK)):
        return None   # a subclass (spikingjelly's WSConv2d) may compute something else: run it
    weight = getattr(mod, "weight", None)
    if isinstance(weight, torch.Tensor) and weight.dtype != x.dtype:
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


def _batch_norm_shape(mod: nn.Module, x: torch.Tensor, lead: int) -> torch.Tensor | None:
    ranks = next((r for cls, r in _BN_RANKS.items() if isinstance(mod, cls)), None)
    if ranks is None or mod.training or x.dim() - lead + 1 not in ranks or x.shape[lead] != mod.num_features:
        return None
    if mod.running_mean is not None and mod.running_mean.dtype != x.dtype:
        return None
    return _like(x)


def _conv_shape(mod: nn.Module, x: torch.Tensor, lead: int) -> torch.Tensor | None:
    """out = ⌊(n + 2p − d·(k − 1) − 1) / s⌋ + 1 per spatial axis (torch's Conv*d), batched input only."""
    dims = len(mod.kernel_size)
    if isinstance(mod.padding, str) or x.dim() != lead + 1 + dims or x.shape[lead] != mod.in_channels:
        return None
    out = [(n + 2 * p - d * (k - 1) - 1) // s + 1 for n, k, s, p, d in
           zip(x.shape[lead + 1:], mod.kernel_size, mod.stride, mod.padding, mod.dilation)]
    if min(out) < 1:
        return None
    return torch.empty((*x.shape[:lead], mod.out_channels, *out), dtype=x.dtype, device=x.device)


def _pool_shape(mod: nn.MaxPool2d | nn.AvgPool2d, x: torch.Tensor, lead: int) -> torch.Tensor | None:
    """out = ⌊(n + 2p − d·(k − 1) − 1 (+ s − 1 with ceil_mode)) / s⌋ + 1 per axis, less one
    where ceil_mode starts the last window in the right padding (torch's pooling_output_shape);
    batched contiguous input and the parameters torch accepts only. (The meta kernel of 2-d
    pooling imports torch's symbolic-shape machinery and sympy: ~0.3–1.3 s on a first trace.)"""
    if getattr(mod, "return_indices", False) or x.dim() != lead + 3 or not x.is_contiguous() or 0 in x.shape:
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
        if kk < 1 or ss < 1 or dd < 1 or not 0 <= pp <= ((kk - 1) * dd + 1) // 2:
            return None
        o = (n + 2 * pp - dd * (kk - 1) - 1 + (ss - 1 if mod.ceil_mode else 0)) // ss + 1
        if mod.ceil_mode and (o - 1) * ss >= n + pp:
            o -= 1
        if o < 1:
            return None
        out.append(o)
    return torch.empty((*x.shape[:lead + 1], *out), dtype=x.dtype, device=x.device)


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


def flat_values(x: Any) -> list[Any]:
    """Every leaf of a nested argument (tuples, lists, dicts, slices) in order."""
    out: list[Any] = []
    fx.node.map_aggregate(x, lambda v: out.append(v) or v)
    return out


def values_of(graph: fx.Graph) -> dict[str, Any]:
    """fx node name → value recorded while tracing (meta tensor, Python value or MISSING)."""
    return {n.name: n.meta.get("value", MISSING) for n in graph.nodes}


GETITEM = operator.getitem



_COMPARISONS = {operator.gt, operator.ge, torch.gt, torch.ge, "gt", "ge", "__gt__", "__ge__"}
_OURS = (str(Path(torch.__file__).parent) + os.sep, str(Path(__file__).parents[1]) + os.sep)


def user_site() -> str | None:
    """``Class.method (file.py:line)`` of the innermost module method of the user's on the call
    stack (the forward() a comparison is written in; a custom autograd Function's forward,
    which has no module, is skipped for its caller); None outside the user's code."""
    frame = sys._getframe(1)
    while frame is not None:
        me = frame.f_locals.get("self")
        if isinstance(me, nn.Module) and not frame.f_code.co_filename.startswith(_OURS):
            return (f"{type(me).__qualname__}.{frame.f_code.co_name} "
                    f"({Path(frame.f_code.co_filename).name}:{frame.f_lineno})")
        frame = frame.f_back
    return None


_ZEROS = {torch.zeros_like, torch.zeros, "zeros_like", "new_zeros"}
_SAME = {"clone", "detach", "contiguous"}   # the same values in a new tensor


def _fresh_zeros(n: fx.Node) -> bool:
    """``n`` is a tensor of zeros made in forward() (``zeros_like(x)``, ``x.new_zeros(...)``,
    possibly ``.clone()``/``.detach()``-ed) that nothing has read yet: writing into it
    changes no other value of the graph."""
    if n.users:
        return False
    while n.op == "call_method" and n.target in _SAME and isinstance(n.args[0], fx.Node) \
            and len(n.args[0].users) == 1:
        n = n.args[0]
    return n.op in ("call_function", "call_method") and n.target in _ZEROS
