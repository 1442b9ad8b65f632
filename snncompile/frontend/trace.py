"""Trace an ``nn.Module`` with torch.fx (spiking neurons are leaves) into the IR."""

from __future__ import annotations

import copy
import inspect
import math
import operator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import fx, nn

from snncompile.errors import EXIT_UNSUPPORTED, EXIT_USAGE, SnnCompileError
from snncompile.frontend import timefold
from snncompile.frontend.tracer import MISSING, DataDependent, ShapeTracer, flat_values, values_of
from snncompile.ir import (
    AdaptiveAvgPool2d,
    Add,
    BatchNorm,
    Concat,
    Conv2d,
    Delay,
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
    Slice,
    Transpose,
)
from snncompile.ir.dynamics import IF, LIF, PLIF, CubaLIF, OrPool
from snncompile.ir.structure import binary_spikes, is_population

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
    "neurons: spikingjelly IFNode, LIFNode, ParametricLIFNode (also legacy clock_driven names), snnTorch "
    "Leaky and Synaptic (where exact: docs/frontend.md); layers: Conv1d, Conv2d, Linear, BatchNorm1d/2d, MaxPool2d, AvgPool2d, "
    "AdaptiveAvgPool2d, Flatten, Dropout, Identity (torch.nn or spikingjelly layer.*), layer.VotingLayer, "
    "layer.SeqToANNContainer; any module of yours is traced through; operations: residual +/-, scalar "
    "affine (1 - x), spike products (matmul, *), cat/chunk/split/slicing, flatten/view/reshape/permute/"
    "transpose, mean/sum (over time at the output); see docs/frontend.md"
)


def _unsupported(what: str, where: str) -> SnnCompileError:
    return SnnCompileError(f"unsupported {what} at `{where}`",
                           f"supported: {SUPPORTED}", EXIT_UNSUPPORTED)


SJ_LAYER_PREFIX = "spikingjelly.activation_based.layer"
_TORCH_LAYERS = (nn.Conv1d, nn.Conv2d, nn.Linear, nn.BatchNorm1d, nn.BatchNorm2d, nn.MaxPool2d, nn.AvgPool2d,
                 nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d, nn.Flatten, nn.Dropout, nn.Identity)


try:  # snnTorch is optional: its neurons are recognised when it is installed
    import snntorch as _snntorch

    SNNTORCH_NEURON: tuple[type, ...] = (_snntorch.SpikingNeuron,)
    SNNTORCH_LEAKY: tuple[type, ...] = (_snntorch.Leaky,)
    SNNTORCH_RECURRENT: tuple[type, ...] = (_snntorch.RLeaky,)
except ImportError:  # pragma: no cover
    SNNTORCH_NEURON = SNNTORCH_LEAKY = SNNTORCH_RECURRENT = ()


def is_neuron(m: nn.Module) -> bool:
    """A spiking neuron module (spikingjelly's, or any snnTorch neuron): a leaf of the trace,
    compiled from its class's equations (or refused by name)."""
    return isinstance(m, NEURON_TYPES + SNNTORCH_NEURON)


def snntorch_leaky(m: nn.Module, path: str, shape: tuple[int, ...]) -> Neuron:
    """snnTorch ``Leaky`` (and ``Synaptic``) as a Neuron, exactly. With R[t] = S[t−1]
    (``reset_delay=True``, the default) and strict firing S[t] = 1 if M[t] > θ:

        "zero":      M[t] = β·(1 − R[t])·M[t−1] + X[t]  →  lif, decay_input=False, τ = 1/(1 − β),
                                                           hard reset to V_r = 0
        "subtract":  M[t] = β·M[t−1] + X[t] − R[t]·θ     →  the same lif, soft reset by ρ = θ/β
        "none":      M[t] = β·M[t−1] + X[t]              →  the same lif, soft reset by ρ = 0

    H[t] = β·V[t−1] + X[t] gives M = H: for "subtract", V[t] = H[t] − S[t]·ρ and β·ρ = θ. β = 1
    is IF; β = 0 with "subtract" has no ρ (refused). ``reset_delay=False``: "zero" and "none"
    are unchanged; "subtract" equals a soft reset by θ only while the post-reset membrane stays
    ≤ θ, else snnTorch raises the next step's threshold to 2θ (refused). ``Synaptic``
    (I[t] = α·I[t−1] + X[t], M as above with X = I) is ``cubalif`` with q = 1 − β,
    q_s = 1 − α and the same resets, except "zero" with ``reset_delay=True``, which zeroes
    β·M + I (the new current's contribution too) at the step after a spike (refused; with
    ``reset_delay=False`` the stored membrane is 0 after a spike: a hard reset). A negative θ
    makes snnTorch's reset signal fire on the initial membrane 0 (refused, except for the
    delayed "zero" and "none", where it changes nothing). ``RLeaky`` is ``Leaky`` with
    X[t] + V(S[t−1]) as its input (the recurrent part is built by the converter, through a
    Delay); its "zero" with ``reset_delay=True`` zeroes the new input too (refused).
    """
    import snntorch

    cls = f"{type(m).__module__}.{type(m).__qualname__}"
    synaptic = isinstance(m, snntorch.Synaptic)
    recurrent = isinstance(m, SNNTORCH_RECURRENT)
    if not (synaptic or recurrent or isinstance(m, SNNTORCH_LEAKY)):
        raise SnnCompileError(
            f"neuron `{path}` is a {cls}: snncompile compiles snnTorch's Leaky, RLeaky and Synaptic only",
            "use snn.Leaky(beta, threshold), snn.RLeaky or snn.Synaptic(alpha, beta, threshold) with "
            "reset_mechanism='subtract' (the default), 'zero' or 'none'; Alpha/Lapicque and RSynaptic "
            "have dynamics the compiled neuron cannot reproduce exactly", EXIT_UNSUPPORTED)
    mech = m.reset_mechanism
    delayed = bool(getattr(m, "reset_delay", True))
    beta = torch.as_tensor(m.beta).detach().to(torch.float64).clamp(0, 1)
    th = torch.as_tensor(m.threshold).detach().to(torch.float64)
    problems = []
    if mech not in ("subtract", "zero", "none"):
        problems.append(f"reset_mechanism={mech!r}")
    if synaptic and mech == "zero" and delayed:
        problems.append("reset_mechanism='zero' with reset_delay=True in Synaptic (it zeroes β·M + I, the "
                        "new current's contribution too, at the step after a spike)")
    if recurrent and mech == "zero" and delayed:
        problems.append("reset_mechanism='zero' with reset_delay=True in RLeaky (it zeroes β·M + X + V(S), "
                        "the new input too, at the step after a spike)")
    if mech == "subtract" and not delayed:
        problems.append("reset_mechanism='subtract' with reset_delay=False (a soft reset by θ only while "
                        "the post-reset membrane stays ≤ θ; above it snnTorch needs 2θ to fire next)")
    if mech == "subtract" and delayed and bool(torch.any(beta == 0)):
        problems.append("beta=0 with reset_mechanism='subtract' (θ is subtracted from the next membrane, "
                        "which β = 0 forgets: β·ρ = θ has no solution)")
    if (mech == "subtract" or (mech == "zero" and not delayed)) and bool(torch.any(th < 0)):
        problems.append(f"a negative threshold with reset_mechanism={mech!r} (snnTorch's reset signal "
                        "fires on the initial membrane 0, before any spike)")
    if getattr(m, "inhibition", False):
        problems.append("inhibition=True")
    if getattr(m, "state_quant", False):
        problems.append("state_quant")
    if not torch.all(torch.as_tensor(m.graded_spikes_factor) == 1):
        problems.append("graded_spikes_factor ≠ 1 (graded spikes)")
    if beta.numel() > 1 and not torch.all(beta == beta.flatten()[0]):
        problems.append("a per-neuron beta")
    alpha = torch.as_tensor(m.alpha).detach().to(torch.float64).clamp(0, 1) if synaptic else beta
    if synaptic and alpha.numel() > 1 and not torch.all(alpha == alpha.flatten()[0]):
        problems.append("a per-neuron alpha")
    if problems:
        raise SnnCompileError(f"snnTorch neuron `{path}` ({cls}) uses {'; '.join(problems)}",
                              "retrain or re-export with snn.Leaky(beta, threshold) or snn.Synaptic "
                              "(reset_mechanism 'subtract' with reset_delay=True, 'zero' or 'none'), "
                              "a scalar beta (> 0 for 'subtract') and a scalar threshold ≥ 0", EXIT_UNSUPPORTED)
    b = float(beta.flatten()[0])
    v_th: float | np.ndarray = float(th.flatten()[0]) if th.numel() == 1 else \
        np.broadcast_to(th.numpy(), shape).copy()
    if mech == "zero":
        reset: dict = dict(v_reset=0.0)
    elif mech == "none":
        reset = dict(v_reset=None, reset_by=0.0)
    else:   # β·ρ = θ (per neuron with a per-neuron θ)
        reset = dict(v_reset=None, reset_by=v_th / b)
    if synaptic:
        return Neuron(shape, path, dynamics=CubaLIF(decay=1.0 - b, syn_decay=1.0 - float(alpha.flatten()[0]),
                                                    decay_input=False, v_threshold=v_th, strict=True, **reset))
    if b >= 1.0:
        return Neuron(shape, path, dynamics=IF(v_threshold=v_th, strict=True, **reset))
    return Neuron(shape, path, dynamics=LIF(tau=1.0 / (1.0 - b), decay_input=False, v_threshold=v_th,
                                            strict=True, **reset))


def is_leaf(m: nn.Module) -> bool:
    """Modules kept as units while tracing: neurons, spikingjelly's stateless layer wrappers
    and torch's own layers. Every other module (blocks, user classes, spikingjelly's model
    zoo) is traced through, wherever it is defined."""
    if is_neuron(m) or isinstance(m, SEQ_CONTAINERS):
        return True
    mod = type(m).__module__
    if mod.startswith(SJ_LAYER_PREFIX):   # its wrappers of torch layers; composites (attention) are traced
        return isinstance(m, _TORCH_LAYERS) or type(m).__name__ == "VotingLayer"
    if isinstance(m, (nn.Sequential, nn.ModuleList, nn.ModuleDict)):
        return False
    return mod.startswith("torch.nn.") or mod.startswith("torch.ao.nn.")


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
    if not any(is_neuron(m) for m in model.modules()):
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


_SELECTION = ("topk", "sort", "argsort", "argmax", "argmin", "gather", "index_select", "masked_select",
              "nonzero", "take_along_dim", "multinomial", "masked_fill", "scatter", "index_put")
_RANDOM = ("rand", "rand_like", "randn", "randn_like", "bernoulli", "poisson", "randint", "normal")


def _contextual(message: str, hint: str) -> SnnCompileError:
    exc = SnnCompileError(message, hint, EXIT_UNSUPPORTED)
    exc.contextual = True   # names its module already: not re-wrapped as "a module snncompile does not know"
    return exc


def _selection(what: str, module: str) -> SnnCompileError:
    return _contextual(
        f"data-dependent selection at `{module}`: {what} picks tokens/elements by values computed from the "
        "input (SparseSpikformer-style top-k token selection), so the network would change with every sample",
        "compile a static keep-mask instead: multiply by a 0/1 buffer (e.g. `self.register_buffer('token_mask', "
        "...)`) or pass --patch-mask FILE.npy with the tokens to keep (e.g. the most often kept tokens at your "
        "keep ratio on the training set)")


def _adaptive_pool(out: tuple[int, ...], in_shape: tuple[int, ...], mode: str,
                   where: str) -> Pool2d | AdaptiveAvgPool2d:
    """AdaptiveAvg/MaxPool2d with a static output size as a plain pooling: exact when the
    input size is a multiple of the output size (equal, disjoint windows)."""
    (h, w), (oh, ow) = in_shape[-2:], out[-2:]
    if h % oh or w % ow:
        if mode == "avg":   # windows of unequal size (or overlapping): exact as its own node
            return AdaptiveAvgPool2d(out, where)
        raise _unsupported(f"adaptive max pooling from {h}×{w} to {oh}×{ow} (windows of unequal size)", where)
    k = (h // oh, w // ow)
    return Pool2d(out, where, mode=mode, kernel=k, stride=k, padding=(0, 0))


class _Converter:
    def __init__(self, gm: fx.GraphModule, rec: _ShapeRecorder, mode: str, name: str,
                 probe_modules: dict[str, nn.Module], layout: timefold.TimeLayout | None = None,
                 batch: int = _PROBE_B) -> None:
        self.gm, self.rec = gm, rec
        self.layout = layout or timefold.TimeLayout(mode, steps=_PROBE_T if mode == "m" else None)
        # per-sample layout: "s"/"loop" tensors are [B, ...]; "m"/"static-m" [T, B, ...] or [T·B, ...]
        self.mode = "m" if mode in ("m", "static-m") else "s"
        self.T, self.B = (self.layout.steps or _PROBE_T), batch
        self.lifted: set[str] = set()     # static [1, B, ...] values about to be repeated over T
        self.pieces: dict[str, tuple[str, int, list[tuple[int, int]], bool]] = {}   # chunk/split results
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
        T, B = self.T, self.B
        if sh[:2] == (T, B) or (sh[:2] == (1, B) and n.name in self.lifted):
            return sh[2:]
        if sh and sh[0] in (T * B, B):
            if sh[0] == B:
                self.time_reduced.add(n.name)
            return sh[1:]
        raise SnnCompileError(f"cannot tell the time and batch axes of `{n.format_node()}` "
                              f"(shape {sh} for T={T}, B={B})",
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
        if is_neuron(m):
            return self.neuron(m, path, src, in_node.shape)
        if isinstance(m, (nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d)):
            mode = "max" if isinstance(m, nn.AdaptiveMaxPool2d) else "avg"
            return self.add(path, _adaptive_pool(out_shape, in_node.shape, mode, path), [src])
        if type(m).__name__ == "VotingLayer" and type(m).__module__.startswith(SJ_LAYER_PREFIX):
            # average over groups of voting_size along the last axis: reshape + mean
            v = int(m.voting_size)
            grouped = self.reshape(src, (*in_node.shape[:-1], in_node.shape[-1] // v, v), path, path)
            return self.add(path, Reduce(out_shape, path, mode="mean", axis=len(in_node.shape)), [grouped])
        if isinstance(m, nn.Conv1d):
            return self.conv1d(m, path, src, out_shape)
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

    def conv1d(self, m: nn.Conv1d, path: str, src: str, out_shape: tuple[int, ...]) -> str:
        """Conv1d over (C, L) as a Conv2d over (C, 1, L) with a 1 × k kernel."""
        if m.padding_mode != "zeros" or isinstance(m.padding, str) and m.padding != "valid":
            raise _unsupported(f"Conv1d padding {m.padding!r}/{m.padding_mode}", path)
        c, length = self.g.node(src).shape
        weight, mask = self.synapse_weights(m, path)
        pad = 0 if isinstance(m.padding, str) else int(m.padding[0])
        flat = self.reshape(src, (c, 1, length), path, f"{path}_as2d")
        node = Conv2d((out_shape[0], 1, out_shape[1]), path, weight=weight[:, :, None, :],
                      bias=_np(m.bias), stride=(1, int(m.stride[0])), padding=(0, pad),
                      dilation=(1, int(m.dilation[0])), groups=m.groups,
                      mask=None if mask is None else mask[:, :, None, :])
        conv = self.add(path, node, [flat])
        return self.reshape(conv, out_shape, path, f"{path}_as1d")

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
        if is_neuron(child) or isinstance(child, PASS_THROUGH):
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
        if isinstance(m, SNNTORCH_RECURRENT):
            return self.recurrent_neuron(m, path, src, shape)
        if isinstance(m, SNNTORCH_NEURON):
            name = self.add(path, snntorch_leaky(m, path, shape), [src])
            self.neuron_sources[name] = path
            return name
        v_reset = None if m.v_reset is None else float(m.v_reset)
        common = dict(v_threshold=float(m.v_threshold), v_reset=v_reset)
        if isinstance(m, sj_neuron.ParametricLIFNode):
            q = float(m.w.detach().to(torch.float64).sigmoid())
            node = Neuron(shape, path, dynamics=PLIF(decay=q, decay_input=bool(m.decay_input), **common))
        elif isinstance(m, sj_neuron.LIFNode):
            node = Neuron(shape, path, dynamics=LIF(tau=float(m.tau), decay_input=bool(m.decay_input), **common))
        else:
            node = Neuron(shape, path, dynamics=IF(**common))
        name = self.add(path, node, [src])
        self.neuron_sources[name] = path
        return name

    def recurrent_neuron(self, m: nn.Module, path: str, src: str, shape: tuple[int, ...]) -> str:
        """snnTorch ``RLeaky``: the neuron reads its input plus V(its spikes one step ago), V
        being its ``recurrent`` module (Linear, Conv2d, or the one-to-one weights V)."""
        node = snntorch_leaky(m, path, shape)
        last = self.add(f"{path}.previous", Delay(shape, path), [])
        rec = m.recurrent
        if isinstance(rec, (nn.Linear, nn.Conv2d)):
            fed = self.module(rec, f"{path}.recurrent", last, shape)
        else:   # RecurrentOneToOne: x · V (a scalar or one weight per neuron)
            v = _np(rec.V).astype(np.float64)
            if v.size == 1:
                fed = self.add(f"{path}.recurrent", Scale(shape, f"{path}.recurrent", factor=float(v.ravel()[0])),
                               [last])
            elif len(shape) == 1 and v.size == shape[0]:
                fed = self.add(f"{path}.recurrent", Linear(shape, f"{path}.recurrent", weight=np.diag(v.ravel()),
                                                           mask=np.eye(shape[0], dtype=bool)), [last])
            else:
                raise _unsupported(f"RLeaky one-to-one weights V of shape {v.shape} on a layer of shape {shape}",
                                   path)
        total = self.add(f"{path}.input", Add(shape, path), [src, fed])
        name = self.add(path, node, [total])
        self.g.set_inputs(last, [name])
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
        if name in _SELECTION or (name == "where" and len(n.args) == 3):
            raise _selection(f"`{name}`", self._module_of(n))
        if name in _RANDOM:
            raise _contextual(f"`{name}` at `{self._module_of(n)}` draws random numbers inside forward() "
                              "(e.g. Poisson encoding)", "encode the inputs outside the model and pass the "
                              "spike trains as --input [T, N, ...]; a compiled network is deterministic")
        if name in ("chunk", "split", "unbind", "tensor_split", "split_with_sizes") and tensor_args:
            return self._pieces(n, name, where)
        if fn is operator.getitem and isinstance(n.args[0], fx.Node) and n.args[0].name in self.pieces:
            return self._piece(n, where)
        if n.name not in self.rec.shapes:
            return None  # a Python value (sizes, their arithmetic): it only feeds shape arguments
        if name in ("size", "dim") or (fn is getattr and n.args[1] in ("shape", "dtype", "device")):
            return None  # a Python value; only feeds shape arguments
        if fn is operator.getitem and n.args[0].name not in self.env:
            return None
        if fn is operator.getitem and not any(isinstance(a, fx.Node) for a in flat_values(n.args[1:])) \
                and n.args[0].name not in self.rec.values:
            sliced = self._basic_index(n, where)
            if sliced is not None:
                return sliced
        special = self._special(n, name, where, tensor_args)
        if special is not None:
            return special
        if name in ("add", "__add__", "iadd", "sub", "__sub__", "isub", "rsub") or fn in (
                operator.add, operator.iadd, torch.add, operator.sub, operator.isub, torch.sub):
            if len(tensor_args) == 1 and n.args[0] is tensor_args[0] or len(tensor_args) == 1 and len(n.args) == 2:
                return self._affine_scalar(n, name, tensor_args[0], where)
            if len(tensor_args) != 2 or n.kwargs:
                raise _unsupported("addition with a constant tensor or scaled operand", where)
            a, b = (self.env[x.name] for x in tensor_args)
            if name in ("sub", "__sub__", "isub") or fn in (operator.sub, operator.isub, torch.sub):
                b = self.add("neg", Scale(self.g.node(b).shape, where, factor=-1.0), [b])
            shape = self.sample_shape(n)
            if self.g.node(a).shape != self.g.node(b).shape:
                raise _unsupported("broadcasting addition", where)
            return self.add("add", Add(shape, where), [a, b])
        if name in ("mul", "__mul__", "mul_", "imul") or fn in (operator.mul, operator.imul, torch.mul):
            consts = [a for a in n.args if isinstance(a, fx.Node) and a.name in self.consts]
            if len(consts) == 0 and len(tensor_args) == 1:
                return self._scale(n, tensor_args[0], where)
            if len(consts) == 0 and len(tensor_args) == 2:  # spike ⊙ spike (SDSA)
                a, b = (self._operand(self.env[x.name], where, self._module_of(n)) for x in tensor_args)
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
        if name in ("mul", "__mul__", "truediv", "div", "__truediv__", "itruediv") or fn in (
                operator.mul, operator.truediv, operator.itruediv, torch.mul, torch.div):
            scalars = [a for a in n.args if isinstance(a, (int, float)) and not isinstance(a, bool)]
            if len(tensor_args) == 1 and len(scalars) == 1:
                f = float(scalars[0])
                if name in ("truediv", "div", "__truediv__", "itruediv") or fn in (operator.truediv,
                                                                                   operator.itruediv, torch.div):
                    if n.args[0] is not tensor_args[0]:
                        raise _unsupported("division of a constant by a tensor", where)
                    f = 1.0 / f
                src = self.env[tensor_args[0].name]
                return self.add("scale", Scale(self.sample_shape(n), where, factor=f), [src])
        raise _unsupported(f"operation `{name}`", where)

    def _operand(self, src: str, where: str, module: str) -> str:
        """A product's factor as a population's spikes: a binary value that is not one
        (``1 − s``, an AND result summed or concatenated) is relayed through OR neurons
        (τ = 1, V_th = 1: they fire exactly when the value is 1)."""
        name = src
        while isinstance(self.g.node(name), (Reshape, Transpose, Slice)) or (
                isinstance(self.g.node(name), Scale) and not self.g.node(name).offset):
            name = self.g.inputs(name)[0]
        if is_population(self.g, name) and not isinstance(self.g.node(name), Input):
            return src
        if not binary_spikes(self.g, src):
            raise _unsupported("elementwise product whose factor is neither spikes nor a 0/1 function of "
                               "spikes (e.g. 1 − spike)", where)
        node = self.g.node(src)
        return self.add("relay", Neuron(node.shape, f"{module} (relay)", dynamics=OrPool()), [src])

    def _pieces(self, n: fx.Node, name: str, where: str) -> None:
        """chunk/split/unbind: remember where each piece lies; getitem makes it a Slice."""
        src = n.args[0]
        dim = n.kwargs.get("dim", n.args[2] if len(n.args) > 2 else 0)
        if name == "unbind":
            dim = n.kwargs.get("dim", n.args[1] if len(n.args) > 1 else 0)
        axis = self.sample_axis(src, dim, where)
        pieces = self.rec.values.get(n.name)
        if not isinstance(pieces, (tuple, list)):
            raise _unsupported(f"`{name}` whose pieces could not be evaluated", where)
        start, spans = 0, []
        for p in pieces:
            size = 1 if name == "unbind" else int(p.shape[dim])
            spans.append((start, start + size))
            start += size
        self.pieces[n.name] = (self.ir_input(src, where), axis, spans, name == "unbind")
        return None

    def _piece(self, n: fx.Node, where: str) -> str:
        src, axis, spans, squeeze = self.pieces[n.args[0].name]
        if not isinstance(n.args[1], int):
            raise _unsupported("indexing the pieces of chunk/split with a slice (take them one by one)", where)
        start, stop = spans[n.args[1]]
        shape = list(self.g.node(src).shape)
        shape[axis] = stop - start
        out = self.add("slice", Slice(tuple(shape), where, axis=axis, start=start, stop=stop), [src])
        return self.reshape(out, self.sample_shape(n), where, n.name) if squeeze else out

    def _basic_index(self, n: fx.Node, where: str) -> str | None:
        """x[..., a:b] / x[:, :, i] on per-sample axes (unit step) as Slice (+ Reshape)."""
        index = n.args[1] if isinstance(n.args[1], tuple) else (n.args[1],)
        if any(i is None for i in index) or not all(isinstance(i, (slice, int, type(Ellipsis))) for i in index):
            return None
        full = self.rec.shapes[n.args[0].name]
        if index.count(Ellipsis) > 1:
            return None
        if Ellipsis in index:
            k = index.index(Ellipsis)
            index = index[:k] + (slice(None),) * (len(full) - len(index) + 1) + index[k + 1:]
        index = index + (slice(None),) * (len(full) - len(index))
        src = self.ir_input(n.args[0], where)
        lead = len(full) - len(self.g.node(src).shape)
        if any(i != slice(None) for i in index[:lead]):
            if self.mode == "m" and lead and isinstance(index[0], int):
                raise _unsupported("indexing one time step inside forward() of a multi-step model", where)
            raise _unsupported("indexing over the time or batch axis", where)
        out = src
        for axis, i in enumerate(index[lead:]):
            if i == slice(None):
                continue
            size = self.g.node(out).shape[axis]
            if isinstance(i, int):
                start, stop = (i % size), (i % size) + 1
            else:
                start, stop, step = i.indices(size)
                if step != 1:
                    raise _unsupported("slicing with a step", where)
            shape = list(self.g.node(out).shape)
            shape[axis] = stop - start
            out = self.add("slice", Slice(tuple(shape), where, axis=axis, start=start, stop=stop), [out])
        return self.reshape(out, self.sample_shape(n), where, n.name)

    def _module_of(self, n: fx.Node) -> str:
        stack = list((n.meta.get("nn_module_stack") or {}).values())
        return stack[-1][0] if stack else "forward"

    def _special(self, n: fx.Node, name: str, where: str, tensor_args: list[fx.Node]) -> str | None:
        """Operations beyond plain layers: neuron tuples, inputs repeated over T, pooling and
        concatenation as functions, and the constructs that cannot compile (named)."""
        fn, args = n.target, n.args
        src0 = args[0] if args and isinstance(args[0], fx.Node) else None
        if fn is operator.getitem and src0 is not None and src0.name in self.rec.values \
                and src0.name in self.env:   # (spikes, state) returned by a neuron module
            if args[1] == 0:
                return self.env[src0.name]
            if not n.users:
                return None   # the state, unused (only the spikes go on)
            raise _contextual(f"`{where}` uses element {args[1]!r} of what neuron `{src0.target}` returns "
                              "(its membrane state) in the computation",
                              "only spikes can pass between layers on a neuromorphic chip; return or record "
                              "the state, but compute the next layer from the spikes (element 0)")
        if fn is operator.getitem and any(isinstance(a, fx.Node) for a in flat_values(args[1:])):
            raise _selection(f"indexing by a tensor (`{where}`)", self._module_of(n))
        if self.layout.convention == "static-m" and src0 is not None and src0.name in self.env:
            full, sh0 = self.rec.shapes.get(n.name), self.rec.shapes.get(src0.name)
            lifts = (name == "unsqueeze" and args[1:2] == (0,)) or (
                fn is operator.getitem and isinstance(args[1], tuple) and args[1][:1] == (None,))
            if lifts and sh0 and sh0[0] == self.B and full[:2] == (1, self.B):
                self.lifted.add(n.name)
                return self.env[src0.name]
            if name in ("repeat", "expand") and (src0.name in self.lifted) and full[:2] == (self.T, self.B):
                return self.env[src0.name]
        if fn is torch.stack and self.layout.convention == "static-m":
            items = args[0]
            if items and all(i is items[0] for i in items) and items[0].name in self.env \
                    and self.rec.shapes[n.name][:2] == (self.T, self.B):
                return self.env[items[0].name]
        if name in ("unsqueeze", "squeeze") and src0 is not None and src0.name in self.env:
            return self.reshape(self.env[src0.name], self.sample_shape(n), where, n.name)
        if name in ("adaptive_avg_pool2d", "avg_pool2d", "max_pool2d", "adaptive_max_pool2d"):
            src = self.ir_input(args[0], where)
            return self.add(name, self._pool_node(name, n, self.g.node(src).shape, where), [src])
        if fn in (torch.cat, torch.concat) or name in ("cat", "concat"):
            return self._concat(n, where)
        return None

    def _pool_node(self, name: str, n: fx.Node, in_shape: tuple[int, ...], where: str) -> Pool2d:
        p = dict(zip(("input", "kernel_size", "stride", "padding"), n.args)) | dict(n.kwargs)
        out = self.sample_shape(n)
        if name.startswith("adaptive"):
            return _adaptive_pool(out, in_shape, "max" if "max" in name else "avg", where)
        k = _pair(p["kernel_size"])
        stride = _pair(p.get("stride") or k)
        if p.get("ceil_mode") or p.get("dilation", 1) not in (1, (1, 1)) or p.get("divisor_override"):
            raise _unsupported(f"{name} with ceil_mode, dilation or divisor_override", where)
        return Pool2d(out, where, mode="max" if "max" in name else "avg", kernel=k, stride=stride,
                      padding=_pair(p.get("padding", 0)),
                      count_include_pad=bool(p.get("count_include_pad", True)))

    def _concat(self, n: fx.Node, where: str) -> str:
        items = n.args[0] if n.args else n.kwargs.get("tensors")
        dim = n.args[1] if len(n.args) > 1 else n.kwargs.get("dim", 0)
        if isinstance(items, fx.Node) and items.name in self.pieces:   # torch.cat(x.chunk(k)) re-joins x
            pieces = items
            items = []
            for k in range(len(self.pieces[pieces.name][2])):
                with self.gm.graph.inserting_after(pieces):
                    items.append(self.gm.graph.call_function(operator.getitem, (pieces, k)))
                self.rec.shapes[items[-1].name] = tuple(self.rec.values[pieces.name][k].shape)
                self.env[items[-1].name] = self._piece(items[-1], where)
        if not isinstance(items, (list, tuple)):
            raise _unsupported("concatenation of a computed sequence", where)
        srcs = [self.ir_input(i, where) for i in items]
        axis = self.sample_axis(items[0], dim, where)
        if len(srcs) == 1:
            return srcs[0]
        return self.add("concat", Concat(self.sample_shape(n), where, axis=axis), srcs)

    def _affine_scalar(self, n: fx.Node, name: str, arg: fx.Node, where: str) -> str:
        """x + c, x − c, c − x (``1 - spike``: SEW-ResNet's IAND) as y = a·x + b."""
        scalars = [a for a in n.args if isinstance(a, (int, float)) and not isinstance(a, bool)]
        if len(scalars) != 1 or n.kwargs:
            raise _unsupported("addition of a constant tensor", where)
        c = float(scalars[0])
        sub = name in ("sub", "__sub__", "isub") or n.target in (operator.sub, operator.isub, torch.sub)
        if name == "rsub" or (sub and n.args[0] is not arg):
            factor, offset = -1.0, c         # c − x
        else:
            factor, offset = 1.0, -c if sub else c
        src = self.env[arg.name]
        return self.add("affine", Scale(self.sample_shape(n), where, factor=factor, offset=offset), [src])

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

    def _check_in_place(self, n: fx.Node, name: str) -> None:
        """An in-place operation changes a tensor other nodes may read later; the traced graph
        follows values, so those reads would see the old value."""
        inplace = (isinstance(n.target, str) and n.target.endswith("_") and not n.target.startswith("_")) \
            or n.target in (operator.iadd, operator.isub, operator.imul, operator.itruediv)
        x = n.args[0] if n.args else None
        if inplace and isinstance(x, fx.Node):
            later = [u for u in x.users if u is not n and self.order.get(u, -1) > self.order.get(n, 0)]
            if later:
                raise _contextual(f"in-place `{name}` at `{self._module_of(n)}` changes a tensor that is read "
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
            raise _unsupported(f"use of `{name}` ({type(exc).__name__}: {exc})", n.format_node()) from None
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
            if keep and n.name not in keep and n.op != "output":
                continue   # not needed by the output of one step (records, later loop steps)
            if n.op == "placeholder":
                if self.g.of_type(Input) and not n.users:
                    continue   # *args / keyword parameters forward() does not use
                if self.g.of_type(Input):
                    raise _unsupported("model with more than one input", n.format_node())
                self.env[n.name] = self.add("input", Input(self.sample_shape(n), "input"), [])
            elif n.op == "call_module":
                m = self.modules[n.target]
                if n.name not in self.rec.shapes:  # every layer we compile returns one tensor
                    if not (is_neuron(m) and n.name in self.rec.values):
                        raise SnnCompileError(
                            f"unsupported layer `{n.target}` of type {type(m).__module__}.{type(m).__name__}",
                            f"supported: {SUPPORTED}", EXIT_UNSUPPORTED)
                src = self.ir_input(n.args[0], n.target) if n.args else None
                if src is None or (len(n.args) != 1 and not is_neuron(m)) or n.kwargs:
                    raise _unsupported("module call with several inputs", n.target)
                shape = self.g.node(src).shape if is_neuron(m) else self.sample_shape(n)
                self.env[n.name] = self.module(m, n.target, src, shape)
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
                arg = self.layout.output if self.layout.output is not None else timefold.output_value(self.gm.graph)
                src = self.ir_input(arg, "output")
                node = self.g.node(src)
                reduced = self.layout.reduced or arg.name in self.time_reduced
                self.g.output_time_reduced = bool(reduced)
                self.add("output", Output(node.shape, "output"), [src])
        return self.g


def trace_model(model: nn.Module, input_shape: tuple[int, ...], name: str = "model",
                masks: dict[str, np.ndarray] | None = None) -> TraceResult:
    """Trace ``model`` for per-sample input ``input_shape`` into an IR graph.

    ``masks``: explicit synapse masks by module path (from ``--masks``), kept in the IR.
    Multi-step models are tried on ``[T, B, ...]`` first, then on a static ``[B, ...]``
    that forward() repeats over time itself; the error of the attempt that got furthest
    is reported.
    """
    mode = step_mode_of(model)
    check_neurons(model)
    detach_pruned(model)
    meta = _meta_copy(model)
    conventions = ("m", "static-m") if mode == "m" else ("s",)
    failures: list[SnnCompileError] = []
    for convention in conventions:
        try:
            return _trace_as(model, meta, convention, tuple(input_shape), name, masks)
        except SnnCompileError as exc:
            failures.append(exc)
    raise max(failures, key=lambda e: getattr(e, "stage", 0))


def _staged(exc: SnnCompileError, stage: int) -> SnnCompileError:
    exc.stage = stage   # 1: the model does not run on this input layout; 2: it runs, cannot compile
    return exc


def _fx_trace(model: nn.Module, meta: nn.Module, shape: tuple[int, ...],
              input_shape: tuple[int, ...]) -> fx.GraphModule:
    reset_states(meta)
    params = list(inspect.signature(model.forward).parameters.values())[1:]
    extra = [p.name for p in params if p.default is inspect.Parameter.empty
             and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
    if extra:
        raise _staged(_unsupported(f"model with more than one input (forward() also takes {', '.join(extra)})",
                                   "forward"), 1)
    concrete = {p.name: p.default for p in params if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)}
    tracer = ShapeTracer(meta, is_leaf, [torch.empty(shape, dtype=_dtype_of(model), device="meta")])
    tracer.elementwise = is_neuron
    try:
        graph = tracer.trace(model, concrete_args=concrete or None)
    except DataDependent as exc:
        raise _staged(SnnCompileError(f"cannot trace the model: {exc}",
                                      "forward() must not branch on tensor values; move such logic out "
                                      "of the model", EXIT_UNSUPPORTED), 1) from None
    except SnnCompileError as exc:
        raise _staged(exc, 1) from None
    except Exception:  # the model does not run on this input layout, or fx refuses it
        if tracer.first_error is not None:   # an operation failed on this input shape
            exc = tracer.first_error
            first = str(exc).splitlines()[0] if str(exc) else ""
            raise _staged(SnnCompileError(f"the model fails on input of per-sample shape {tuple(input_shape)}"
                                          f": {type(exc).__name__}: {first}",
                                          "pass the right --input-shape C,H,W (or an --input file)",
                                          EXIT_USAGE), 1) from None
        first = str(exc).splitlines()[0] if str(exc) else ""
        raise _staged(SnnCompileError(f"cannot trace the model on input of shape {tuple(shape)}: "
                                      f"{type(exc).__name__}: {first}",
                                      "check --input-shape; forward() must not branch on tensor values",
                                      EXIT_UNSUPPORTED), 1) from None
    finally:
        reset_states(meta)
    return fx.GraphModule(tracer.root, graph)


def _trace_as(model: nn.Module, meta: nn.Module, convention: str, input_shape: tuple[int, ...],
              name: str, masks: dict[str, np.ndarray] | None, batch: int = _PROBE_B) -> TraceResult:
    lead = (_PROBE_T, batch) if convention == "m" else (batch,)
    gm = _fx_trace(model, meta, (*lead, *input_shape), input_shape)
    values = values_of(gm.graph)
    layout = timefold.TimeLayout(convention, steps=_PROBE_T if convention == "m" else None)
    modules = dict(gm.named_modules())
    calls = timefold.neuron_calls(gm.graph, lambda t: is_neuron(modules[t]))
    for c in gm.graph.nodes:   # constants made in forward(): zero starts of accumulators and states
        if c.op == "get_attr":
            c.meta["constant"] = _fetch_attr(gm, c.target)
    try:
        if convention == "static-m":
            steps = timefold.lift_steps(gm.graph, values, batch)
            if steps is None:
                raise _unsupported("multi-step model that neither takes [T, B, ...] input nor repeats "
                                   "its input over time", "forward")
            if steps == batch and batch == _PROBE_B:   # T and B would be indistinguishable
                return _trace_as(model, meta, convention, input_shape, name, masks, batch=7)
            layout.steps = steps
        elif convention == "s" and calls and max(len(c) for c in calls.values()) > 1:
            layout = timefold.fold_loop(gm.graph, calls)
        if layout.convention != "loop":
            timefold.check_states(calls, looped=False)
        if layout.output is None:
            out = timefold.output_value(gm.graph)
            if isinstance(out, fx.Node):
                # everything but what only the other returned values need (snnTorch's membrane
                # records): a branch the output does not read stays, for the dead_neurons pass
                needed = timefold.ancestors(out)
                for call in (c for per_module in calls.values() for c in per_module):
                    needed |= timefold.ancestors(call)
                ret = next(n for n in gm.graph.nodes if n.op == "output").args[0]
                extra: set[str] = set()
                for v in flat_values(ret):
                    if isinstance(v, fx.Node) and v is not out:
                        extra |= timefold.ancestors(v)
                layout.keep = {n.name for n in gm.graph.nodes} - (extra - needed)
        ops = {n.name for n in gm.graph.nodes if n.op in ("call_function", "call_method", "call_module")}
        rec = _recorded(values, (layout.keep or ops) & ops)
        if rec is None:
            rec, _ = _record_shapes(model, gm.graph, lead, input_shape)
        conv = _Converter(gm, rec, convention, name, dict(meta.named_modules()), layout, batch)
        conv.masks = dict(masks or {})
        graph = conv.run()
    except SnnCompileError as exc:
        raise _staged(exc, 2) from None
    for attr in ("patch_mask", "token_mask"):
        buf = getattr(model, attr, None)
        if isinstance(buf, torch.Tensor) and attr not in conv.consts_used:
            graph.patch_mask = buf.detach().cpu().numpy().astype(bool)
    convention = layout.convention
    graph.step_mode = convention
    graph.model_steps = layout.steps if convention in ("static-m", "loop") else None
    graph.output_steps = layout.output_steps
    graph.input_shape = tuple(int(d) for d in input_shape)
    return TraceResult(graph, convention, conv.neuron_sources)


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
        elif isinstance(m, SNNTORCH_NEURON) and callable(getattr(m, "reset_mem", None)):
            m.reset_mem()   # snnTorch's hidden state (init_hidden=True) would carry over to the next batch
