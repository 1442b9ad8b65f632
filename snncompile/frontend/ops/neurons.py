"""Spiking neurons: the call of a neuron module (any family), and spikingjelly's neurons,
compiled from their class's equations. Other families: ``snntorch_neurons``, ``hand_neurons``
(each registered with ``registry.neuron_family``)."""

from __future__ import annotations

import math

import torch
from torch import nn

from snncompile.errors import EXIT_UNSUPPORTED, EXIT_USAGE, SnnCompileError
from snncompile.frontend.ops.common import NEURON_TYPES, unsupported
from snncompile.frontend.ops.context import Converter
from snncompile.frontend.ops.registry import family_of, neuron_family
from snncompile.ir import Neuron
from snncompile.ir.dynamics import IF, LIF, PLIF

try:  # spikingjelly is optional at import time: plain-torch models need none of it
    from spikingjelly.activation_based import neuron as sj_neuron
except ImportError:  # pragma: no cover
    sj_neuron = None


def neuron_call(cx: Converter, m: nn.Module, path: str, src: str, out_shape: tuple[int, ...]) -> str:
    """A spiking neuron module called once (its state is the compiled population's), built by
    the family that claims it."""
    cx.neuron_calls[path] = cx.neuron_calls.get(path, 0) + 1
    if cx.neuron_calls[path] > 1:
        raise unsupported("neuron module called more than once (it would share state)", path)
    family = family_of(m)
    if family is None:
        raise unsupported(f"module {type(m).__qualname__} as a neuron", path)
    name = family.build(cx, m, path, src, cx.g.node(src).shape)
    if family.recorded:
        cx.neuron_sources[name] = path
    return name


@neuron_family("spikingjelly", lambda m: isinstance(m, NEURON_TYPES), by_class=lambda cls: issubclass(cls, NEURON_TYPES))
def spikingjelly_neuron(cx: Converter, m: nn.Module, path: str, src: str, shape: tuple[int, ...]) -> str:
    """spikingjelly's IFNode, LIFNode and ParametricLIFNode (equations in their dynamics types)."""
    v_reset = None if m.v_reset is None else float(m.v_reset)
    common = dict(v_threshold=float(m.v_threshold), v_reset=v_reset)
    if isinstance(m, sj_neuron.ParametricLIFNode):
        q = float(m.w.detach().to(torch.float64).sigmoid())
        node = Neuron(shape, path, dynamics=PLIF(decay=q, decay_input=bool(m.decay_input), **common))
    elif isinstance(m, sj_neuron.LIFNode):
        node = Neuron(shape, path, dynamics=LIF(tau=float(m.tau), decay_input=bool(m.decay_input), **common))
    else:
        node = Neuron(shape, path, dynamics=IF(**common))
    return cx.add(path, node, [src])


def stock_neuron(m: nn.Module) -> bool:
    """spikingjelly's own IFNode, LIFNode or ParametricLIFNode, or a subclass that only has
    a constructor of its own (the legacy ``clock_driven`` names): its output is one spike per
    input element, of the input's dtype, in either step mode."""
    for cls in type(m).__mro__:
        if cls in NEURON_TYPES:
            return True
        if set(vars(cls)) - _CONSTRUCTOR_ONLY:
            return False
    return False


_CONSTRUCTOR_ONLY = frozenset({"__init__", "__module__", "__doc__", "__qualname__", "__firstlineno__",
                               "__static_attributes__"})


_EQUATIONS = ("neuronal_charge", "neuronal_fire", "neuronal_reset")   # replaced: other dynamics
_STEPS = ("single_step_forward", "multi_step_forward", "forward")       # replaced without super(): too


def _redefined(cls: type) -> list[str]:
    own = vars(cls)
    out = [f for f in _EQUATIONS if f in own]
    out += [f for f in _STEPS if f in own and "super" not in getattr(own[f], "__code__", compile("", "", "exec")).co_names]
    return out


def check_neurons(model: nn.Module, named: list[tuple[str, nn.Module]] | None = None) -> None:
    """Neurons are compiled by their class's known equations: a subclass that redefines
    them, or parameters that are not finite, would compile to the wrong network.
    ``named``: ``list(model.named_modules())``, when the caller has it."""
    for path, m in named or model.named_modules():
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
