"""Trace an ``nn.Module`` with torch.fx (spiking neurons are leaves) into the IR."""

from __future__ import annotations

import copy
import math
import operator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import fx, nn

from snncompile.errors import EXIT_UNSUPPORTED, EXIT_USAGE, SnnCompileError
from snncompile.ir import (
    Add,
    BatchNorm,
    Conv2d,
    Input,
    IRGraph,
    Linear,
    Mask,
    MatMul,
    Neuron,
    Output,
    Pool2d,
    Reduce,
    Reshape,
    Scale,
    Transpose,
)

try:  # spikingjelly is optional at import time: plain-torch models need none of it
    from spikingjelly.activation_based import layer as sj_layer
    from spikingjelly.activation_based import neuron as sj_neuron

    NEURON_TYPES: tuple[type, ...] = (sj_neuron.IFNode, sj_neuron.LIFNode,
                                      sj_neuron.ParametricLIFNode)
    SEQ_CONTAINERS: tuple[type, ...] = (sj_layer.SeqToANNContainer,)
    PASS_THROUGH: tuple[type, ...] = (nn.Dropout, nn.Identity, sj_layer.Dropout)
    SJ_PREFIX = "spikingjelly.activation_based"
except ImportError:  # pragma: no cover
    NEURON_TYPES, SEQ_CONTAINERS, SJ_PREFIX = (), (), "\0"
    PASS_THROUGH = (nn.Dropout, nn.Identity)

# Shape-probe sizes: primes unlikely to equal a feature dimension, so the time and batch
# axes can be told apart from the per-sample axes in every recorded shape.
_PROBE_T, _PROBE_B = 3, 5

SUPPORTED = (
    "spikingjelly.activation_based neuron.IFNode, neuron.LIFNode, neuron.ParametricLIFNode; "
    "Conv2d, Linear, BatchNorm1d, BatchNorm2d, MaxPool2d, AvgPool2d, Flatten, Dropout, "
    "Identity (torch.nn or spikingjelly layer.*), layer.SeqToANNContainer, nn.Sequential; "
    "residual `+`, flatten/view/reshape, and mean/sum over time at the output"
)


def _unsupported(what: str, where: str) -> SnnCompileError:
    return SnnCompileError(f"unsupported {what} at `{where}`",
                           f"supported: {SUPPORTED}", EXIT_UNSUPPORTED)


class _Tracer(fx.Tracer):
    def is_leaf_module(self, m: nn.Module, qualname: str) -> bool:
        if isinstance(m, NEURON_TYPES + SEQ_CONTAINERS):
            return True
        if type(m).__module__.startswith(SJ_PREFIX):
            return True
        if isinstance(m, nn.Sequential):
            return False
        return super().is_leaf_module(m, qualname)


@dataclass
class TraceResult:
    graph: IRGraph
    step_mode: str                 # "s": model called once per step; "m": takes [T, B, ...]
    neuron_sources: dict[str, str]  # IR neuron node → module path in the source model


def _custom_modules(model: nn.Module) -> list[tuple[str, str]]:
    """Modules defined outside torch and spikingjelly (path, qualified class), root excluded."""
    out = []
    for path, m in model.named_modules():
        mod = type(m).__module__
        if path and not (mod.startswith("torch.") or mod.startswith(SJ_PREFIX)):
            out.append((path, f"{mod}.{type(m).__qualname__}"))
    return out


_EQUATIONS = ("neuronal_charge", "neuronal_fire", "neuronal_reset")   # replaced: other dynamics
_STEPS = ("single_step_forward", "multi_step_forward", "forward")       # replaced without super(): too


def _redefined(cls: type) -> list[str]:
    own = vars(cls)
    out = [f for f in _EQUATIONS if f in own]
    out += [f for f in _STEPS if f in own and "super" not in getattr(own[f], "__code__", compile("", "", "exec")).co_names]
    return out


def check_neurons(model: nn.Module) -> None:
    """Neurons are compiled by their class's known equations: a subclass that redefines
    them, or parameters that are not finite, would compile to the wrong network."""
    for path, m in model.named_modules():
        if not isinstance(m, NEURON_TYPES):
            continue
        known = next(c for c in type(m).__mro__ if c in NEURON_TYPES)
        for cls in type(m).__mro__:
            if cls is known:
                break
            changed = _redefined(cls)
            if changed:
                raise SnnCompileError(
                    f"neuron `{path}` is a {type(m).__module__}.{type(m).__qualname__}, a subclass of "
                    f"{known.__name__} that redefines {', '.join(changed)}: its equations are not "
                    f"{known.__name__}'s", f"use spikingjelly's {known.__name__} itself (or a subclass that "
                    "only adds attributes); snncompile compiles the equations it knows", EXIT_UNSUPPORTED)
        for attr in ("v_threshold", "v_reset", "tau"):
            value = getattr(m, attr, None)
            if isinstance(value, (int, float)) and not math.isfinite(value):
                raise SnnCompileError(f"neuron `{path}` has {attr} = {value}",
                                      f"give `{path}` a finite {attr}", EXIT_USAGE)
        w = getattr(m, "w", None)
        if isinstance(w, torch.Tensor) and not torch.isfinite(w).all():
            raise SnnCompileError(f"neuron `{path}` has a non-finite decay parameter w",
                                  "check the checkpoint's weights", EXIT_USAGE)


def step_mode_of(model: nn.Module) -> str:
    modes = {getattr(m, "step_mode", None) for m in model.modules()
             if isinstance(m, NEURON_TYPES) or type(m).__module__.startswith(SJ_PREFIX)}
    modes.discard(None)
    if not any(isinstance(m, NEURON_TYPES) for m in model.modules()):
        custom = _custom_modules(model)
        if custom:
            path, cls = custom[0]
            raise SnnCompileError(f"`{path}` is a {cls}, a module snncompile does not know (and the model has "
                                  "no spikingjelly neuron): its equations cannot be compiled",
                                  f"if {cls.rsplit('.', 1)[-1]} is a spiking neuron, build it from "
                                  "spikingjelly's IFNode, LIFNode or ParametricLIFNode (their equations are "
                                  "in docs/design.md); supported layers: " + SUPPORTED, EXIT_UNSUPPORTED)
        acts = [f"`{p}` ({type(m).__name__})" for p, m in model.named_modules()
                if type(m).__module__ == "torch.nn.modules.activation"]
        found = f"; it has non-spiking activations {', '.join(acts[:4])}" if acts else ""
        raise SnnCompileError("the model has no spiking neurons (IFNode, LIFNode, ParametricLIFNode)" + found,
                              "snncompile compiles spiking networks: replace the activations by spiking "
                              f"neurons (e.g. ANN-to-SNN conversion); supported: {SUPPORTED}",
                              EXIT_UNSUPPORTED)
    if len(modes) > 1:
        raise SnnCompileError("the model mixes single-step ('s') and multi-step ('m') modules",
                              "call functional.set_step_mode(model, 'm') (or 's') before saving",
                              EXIT_UNSUPPORTED)
    return modes.pop() if modes else "s"


class _ShapeRecorder(fx.Interpreter):
    def __init__(self, gm: fx.GraphModule) -> None:
        super().__init__(gm)
        self.shapes: dict[str, tuple[int, ...]] = {}
        self.values: dict[str, Any] = {}

    def run_node(self, n: fx.Node) -> Any:
        out = super().run_node(n)
        if isinstance(out, torch.Tensor):
            self.shapes[n.name] = tuple(out.shape)
        else:
            self.values[n.name] = out
        return out


def _pair(v: Any) -> tuple[int, int]:
    return (int(v), int(v)) if isinstance(v, int) else (int(v[0]), int(v[1]))


def _np(t: torch.Tensor | None) -> np.ndarray | None:
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


class _Converter:
    def __init__(self, gm: fx.GraphModule, rec: _ShapeRecorder, mode: str, name: str,
                 probe_modules: dict[str, nn.Module]) -> None:
        self.gm, self.rec, self.mode = gm, rec, mode
        self.modules = dict(gm.named_modules())   # the model's own modules: weights are read here
        self.probe_modules = probe_modules         # the same modules on the probe's device
        self.g = IRGraph(name)
        self.env: dict[str, str] = {}           # fx node name → IR node name
        self.time_reduced: set[str] = set()
        self.neuron_sources: dict[str, str] = {}
        self.neuron_calls: dict[str, int] = {}
        self.masks: dict[str, np.ndarray] = {}   # module path → explicit synapse mask
        self.consts: dict[str, torch.Tensor] = {}  # get_attr fx node → buffer value
        self.consts_used: set[str] = set()          # buffer names applied as keep-masks

    # per-sample shape of a recorded fx value
    def sample_shape(self, n: fx.Node) -> tuple[int, ...]:
        sh = self.rec.shapes[n.name]
        if self.mode == "s":
            return sh[1:]
        if sh[:2] == (_PROBE_T, _PROBE_B):
            return sh[2:]
        if sh and sh[0] in (_PROBE_T * _PROBE_B, _PROBE_B):
            if sh[0] == _PROBE_B:
                self.time_reduced.add(n.name)
            return sh[1:]
        raise SnnCompileError(f"cannot tell the time and batch axes of `{n.format_node()}` "
                              f"(shape {sh} for T={_PROBE_T}, B={_PROBE_B})",
                              "keep tensors as [T, B, ...] or [T*B, ...] between layers",
                              EXIT_UNSUPPORTED)

    def add(self, base: str, node: Any, inputs: list[str]) -> str:
        base = base.replace(".", "_")
        if base[:1].isdigit():  # Sequential indices: "0" → "conv2d_0"
            base = f"{node.op}_{base}"
        return self.g.add(self.g.unique_name(base), node, inputs)

    def ir_input(self, arg: Any, where: str) -> str:
        if not isinstance(arg, fx.Node) or arg.name not in self.env:
            raise _unsupported(f"non-tensor operand {arg!r}", where)
        return self.env[arg.name]

    # -- modules -----------------------------------------------------------------------
    def module(self, m: nn.Module, path: str, src: str, out_shape: tuple[int, ...]) -> str:
        if isinstance(m, SEQ_CONTAINERS) or isinstance(m, nn.Sequential):
            children = list(m.named_children())
            if not children:
                return src
            for i, (cname, child) in enumerate(children):
                last = i == len(children) - 1
                shape = out_shape if last else self._child_shape(child, f"{path}.{cname}", src)
                src = self.module(child, f"{path}.{cname}", src, shape)
            return src
        in_node = self.g.node(src)
        if isinstance(m, NEURON_TYPES):
            return self.neuron(m, path, src, in_node.shape)
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            weight, mask = self.synapse_weights(m, path)
        if isinstance(m, nn.Conv2d):
            if m.padding_mode != "zeros" or isinstance(m.padding, str):
                if not (isinstance(m.padding, str) and m.padding == "valid"):
                    raise _unsupported(f"Conv2d padding {m.padding!r}/{m.padding_mode}", path)
            pad = (0, 0) if isinstance(m.padding, str) else _pair(m.padding)
            node = Conv2d(out_shape, path, weight=weight, bias=_np(m.bias),
                          stride=_pair(m.stride), padding=pad, dilation=_pair(m.dilation),
                          groups=m.groups, mask=mask)
            return self.add(path, node, [src])
        if isinstance(m, nn.Linear):
            node = Linear(out_shape, path, weight=weight, bias=_np(m.bias), mask=mask)
            return self.add(path, node, [src])
        if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
            if not m.track_running_stats or m.running_mean is None:
                raise _unsupported("BatchNorm without running statistics", path)
            c = m.num_features
            w = _np(m.weight) if m.affine else np.ones(c)
            b = _np(m.bias) if m.affine else np.zeros(c)
            if not in_node.shape or in_node.shape[0] != c:
                raise _unsupported(f"BatchNorm over axis of size {in_node.shape[:1]} "
                                   f"(expects channels first, {c})", path)
            node = BatchNorm(out_shape, path, mean=_np(m.running_mean), var=_np(m.running_var),
                             weight=w, bias=b, eps=float(m.eps))
            return self.add(path, node, [src])
        if isinstance(m, (nn.MaxPool2d, nn.AvgPool2d)):
            if m.ceil_mode:
                raise _unsupported("pooling with ceil_mode=True", path)
            if isinstance(m, nn.MaxPool2d):
                if _pair(m.dilation) != (1, 1) or m.return_indices:
                    raise _unsupported("MaxPool2d with dilation or return_indices", path)
                node = Pool2d(out_shape, path, mode="max", kernel=_pair(m.kernel_size),
                              stride=_pair(m.stride or m.kernel_size), padding=_pair(m.padding))
            else:
                if m.divisor_override:
                    raise _unsupported("AvgPool2d with divisor_override", path)
                node = Pool2d(out_shape, path, mode="avg", kernel=_pair(m.kernel_size),
                              stride=_pair(m.stride or m.kernel_size), padding=_pair(m.padding),
                              count_include_pad=bool(m.count_include_pad))
            return self.add(path, node, [src])
        if isinstance(m, nn.Flatten):
            return self.reshape(src, out_shape, path, path)
        if isinstance(m, PASS_THROUGH):  # identity at inference
            return src
        raise SnnCompileError(
            f"unsupported layer `{path}` of type {type(m).__module__}.{type(m).__name__}",
            f"supported: {SUPPORTED}", EXIT_UNSUPPORTED)

    def synapse_weights(self, m: nn.Module, path: str) -> tuple[np.ndarray, np.ndarray | None]:
        """Weights and explicit pruning mask (torch.nn.utils.prune or --masks), if any."""
        mask = self.masks.get(path)
        orig = getattr(m, "weight_orig", None)
        pmask = getattr(m, "weight_mask", None)
        if isinstance(orig, torch.Tensor) and isinstance(pmask, torch.Tensor):
            pm = pmask.detach().cpu().numpy() != 0
            mask = pm if mask is None else (mask & pm)
            weight = _np(orig) * pm
        else:
            weight = _np(m.weight)
        if mask is not None:
            weight = np.where(mask, weight, 0.0)
        return weight, mask

    def _child_shape(self, child: nn.Module, path: str, src: str) -> tuple[int, ...]:
        """Per-sample output shape of ``child`` applied to ``src`` (probed like the model)."""
        shape = self.g.node(src).shape
        if isinstance(child, NEURON_TYPES + PASS_THROUGH):
            return shape
        fn = self.probe_modules.get(path, child)
        ref = next((t for t in fn.parameters() if t.is_floating_point()), None)
        probe = (torch.zeros((2, *shape)) if ref is None else
                 torch.zeros((2, *shape), dtype=ref.dtype, device=ref.device))
        with torch.no_grad():
            if type(fn).__module__.startswith(SJ_PREFIX) and hasattr(fn, "step_mode"):
                saved = fn.step_mode
                fn.step_mode = "s"
                try:
                    return tuple(fn(probe).shape[1:])
                finally:
                    fn.step_mode = saved
            return tuple(fn(probe).shape[1:])

    def neuron(self, m: nn.Module, path: str, src: str, shape: tuple[int, ...]) -> str:
        self.neuron_calls[path] = self.neuron_calls.get(path, 0) + 1
        if self.neuron_calls[path] > 1:
            raise _unsupported("neuron module called more than once (it would share state)", path)
        v_reset = None if m.v_reset is None else float(m.v_reset)
        common = dict(v_threshold=float(m.v_threshold), v_reset=v_reset)
        if isinstance(m, sj_neuron.ParametricLIFNode):
            q = float(m.w.detach().to(torch.float64).sigmoid())
            node = Neuron(shape, path, model="plif", decay=q, decay_input=bool(m.decay_input), **common)
        elif isinstance(m, sj_neuron.LIFNode):
            node = Neuron(shape, path, model="lif", tau=float(m.tau),
                          decay_input=bool(m.decay_input), **common)
        else:
            node = Neuron(shape, path, model="if", **common)
        name = self.add(path, node, [src])
        self.neuron_sources[name] = path
        return name

    def reshape(self, src: str, shape: tuple[int, ...], where: str, base: str) -> str:
        if tuple(shape) == tuple(self.g.node(src).shape):
            return src
        if int(np.prod(shape)) != self.g.node(src).size:
            raise _unsupported(f"reshape {self.g.node(src).shape} → {shape} that mixes samples", where)
        return self.add(base, Reshape(tuple(shape), where), [src])

    # -- functions -----------------------------------------------------------------------
    def call(self, n: fx.Node) -> str | None:
        fn = n.target
        where = n.format_node()
        name = fn if isinstance(fn, str) else getattr(fn, "__name__", str(fn))
        tensor_args = [a for a in n.args if isinstance(a, fx.Node) and a.name in self.env]
        if n.name not in self.rec.shapes:
            return None  # a Python value (sizes, their arithmetic): it only feeds shape arguments
        if name in ("size", "dim") or (fn is getattr and n.args[1] in ("shape", "dtype", "device")):
            return None  # a Python value; only feeds shape arguments
        if fn is operator.getitem and n.args[0].name not in self.env:
            return None
        if name in ("add", "__add__", "iadd") or fn in (operator.add, operator.iadd, torch.add):
            if len(tensor_args) != 2 or n.kwargs:
                raise _unsupported("addition with a constant or scaled operand", where)
            a, b = (self.env[x.name] for x in tensor_args)
            shape = self.sample_shape(n)
            if self.g.node(a).shape != self.g.node(b).shape:
                raise _unsupported("broadcasting addition", where)
            return self.add("add", Add(shape, where), [a, b])
        if name in ("mul", "__mul__", "mul_") or fn in (operator.mul, torch.mul):
            consts = [a for a in n.args if isinstance(a, fx.Node) and a.name in self.consts]
            if len(consts) == 0 and len(tensor_args) == 1:
                return self._scale(n, tensor_args[0], where)
            if len(consts) == 0 and len(tensor_args) == 2:  # spike ⊙ spike (SDSA)
                a, b = (self.env[x.name] for x in tensor_args)
                return self.add("hadamard", MatMul(self.sample_shape(n), where, mode="hadamard"), [a, b])
            if len(tensor_args) != 1 or len(consts) != 1:
                raise _unsupported("multiplication other than by a static 0/1 keep-mask buffer "
                                   "or a constant scalar", where)
            value = self.consts[consts[0].name].detach().to(torch.float64).cpu().numpy()
            if not np.isin(value, (0.0, 1.0)).all():
                raise _unsupported("multiplication by a buffer that is not a 0/1 mask", where)
            full = self.rec.shapes[n.name]
            lead = len(full) - len(self.sample_shape(n))
            keep = np.broadcast_to(value, full)[(0,) * lead] != 0
            src = self.env[tensor_args[0].name]
            self.consts_used.add(str(consts[0].target))
            return self.add(str(consts[0].target).replace(".", "_"),
                            Mask(tuple(keep.shape), str(consts[0].target), keep=keep.copy()), [src])
        if name in ("flatten", "view", "reshape", "contiguous"):
            src = self.ir_input(n.args[0], where)
            if n.args[0].name in self.time_reduced:
                self.time_reduced.add(n.name)
            return self.reshape(src, self.sample_shape(n), where, n.name)
        if name in ("mean", "sum"):
            dims = n.args[1] if len(n.args) > 1 else n.kwargs.get("dim")
            if self.mode == "m" and dims in (0, (0,), [0]):
                self.time_reduced.add(n.name)
                return self.ir_input(n.args[0], where)
            src = self.ir_input(n.args[0], where)
            if isinstance(dims, (tuple, list)) and len(dims) == 1:
                dims = dims[0]
            if not isinstance(dims, int):
                raise _unsupported(f"{name} over {dims!r}", where)
            axis = self.sample_axis(n.args[0], dims, where)
            if n.args[0].name in self.time_reduced:
                self.time_reduced.add(n.name)
            keepdim = bool(n.kwargs.get("keepdim", n.args[2] if len(n.args) > 2 else False))
            return self.add(name, Reduce(self.sample_shape(n), where, mode=name, axis=axis,
                                         keepdim=keepdim), [src])
        if name in ("transpose", "permute", "swapaxes", "t"):
            src = self.ir_input(n.args[0], where)
            rank = len(self.g.node(src).shape)
            if name == "permute":
                dims = n.args[1:] if len(n.args) > 2 else n.args[1]
                full = [self.sample_axis(n.args[0], d, where) for d in dims[-rank:]]
                lead = len(dims) - rank
                if list(dims[:lead]) != list(range(lead)):
                    raise _unsupported("permute that moves the time or batch axis", where)
                perm = tuple(full)
            else:
                a = self.sample_axis(n.args[0], n.args[1], where)
                b = self.sample_axis(n.args[0], n.args[2], where)
                perm_l = list(range(rank))
                perm_l[a], perm_l[b] = perm_l[b], perm_l[a]
                perm = tuple(perm_l)
            if perm == tuple(range(rank)):
                return src
            return self.add("transpose", Transpose(self.sample_shape(n), where, perm=perm), [src])
        if name in ("matmul", "__matmul__") or fn in (operator.matmul, torch.matmul):
            if len(tensor_args) != 2:
                raise _unsupported("matmul with a constant operand (use nn.Linear)", where)
            a, b = (self.env[x.name] for x in tensor_args)
            return self.add("matmul", MatMul(self.sample_shape(n), where), [a, b])
        if name in ("mul", "__mul__", "truediv", "div", "__truediv__") or fn in (
                operator.mul, operator.truediv, torch.mul, torch.div):
            scalars = [a for a in n.args if isinstance(a, (int, float)) and not isinstance(a, bool)]
            if len(tensor_args) == 1 and len(scalars) == 1:
                f = float(scalars[0])
                if name in ("truediv", "div", "__truediv__") or fn in (operator.truediv, torch.div):
                    if n.args[0] is not tensor_args[0]:
                        raise _unsupported("division of a constant by a tensor", where)
                    f = 1.0 / f
                src = self.env[tensor_args[0].name]
                return self.add("scale", Scale(self.sample_shape(n), where, factor=f), [src])
        raise _unsupported(f"operation `{name}`", where)

    def _scale(self, n: fx.Node, arg: fx.Node, where: str) -> str:
        scalars = [a for a in n.args if isinstance(a, (int, float)) and not isinstance(a, bool)]
        if len(scalars) != 1:
            raise _unsupported("multiplication of two tensors (only spike matmul is supported)", where)
        return self.add("scale", Scale(self.sample_shape(n), where, factor=float(scalars[0])),
                        [self.env[arg.name]])

    def sample_axis(self, arg: fx.Node, dim: int, where: str) -> int:
        """Map a full-tensor axis to the per-sample axis (errors for time/batch axes)."""
        full = len(self.rec.shapes[arg.name])
        rank = len(self.sample_shape(arg))
        d = dim + full if dim < 0 else dim
        axis = d - (full - rank)
        if not 0 <= axis < rank:
            raise _unsupported(f"operation over the time/batch axis {dim}", where)
        return axis

    def _call_in_context(self, n: fx.Node) -> str | None:
        """``call`` with the module a failing operation sits in named (a hand-written neuron
        is traced into; its comparison is not what the user should read first)."""
        try:
            return self.call(n)
        except SnnCompileError as exc:
            stack = list((n.meta.get("nn_module_stack") or {}).values())
            custom = [(path, cls) for path, cls in stack
                      if isinstance(cls, type) and not (cls.__module__.startswith("torch.")
                                                        or cls.__module__.startswith(SJ_PREFIX))]
            if not custom:
                raise
            path, cls = custom[-1]
            raise SnnCompileError(
                f"`{path}` is a {cls.__module__}.{cls.__qualname__}, a module snncompile does not know: "
                f"{exc.message}", f"if {cls.__name__} is a spiking neuron, build it from spikingjelly's "
                "IFNode, LIFNode or ParametricLIFNode; otherwise " + exc.hint, exc.exit_code) from None

    def run(self) -> IRGraph:
        for n in self.gm.graph.nodes:
            if n.op == "placeholder":
                if self.g.of_type(Input):
                    raise _unsupported("model with more than one input", n.format_node())
                self.env[n.name] = self.add("input", Input(self.sample_shape(n), "input"), [])
            elif n.op == "call_module":
                m = self.modules[n.target]
                if n.name not in self.rec.shapes:  # every layer we compile returns one tensor
                    raise SnnCompileError(
                        f"unsupported layer `{n.target}` of type {type(m).__module__}.{type(m).__name__}",
                        f"supported: {SUPPORTED}", EXIT_UNSUPPORTED)
                src = self.ir_input(n.args[0], n.target) if n.args else None
                if src is None or len(n.args) != 1 or n.kwargs:
                    raise _unsupported("module call with several inputs", n.target)
                self.env[n.name] = self.module(m, n.target, src, self.sample_shape(n))
            elif n.op in ("call_function", "call_method"):
                out = self._call_in_context(n)
                if out is not None:
                    self.env[n.name] = out
            elif n.op == "get_attr":
                value = _fetch_attr(self.gm, n.target)
                if not isinstance(value, torch.Tensor):
                    raise _unsupported("non-tensor attribute used in forward()", n.target)
                self.consts[n.name] = value
            elif n.op == "output":
                arg = n.args[0]
                if isinstance(arg, (tuple, list)):
                    if len(arg) != 1:
                        raise _unsupported("model with several outputs", "output")
                    arg = arg[0]
                src = self.ir_input(arg, "output")
                node = self.g.node(src)
                reduced = arg.name in self.time_reduced
                self.g.output_time_reduced = bool(reduced)
                self.add("output", Output(node.shape, "output"), [src])
        return self.g


def trace_model(model: nn.Module, input_shape: tuple[int, ...], name: str = "model",
                masks: dict[str, np.ndarray] | None = None) -> TraceResult:
    """Trace ``model`` for per-sample input ``input_shape`` into an IR graph.

    ``masks``: explicit synapse masks by module path (from ``--masks``), kept in the IR.
    """
    mode = step_mode_of(model)
    check_neurons(model)
    try:
        gm = fx.GraphModule(model, _Tracer().trace(model))
    except Exception as exc:  # fx raises many types for data-dependent Python
        raise SnnCompileError(f"cannot trace the model with torch.fx: {type(exc).__name__}: {exc}",
                              "forward() must not branch on tensor values; "
                              "move such logic out of the model", EXIT_UNSUPPORTED) from None
    lead = (_PROBE_T, _PROBE_B) if mode == "m" else (_PROBE_B,)
    rec, probe_model = _record_shapes(model, gm.graph, lead, tuple(input_shape))
    conv = _Converter(gm, rec, mode, name, dict(probe_model.named_modules()))
    conv.masks = dict(masks or {})
    graph = conv.run()
    for attr in ("patch_mask", "token_mask"):
        buf = getattr(model, attr, None)
        if isinstance(buf, torch.Tensor) and attr not in conv.consts_used:
            graph.patch_mask = buf.detach().cpu().numpy().astype(bool)
    graph.step_mode, graph.input_shape = mode, tuple(int(d) for d in input_shape)
    return TraceResult(graph, mode, conv.neuron_sources)


def _fetch_attr(root: nn.Module, target: str):
    obj = root
    for part in target.split("."):
        obj = getattr(obj, part)
    return obj


def detach_pruned(model: nn.Module) -> None:
    """torch.nn.utils.prune recomputes ``weight`` (= weight_orig·mask) with a grad_fn, which
    deepcopy refuses; a detached copy of the same values is all inference needs."""
    for m in model.modules():
        w = m.__dict__.get("weight")
        if isinstance(w, torch.Tensor) and w.grad_fn is not None and hasattr(m, "weight_orig"):
            m.weight = w.detach()


def _dtype_of(model: nn.Module) -> torch.dtype:
    return next((t.dtype for t in model.parameters() if t.is_floating_point()), torch.float32)


def _meta_copy(model: nn.Module) -> nn.Module:
    """The model with every tensor on the meta device: shapes without storage, so probing a
    paper-size model costs neither a copy of its weights nor its activations."""
    detach_pruned(model)
    memo: dict[int, Any] = {}
    for m in model.modules():
        for t in m._parameters.values():
            if t is not None:
                memo[id(t)] = nn.Parameter(t.detach().to("meta"), requires_grad=t.requires_grad)
        for t in [*m._buffers.values(), *m.__dict__.values()]:
            if isinstance(t, torch.Tensor) and id(t) not in memo:
                memo[id(t)] = t.detach().to("meta")
    return copy.deepcopy(model, memo).eval()


def _record_shapes(model: nn.Module, graph: fx.Graph, lead: tuple[int, ...],
                   input_shape: tuple[int, ...]) -> tuple[_ShapeRecorder, nn.Module]:
    """Run the traced graph once on a probe ``[*lead, *input_shape]``: on meta tensors when
    the model allows it, else on the model itself (its state is reset before and after)."""
    dtype, shape = _dtype_of(model), (*lead, *input_shape)
    meta = _meta_copy(model)
    rec = _ShapeRecorder(fx.GraphModule(meta, graph))
    try:
        reset_states(meta)
        with torch.no_grad():
            rec.run(torch.empty(shape, dtype=dtype, device="meta"))
        return rec, meta
    except Exception:  # .item(), data-dependent Python, ops without meta kernels: probe for real
        pass
    rec = _ShapeRecorder(fx.GraphModule(model, graph))
    reset_states(model)
    try:
        with torch.no_grad():
            rec.run(torch.rand(shape, dtype=dtype))
    except Exception as exc:
        raise SnnCompileError(f"the model fails on input of per-sample shape {input_shape}: "
                              f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}",
                              "pass the right --input-shape C,H,W (or an --input file)",
                              EXIT_USAGE) from None
    finally:
        reset_states(model)
    return rec, model


def reset_states(model: nn.Module) -> None:
    """Reset every stateful spiking module (membranes back to their initial value)."""
    for m in model.modules():
        if hasattr(m, "reset") and callable(m.reset) and hasattr(m, "_memories"):
            m.reset()
