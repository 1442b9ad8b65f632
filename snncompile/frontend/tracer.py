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
from snncompile.frontend.shape_rules import like, method_output, module_output, same_operands

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
                    same = same_operands(target, a, k)
                    return target(*a, **k) if same is None else same
                if kind == "call_method":
                    same = method_output(target, a, k)
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
        shaped = module_output(mod, a, k)
        if shaped is not None:
            return shaped
        if self.passthrough(mod) and len(a) == 1 and not k and isinstance(a[0], torch.Tensor) \
                and a[0].is_floating_point():
            return like(a[0])
        try:
            return mod(*a, **k)
        except Exception:
            if self.elementwise(mod) and a and isinstance(a[0], torch.Tensor):
                return like(a[0])   # a neuron: one output per input element
            raise


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
