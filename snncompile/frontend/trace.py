"""Trace an ``nn.Module`` with torch.fx (spiking neurons are leaves) into the IR.

The driver: tracing on the concrete input shape, the calling conventions (``timefold``),
shape recording, and running the op table (``snncompile.frontend.ops``) over the fx graph.
"""

from __future__ import annotations

import copy
import inspect
import operator
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import fx, nn

from snncompile.errors import EXIT_UNSUPPORTED, EXIT_USAGE, SnnCompileError
from snncompile.frontend import timefold, trace_cache
from snncompile.frontend.fold import refresh_hooked_weights
from snncompile.frontend.guard import check_layers
from snncompile.frontend.ops import (
    PROBE_B,
    PROBE_T,
    SUPPORTED,
    Converter,
    call_op,
    host_select,
    inline_neurons,
    is_neuron,
    op_name,
)
from snncompile.frontend.ops.common import (
    NEURON_TYPES,
    SEQ_CONTAINERS,
    SJ_LAYER_PREFIX,
    SJ_PREFIX,
    contextual,
    unsupported,
    unsupported_layer,
)
from snncompile.frontend.ops.neurons import check_neurons, stock_neuron
from snncompile.frontend.ops.registry import family_of
from snncompile.frontend.ops.window import follow_window
from snncompile.frontend.tracer import MISSING, DataDependent, ShapeTracer, flat_values, values_of
from snncompile.ir import Host, Input, IRGraph, Output, Pool2d

_TORCH_LAYERS = (nn.Conv1d, nn.Conv2d, nn.Linear, nn.BatchNorm1d, nn.BatchNorm2d, nn.MaxPool2d, nn.AvgPool2d, nn.AvgPool1d,
                 nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d, nn.Flatten, nn.Dropout, nn.Identity)


def is_leaf(m: nn.Module) -> bool:
    """Modules kept as units while tracing: neurons, spikingjelly's stateless layer wrappers
    and torch's own layers. Every other module (blocks, user classes, spikingjelly's model
    zoo) is traced through, wherever it is defined."""
    if is_neuron(m) or isinstance(m, SEQ_CONTAINERS):
        return True
    mod = type(m).__module__
    if mod.startswith(SJ_LAYER_PREFIX):   # its wrappers of torch layers; composites (attention) are traced
        return (isinstance(m, _TORCH_LAYERS) and _stock(m)) or type(m).__name__ == "VotingLayer"
    if isinstance(m, (nn.Sequential, nn.ModuleList, nn.ModuleDict)):
        return False
    return (mod.startswith("torch.nn.") or mod.startswith("torch.ao.nn.")) and _stock(m)


_STOCK_NAMES = {c.__name__ for c in _TORCH_LAYERS}


def _stock(m: nn.Module) -> bool:
    """The layer computes what its torch class computes: ``forward`` and the helpers it calls
    are torch's own, or spikingjelly's step-mode wrapper of the same torch layer. A subclass
    that overrides them (spikingjelly's WSConv2d standardises its weight there) is traced
    through, so its weight is what its forward computes, not its stored attribute."""
    for attr in ("forward", "_conv_forward", "_forward"):
        owner = next((c for c in type(m).__mro__ if attr in c.__dict__), None)
        if owner is None or owner.__module__.startswith("torch."):
            continue
        if not (owner.__module__.startswith(SJ_LAYER_PREFIX) and owner.__name__ in _STOCK_NAMES):
            return False
    return True


@dataclass
class TraceResult:
    graph: IRGraph
    step_mode: str                 # "s": model called once per step; "m": takes [T, B, ...]
    neuron_sources: dict[str, str]  # IR neuron node → module path in the source model


def _no_neurons(model: nn.Module, gm: fx.GraphModule) -> SnnCompileError:
    """The model computes no spike: judged by what forward() executes (declared but unused
    modules, e.g. DIET-SNN's ``nn.ReLU`` placeholders, say nothing)."""
    modules = dict(model.named_modules())
    acts = [f"`{n.target}` ({type(modules[n.target]).__name__})" for n in gm.graph.nodes
            if n.op == "call_module" and n.target in modules
            and type(modules[n.target]).__module__ == "torch.nn.modules.activation"]
    acts += [f"`{n.target.__name__ if callable(n.target) else n.target}`" for n in gm.graph.nodes
             if n.op in ("call_function", "call_method") and op_name(n) in _ACTIVATIONS]
    found = f"; forward() applies non-spiking activations {', '.join(dict.fromkeys(acts[:4]))}" if acts else \
        "; forward() compares no membrane with a threshold"
    return SnnCompileError("the model has no spiking neurons (IFNode, LIFNode, ParametricLIFNode, snnTorch, or a "
                           "hand-written membrane recurrence)" + found,
                           "snncompile compiles spiking networks: replace the activations by spiking neurons (e.g. "
                           f"ANN-to-SNN conversion); supported: {SUPPORTED}", EXIT_UNSUPPORTED)


_ACTIVATIONS = {"relu", "relu_", "sigmoid", "tanh", "gelu", "silu", "leaky_relu", "softmax", "hardtanh"}


def step_mode_of(model: nn.Module, named: list[tuple[str, nn.Module]] | None = None) -> str:
    """``named``: ``list(model.named_modules())``, when the caller has it."""
    modes = {getattr(m, "step_mode", None) for _, m in (named or model.named_modules())
             if isinstance(m, NEURON_TYPES) or type(m).__module__.startswith(SJ_PREFIX)}
    modes.discard(None)
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
        self.count = 0   # operations run so far: how far the model got on this input

    def run_node(self, n: fx.Node) -> Any:
        self.count += 1
        out = super().run_node(n)
        if isinstance(out, torch.Tensor):
            self.shapes[n.name] = tuple(out.shape)
        else:
            self.values[n.name] = out
        return out


class _Converter(Converter):
    """Runs the op table over the fx graph, one node at a time in graph order (as
    ``torch.fx.Interpreter`` does), each opcode by its own method."""

    def call(self, n: fx.Node) -> str | None:
        """A function or method call, by its handler in the op table."""
        if self.folder.is_constant(n):   # computed from parameters and buffers only (frontend.fold)
            value = self.folder.try_value(n)
            if isinstance(value, torch.Tensor):
                self.consts[n.name] = value
            return None
        op = call_op(n.op, op_name(n))
        if op is not None and op.early:
            return op.handler(self, n)
        if n.name not in self.rec.shapes:
            return None  # a Python value (sizes, their arithmetic): it only feeds shape arguments
        if op is None:
            return self.refuse(n)
        return op.handler(self, n)

    def _check_in_place(self, n: fx.Node, name: str) -> None:
        """An in-place operation changes a tensor other nodes may read later; the traced graph
        follows values, so those reads would see the old value."""
        inplace = (isinstance(n.target, str) and n.target.endswith("_") and not n.target.startswith("_")) \
            or n.target in (operator.iadd, operator.isub, operator.imul, operator.itruediv)
        x = n.args[0] if n.args else None
        if inplace and isinstance(x, fx.Node):
            later = [u for u in x.users if u is not n and self.order.get(u, -1) > self.order.get(n, 0)]
            if later:
                raise contextual(f"in-place `{name}` at `{self.module_of(n)}` changes a tensor that is read "
                                 f"again afterwards (by `{later[0].format_node()}`)",
                                 "write it out of place (y = y * c, y = y + z) so every use sees one value")

    def _call_in_context(self, n: fx.Node) -> str | None:
        """``call`` with the module a failing operation sits in named (a hand-written neuron
        is traced into; its comparison is not what the user should read first)."""
        try:
            self._check_in_place(n, n.target if isinstance(n.target, str) else getattr(n.target, "__name__", ""))
            return self.call(n)
        except (TypeError, IndexError, KeyError, ValueError, AttributeError) as exc:   # an unforeseen form
            name = n.target if isinstance(n.target, str) else getattr(n.target, "__name__", str(n.target))
            raise unsupported(f"use of `{name}` ({type(exc).__name__}: {exc})", n.format_node()) from None
        except SnnCompileError as exc:
            stack = list((n.meta.get("nn_module_stack") or {}).values())
            custom = [(path, cls) for path, cls in stack
                      if isinstance(cls, type) and not (cls.__module__.startswith("torch.")
                                                        or cls.__module__.startswith(SJ_PREFIX))]
            if not custom or getattr(exc, "contextual", False):
                raise
            path, cls = custom[-1]
            raise SnnCompileError(
                f"`{path}` is a {cls.__module__}.{cls.__qualname__}, a module snncompile does not know: "
                f"{exc.message}", f"if {cls.__name__} is a spiking neuron, build it from spikingjelly's "
                "IFNode, LIFNode or ParametricLIFNode; otherwise " + exc.hint, exc.exit_code) from None

    def run(self) -> IRGraph:
        keep = self.layout.keep
        self.order = {n: i for i, n in enumerate(self.gm.graph.nodes)}
        for n in self.gm.graph.nodes:
            if keep and n.name not in keep and n.op != "output" and n.target not in (operator.setitem, "__setitem__"):
                continue   # not needed by the output of one step (records, later loop steps)
            if n.op == "placeholder":
                self.placeholder(n)
            elif n.op == "call_module":
                self.env[n.name] = self.call_module(n)
            elif n.op in ("call_function", "call_method"):
                out = self._call_in_context(n)
                if out is not None:
                    self.env[n.name] = out
            elif n.op == "get_attr":
                self.get_attr(n)
            elif n.op == "output":
                self.output(n)
            if n.op in ("call_module", "call_function", "call_method"):
                self._after_time_mean(n)
        return self.g

    def _after_time_mean(self, n: fx.Node) -> None:
        """A value computed from a mean over the time steps (``x.mean(0)``) is carried per step
        (it is summed at the output); a host operation on it would see one step's value, not the
        mean over every step, so it is refused. A chain that comes back to the steps (the official
        SparseSpikformer's selector) never gets here: the mean is a window host (frontend.ops.window)."""
        follow_window(self, n)
        if not any(a.name in self.after_mean for a in n.all_input_nodes):
            return
        self.after_mean.add(n.name)
        out = self.env.get(n.name)
        if out is None or not isinstance(self.g.node(out), Host) \
                or any(self.env.get(a.name) == out for a in n.all_input_nodes):
            return
        raise SnnCompileError(
            f"`{self.g.node(out).fn.describe()}` at `{self.module_of(n)}` reads a mean over the time steps "
            "(e.g. `x.mean(0)`): the host would need every step before it could compute the first",
            "score from each step's values (e.g. x.flatten(0, 1)) instead of their mean over time, use the result "
            "at every step again (repeat it over T or gather tokens from x.flatten(0, 1): a window host, compiled "
            "exactly), or compile the network after the selector with a static keep-mask (--patch-mask)",
            EXIT_UNSUPPORTED)

    def placeholder(self, n: fx.Node) -> None:
        if self.g.of_type(Input) and (not n.users or n.args):
            return   # *args / keyword parameters forward() does not use, or has a default for (a constant)
        if self.g.of_type(Input):
            raise unsupported("model with more than one input", n.format_node())
        self.env[n.name] = self.add("input", Input(self.sample_shape(n), "input"), [])

    def call_module(self, n: fx.Node) -> str:
        m = self.modules[n.target]
        if n.name not in self.rec.shapes:  # every layer we compile returns one tensor
            if not (is_neuron(m) and n.name in self.rec.values):
                raise unsupported_layer(m, n.target)
        src = self.ir_input(n.args[0], n.target) if n.args else None
        if src is None or (len(n.args) != 1 and not is_neuron(m)) or n.kwargs:
            raise unsupported("module call with several inputs", n.target)
        shape = self.g.node(src).shape if is_neuron(m) else self.sample_shape(n)
        return self.module(m, n.target, src, shape)

    def get_attr(self, n: fx.Node) -> None:
        value = _fetch_attr(self.gm, n.target)
        if not isinstance(value, torch.Tensor):
            raise unsupported("non-tensor attribute used in forward()", n.target)
        self.consts[n.name] = value

    def output(self, n: fx.Node) -> None:
        arg = self.layout.output if self.layout.output is not None else timefold.output_value(self.gm.graph)
        src = self.ir_input(arg, "output")
        node = self.g.node(src)
        reduced = self.layout.reduced or arg.name in self.time_reduced
        self.g.output_time_reduced = bool(reduced)
        self.add("output", Output(node.shape, "output"), [src])
        self._note_other_outputs(n, arg)

    def _note_other_outputs(self, n: fx.Node, first: fx.Node) -> None:
        """forward() returns several values (the official SparseSpikformer: ``(x, decisions)``): the
        first is the network's output; the others are said not to be emitted, not dropped silently."""
        if self.layout.output is not None:
            return
        others = [a for a in _flat_nodes(n.args[0]) if a is not first and a.name in self.rec.shapes]
        if others:
            names = ", ".join(f"`{a.name}`" for a in others[:3]) + (", …" if len(others) > 3 else "")
            self.g.meta.setdefault("notes", []).append(
                f"forward() returns several values: the first tensor (`{first.name}`) is the compiled network's "
                f"output; the other {len(others)} ({names}, e.g. a selector's kept-token indices) are host-side "
                "values the compiler does not emit")


def _flat_nodes(value: Any) -> list[fx.Node]:
    """The fx nodes inside a (nested) tuple / list / dict return value."""
    if isinstance(value, fx.Node):
        return [value]
    items = value.values() if isinstance(value, dict) else value if isinstance(value, (tuple, list)) else ()
    return [m for v in items for m in _flat_nodes(v)]


def trace_model(model: nn.Module, input_shape: tuple[int, ...], name: str = "model",
                masks: dict[str, np.ndarray] | None = None, no_host: bool = False) -> TraceResult:
    """Trace ``model`` for per-sample input ``input_shape`` into an IR graph.

    ``masks``: explicit synapse masks by module path (from ``--masks``), kept in the IR.
    Multi-step models are tried on ``[T, B, ...]`` first, then on a static ``[B, ...]``
    that forward() repeats over time itself; the error of the attempt that got furthest
    is reported. ``no_host``: refuse every host operation (real-valued or data-dependent: it
    would need the chip's embedded CPU or the host) by name, with its module path.
    """
    named = list(model.named_modules())   # walked once for the checks and the key below
    mode = step_mode_of(model, named)
    check_neurons(model, named)
    detach_pruned(model, named)
    refresh_hooked_weights(model, named)
    arch = trace_cache.architecture(model, named)   # a ticket of a network traced before reuses its trace
    meta = trace_cache.meta_model(arch)
    if meta is None:
        meta = _meta_copy(model)
        trace_cache.keep_meta(arch, meta)
    # "loop-in": one call on [T, B, ...] that forward() reads step by step (x[t], snnTorch)
    # "m-bf": one call on batch-first [B, T, ...] that forward() transposes to [T, B, ...] itself
    conventions = ("m", "static-m", "m-bf") if mode == "m" else ("s", "loop-in")
    failures: list[SnnCompileError] = []
    for convention in conventions:
        try:
            return _trace_as(model, meta, convention, tuple(input_shape), name, masks, no_host=no_host, arch=arch)
        except SnnCompileError as exc:
            failures.append(exc)
    # the attempt that got furthest says what actually stops the model (ties: the first tried)
    raise max(failures, key=lambda e: (getattr(e, "stage", 0), getattr(e, "progress", 0)))


def refuse_real_max_pools(graph: IRGraph, no_host: bool = True) -> None:
    """``--no-host``: a max-pool of real values (BN output) would be a host partition."""
    from snncompile.frontend.ops.host import refusal

    if not no_host:
        return
    from snncompile.ir.structure import binary_spikes

    for name in graph.of_type(Pool2d):
        node = graph.node(name)
        if node.mode == "max" and not binary_spikes(graph, graph.inputs(name)[0]):
            raise refusal("`max_pool2d` of real values", node.source or name)


def _read_input_steps(gm: fx.GraphModule, convention: str) -> None:
    """Convention "loop-in": forward() must read its [T, B, ...] input as x[0] … x[T−1] (it
    is then rewritten to read one [B, ...] step); any other convention must not index the
    input's first axis (that is the batch: the model expects time first)."""
    if convention == "m-bf":
        if not timefold.swap_batch_first(gm.graph):
            raise _staged(unsupported("a batch-first [B, T, ...] input that forward() does not transpose to "
                                      "[T, B, ...] first", "forward"), 1, 0)
        gm.recompile()
    elif convention == "loop-in":
        if not timefold.read_step_by_step(gm.graph, PROBE_T):
            raise _staged(unsupported("a [T, B, ...] input that forward() does not read step by step "
                                      "(x[t] for every t)", "forward"), 1, 0)
        gm.recompile()
    elif timefold.indexed_steps(gm.graph):
        raise _staged(SnnCompileError("forward() indexes the first axis of its input (x[t]), which is the batch "
                                      "on a [B, ...] input", "pass time-first [T, B, ...] input", EXIT_UNSUPPORTED),
                      1, 0)


def _staged(exc: SnnCompileError, stage: int, progress: int = 0) -> SnnCompileError:
    exc.stage = stage   # 1: the model does not run on this input layout; 2: it runs, cannot compile
    exc.progress = progress   # how many operations of forward() were traced before it stopped
    return exc


def _fx_trace(model: nn.Module, meta: nn.Module, shape: tuple[int, ...],
              input_shape: tuple[int, ...], arch: trace_cache.Key | None = None) -> fx.GraphModule:
    """``model`` traced on input ``shape`` (values on ``meta``'s tensors); for ``arch`` (see
    :mod:`trace_cache`), a copy of the trace of a model of the same architecture, if any."""
    params = list(inspect.signature(model.forward).parameters.values())[1:]
    extra = [p.name for p in params if p.default is inspect.Parameter.empty
             and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
    if extra:
        raise _staged(unsupported(f"model with more than one input (forward() also takes {', '.join(extra)})",
                                  "forward"), 1)
    concrete = {p.name: p.default for p in params if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)}
    # the tracer's own choices are part of what a trace depends on
    dtype = _dtype_of(model)
    how = (tuple(shape), dtype, is_leaf, is_neuron, stock_neuron)
    remembered = trace_cache.lookup(arch, how)
    if remembered is not None:   # a ticket of an architecture traced before: its weights are read below
        return _bound(model, remembered)
    reset_states(meta)   # (a remembered trace leaves the meta copy as its trace left it: reset)
    tracer = ShapeTracer(meta, is_leaf, [torch.empty(shape, dtype=dtype, device="meta")])
    tracer.elementwise = is_neuron
    tracer.passthrough = stock_neuron
    saved = _module_state(model)
    try:
        with trace_cache.watch_values() as read:
            graph = tracer.trace(model, concrete_args=concrete or None)
    except DataDependent as exc:
        raise _staged(SnnCompileError(f"cannot trace the model: {exc}",
                                      "forward() must not branch on tensor values; move such logic out "
                                      "of the model", EXIT_UNSUPPORTED), 1, _progress(tracer)) from None
    except SnnCompileError as exc:
        raise _staged(exc, 1, _progress(tracer)) from None
    except Exception as exc:  # the model does not run on this input layout, or fx refuses it
        raise _staged(_trace_failure(exc, tracer.first_error, shape, input_shape), 1, _progress(tracer)) from None
    finally:
        _restore_state(model, saved)
        reset_states(meta)
    trace_cache.store(arch, how, graph, values_read=bool(read))
    return _bound(tracer.root, graph)


try:   # generates forward()'s Python only when it is called: the compiler reads the graph
    from torch.fx._lazy_graph_module import _LazyGraphModule as _GraphModule
except ImportError:  # pragma: no cover  (a torch without it: the eager GraphModule, ~2 ms more)
    _GraphModule = fx.GraphModule


def _bound(root: nn.Module, graph: fx.Graph) -> fx.GraphModule:
    """A GraphModule of ``graph`` over ``root``'s own children and tensors. fx's constructor
    copies every module and tensor the graph reads into a new tree of stub modules (ResNet-18:
    ~0.5 ms of a ~15 ms ticket); this one holds root's children themselves, so every target
    resolves to the same object. The rewrites add modules and buffers at its top level only,
    never inside root's modules. Tensors fx found outside any module's registered ones
    (``_tensor_constant0``, set on root by the tracer) are copied as fx copies them. A root
    whose own names are a GraphModule's (a child or buffer called ``graph``, ``code``,
    ``meta``) gets fx's copy, which names only what the graph reads."""
    gm = _GraphModule(nn.Module(), fx.Graph())
    if any(name in gm.__dict__ or hasattr(type(gm), name) for name in (*root._modules, *root._parameters,
                                                                       *root._buffers)):
        return _GraphModule(root, graph)
    gm.training = root.training
    gm._modules.update(root._modules)
    gm._parameters.update(root._parameters)
    gm._buffers.update(root._buffers)
    for n in graph.nodes:
        head = str(n.target).split(".")[0] if n.op in ("get_attr", "call_module") else None
        if head is not None and head not in gm._modules and head not in gm._parameters \
                and head not in gm._buffers:
            value = getattr(root, head)
            if isinstance(value, torch.Tensor) and not isinstance(value, nn.Parameter):
                gm.register_buffer(head, value)
            else:
                setattr(gm, head, value)
    gm.graph = graph
    return gm


def _progress(tracer: fx.Tracer) -> int:
    graph = getattr(tracer, "graph", None)
    return len(graph.nodes) if graph is not None else 0


def _module_state(model: nn.Module) -> list[tuple[nn.Module, dict[str, Any]]]:
    """The plain attributes of the user's modules: a hand-written stateful module traced
    through assigns its membrane (a proxy while tracing) to ``self``; put back afterwards."""
    out = []
    for m in model.modules():
        if not type(m).__module__.startswith("torch."):
            out.append((m, {k: v for k, v in m.__dict__.items() if not k.startswith("_")}))
    return out


def _restore_state(model: nn.Module, saved: list[tuple[nn.Module, dict[str, Any]]]) -> None:
    for m, attrs in saved:
        for k in [k for k in m.__dict__ if not k.startswith("_") and k not in attrs]:
            del m.__dict__[k]
        m.__dict__.update(attrs)


def _trace_failure(exc: Exception, first_error: Exception | None, shape: tuple[int, ...],
                   input_shape: tuple[int, ...]) -> SnnCompileError:
    """Why tracing stopped: an operation that failed on this input shape (``first_error``,
    recorded by the tracer), else what fx raised (``exc``)."""
    if isinstance(exc, TypeError) and "does not support item assignment" in str(exc):
        return SnnCompileError("forward() assigns into a tensor computed from the input (`out[...] = value`, "
                               "e.g. a padding border written in place): snncompile follows values, not writes",
                               "compute the value out of place: F.pad(x, p) (zeros), or for a BatchNorm's own "
                               "padding value (BNAndPadLayer) pad the BatchNorm's input with zeros before the "
                               "BatchNorm", EXIT_UNSUPPORTED)
    if first_error is not None:   # an operation failed on this input shape
        first = str(first_error).splitlines()[0] if str(first_error) else ""
        return SnnCompileError(f"the model fails on input of per-sample shape {tuple(input_shape)}"
                               f": {type(first_error).__name__}: {first}",
                               "pass the right --input-shape C,H,W (or an --input file)", EXIT_USAGE)
    first = str(exc).splitlines()[0] if str(exc) else ""
    return SnnCompileError(f"cannot trace the model on input of shape {tuple(shape)}: "
                           f"{type(exc).__name__}: {first}",
                           "check --input-shape; forward() must not branch on tensor values", EXIT_UNSUPPORTED)


def _trace_as(model: nn.Module, meta: nn.Module, convention: str, input_shape: tuple[int, ...],
              name: str, masks: dict[str, np.ndarray] | None, batch: int = PROBE_B,
              no_host: bool = False, arch: trace_cache.Key | None = None) -> TraceResult:
    lead = {"m": (PROBE_T, batch), "loop-in": (PROBE_T, batch), "m-bf": (batch, PROBE_T)}.get(convention, (batch,))
    gm = _fx_trace(model, meta, (*lead, *input_shape), input_shape, arch)
    traced = gm.graph
    try:
        return _convert(gm, model, meta, convention, input_shape, name, masks, lead, batch, no_host, arch)
    finally:   # a remembered trace may be lent to the next ticket: see trace_cache.lookup
        trace_cache.give_back(traced)


def _convert(gm: fx.GraphModule, model: nn.Module, meta: nn.Module, convention: str, input_shape: tuple[int, ...],
             name: str, masks: dict[str, np.ndarray] | None, lead: tuple[int, ...], batch: int,
             no_host: bool, arch: trace_cache.Key | None) -> TraceResult:
    """The IR of ``model`` traced as ``gm`` (see :func:`_trace_as`)."""
    _read_input_steps(gm, convention)
    inline_neurons.rewrite(gm)   # membrane recurrences written in forward() → neuron calls
    host_select.rewrite_batch_index_select(gm)   # x.reshape(R·N, C)[idx + offsets] → x[rows, idx]
    values = values_of(gm.graph)
    layout = timefold.TimeLayout(convention, steps=PROBE_T if convention in ("m", "m-bf") else None)
    modules = dict(gm.named_modules())
    calls = timefold.neuron_calls(gm.graph, lambda t: is_neuron(modules[t]))
    if not calls:
        raise _staged(_no_neurons(model, gm), 2, len(gm.graph.nodes))
    for c in gm.graph.nodes:   # constants made in forward(): zero starts of accumulators and states
        if c.op == "get_attr":
            c.meta["constant"] = _fetch_attr(gm, c.target)
    try:
        if convention == "static-m":
            steps = timefold.lift_steps(gm.graph, values, batch)
            if steps is None:
                raise unsupported("multi-step model that neither takes [T, B, ...] input nor repeats "
                                  "its input over time", "forward")
            if steps == batch and batch == PROBE_B:   # T and B would be indistinguishable
                return _trace_as(model, meta, convention, input_shape, name, masks, batch=7, no_host=no_host,
                                 arch=arch)
            layout.steps = steps
        elif convention in ("s", "loop-in") and calls and max(len(c) for c in calls.values()) > 1:
            layout = timefold.fold_loop(gm.graph, calls)
        if layout.convention != "loop":
            timefold.check_states(calls, looped=False)
        if layout.output is None:
            layout.keep = _kept_for_output(gm.graph, calls)
        ops = {n.name for n in gm.graph.nodes if n.op in ("call_function", "call_method", "call_module")}
        rec = _recorded(values, (layout.keep or ops) & ops)
        if rec is None:
            rec, _ = _record_shapes(model, gm.graph, lead, input_shape)
        conv = _Converter(gm, rec, convention, name, meta, layout, batch, modules)
        conv.masks = dict(masks or {})
        conv.no_host = no_host
        graph = conv.run()
        refuse_real_max_pools(graph, no_host)
        check_layers(graph, conv.sites, gm, conv.masks, _dtype_of(model))
    except SnnCompileError as exc:
        if getattr(exc, "stage", 0) == 1:
            raise
        raise _staged(exc, 2, len(gm.graph.nodes)) from None
    for attr in ("patch_mask", "token_mask"):
        buf = getattr(model, attr, None)
        if isinstance(buf, torch.Tensor) and attr not in conv.consts_used:
            graph.patch_mask = buf.detach().cpu().numpy().astype(bool)
    convention = convention if convention in ("loop-in", "m-bf") else layout.convention
    graph.step_mode = convention
    graph.model_steps = layout.steps if convention in ("static-m", "loop") else None
    graph.output_steps = layout.output_steps
    graph.input_shape = tuple(int(d) for d in input_shape)
    return TraceResult(graph, convention, conv.neuron_sources)


def _kept_for_output(graph: fx.Graph, calls: dict[str, list[fx.Node]]) -> set[str]:
    """The fx nodes one step needs when forward() returns several values: everything but
    what only the values other than the output need (snnTorch's membrane records); a branch
    the output does not read stays, for the dead_neurons pass. Empty: every node."""
    out = timefold.output_value(graph)
    if not isinstance(out, fx.Node):
        return set()
    ret = next(n for n in graph.nodes if n.op == "output").args[0]
    others = [v for v in flat_values(ret) if isinstance(v, fx.Node) and v is not out]
    if not others:   # forward() returns the output alone
        return set()
    needed = timefold.ancestors(out)
    for call in (c for per_module in calls.values() for c in per_module):
        needed |= timefold.ancestors(call)
    extra: set[str] = set()
    for v in others:
        extra |= timefold.ancestors(v)
    return {n.name for n in graph.nodes} - (extra - needed)


def _recorded(values: dict[str, Any], keep: set[str]) -> _ShapeRecorder | None:
    """Shapes recorded while tracing, as the shape probe would give them (None: an operation
    the compiled step needs could not be evaluated on the meta device)."""
    rec = _ShapeRecorder.__new__(_ShapeRecorder)
    rec.shapes, rec.values = {}, {}
    for n, v in values.items():
        if v is MISSING:
            if n in keep:
                return None
            continue
        if isinstance(v, torch.Tensor):
            rec.shapes[n] = tuple(v.shape)
        else:
            rec.values[n] = v
    return rec


def _fetch_attr(root: nn.Module, target: str):
    obj = root
    for part in target.split("."):
        obj = getattr(obj, part)
    return obj


def detach_pruned(model: nn.Module, named: list[tuple[str, nn.Module]] | None = None) -> None:
    """torch.nn.utils.prune recomputes ``weight`` (= weight_orig·mask) with a grad_fn, which
    deepcopy refuses; a detached copy of the same values is all inference needs.
    ``named``: ``list(model.named_modules())``, when the caller has it."""
    for _, m in named or model.named_modules():
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
    copied = _copy_module(model, memo)
    if any(m.training for m in copied.modules()):   # (eval() sets the flag on every module: ~0.7 ms)
        copied.eval()
    return copied


_ATOMS = (type(None), bool, int, float, complex, str, bytes, torch.dtype, torch.device)


def _copy_module(m: nn.Module, memo: dict[int, Any]) -> nn.Module:
    """``copy.deepcopy(m, memo)`` by the same steps (``__new__``, ``__getstate__``, deep copy
    of the state, ``__setstate__``) without copy's generic dispatch on every submodule and
    every empty hook dict (most of the time of tracing a paper-size model otherwise). A
    class with its own copy or pickling protocol is deep-copied as it asks."""
    if id(m) in memo:
        return memo[id(m)]
    cls = type(m)
    if getattr(cls, "__deepcopy__", None) is not None or cls.__reduce_ex__ is not object.__reduce_ex__ \
            or cls.__reduce__ is not object.__reduce__:
        return copy.deepcopy(m, memo)
    new = cls.__new__(cls)
    memo[id(m)] = new
    state = {}
    for key, value in m.__getstate__().items():
        if key == "_modules":
            state[key] = type(value)((k, c if c is None else _copy_module(c, memo)) for k, c in value.items())
        elif isinstance(value, _ATOMS):
            state[key] = value
        elif type(value) in (dict, OrderedDict, set) and not value:
            state[key] = type(value)()
        else:
            state[key] = copy.deepcopy(value, memo)
    new.__setstate__(state)
    return new


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
    except Exception as exc:   # the model does not run on this layout: stage 1, as far as it got
        raise _staged(SnnCompileError(f"the model fails on input of per-sample shape {input_shape}: "
                                      f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}",
                                      "pass the right --input-shape C,H,W (or an --input file)",
                                      EXIT_USAGE), 1, rec.count) from None
    finally:
        reset_states(model)
    return rec, model


def reset_states(model: nn.Module) -> None:
    """Reset every stateful spiking module (membranes back to their initial value)."""
    for m in model.modules():
        if hasattr(m, "reset") and callable(m.reset) and hasattr(m, "_memories"):
            m.reset()
            continue
        family = family_of(m)
        if family is not None and family.reset is not None:
            family.reset(m)   # e.g. snnTorch's hidden state (init_hidden=True), a hand-written membrane
