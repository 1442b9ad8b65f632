"""spikingjelly's legacy ``clock_driven`` package (≤ 0.0.0.0.14), mapped onto ``activation_based``.

Published SNN code (Spikformer, Kim et al.'s lottery tickets) imports
``spikingjelly.clock_driven.neuron.MultiStepLIFNode`` and friends, which spikingjelly 2.0
removed. Their equations are the ``activation_based`` ones (IF: H = V + X; LIF:
H = V + (X − (V − V_r))/τ with ``decay_input``; PLIF: 1/τ = sigmoid(w); fire on H ≥ V_th;
hard or soft reset), so each legacy class is the new class with the legacy constructor:
single-step classes keep ``step_mode='s'``, ``MultiStep*`` ones run ``step_mode='m'``.
:func:`install` registers the legacy module names when user code is loaded and only if
the installed spikingjelly lacks them; legacy-only options (``backend='cupy'``,
``lava_s_cale``) are accepted and ignored (they change speed, not values).
"""

from __future__ import annotations

import sys
import types
from typing import Any

_LEGACY_ONLY = ("backend", "lava_s_cale", "cupy_fp32_inference", "monitor_state")


def _classes() -> dict[str, type]:
    from spikingjelly.activation_based import neuron

    def legacy(base: type, name: str, step_mode: str) -> type:
        def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
            for key in _LEGACY_ONLY:
                kwargs.pop(key, None)
            if base is neuron.ParametricLIFNode and "tau" in kwargs:   # very old spelling
                kwargs["init_tau"] = kwargs.pop("tau")
            base.__init__(self, *args, step_mode=step_mode, **kwargs)

        return type(name, (base,), {"__init__": __init__, "__module__": "spikingjelly.clock_driven.neuron",
                                    "__doc__": f"Legacy ``clock_driven.neuron.{name}`` = "
                                               f"``activation_based.neuron.{base.__name__}`` (step_mode "
                                               f"{step_mode!r})."})

    return {
        "IFNode": legacy(neuron.IFNode, "IFNode", "s"),
        "LIFNode": legacy(neuron.LIFNode, "LIFNode", "s"),
        "ParametricLIFNode": legacy(neuron.ParametricLIFNode, "ParametricLIFNode", "s"),
        "MultiStepIFNode": legacy(neuron.IFNode, "MultiStepIFNode", "m"),
        "MultiStepLIFNode": legacy(neuron.LIFNode, "MultiStepLIFNode", "m"),
        "MultiStepParametricLIFNode": legacy(neuron.ParametricLIFNode, "MultiStepParametricLIFNode", "m"),
    }


def _layer_module(layer: types.ModuleType) -> types.ModuleType:
    """``clock_driven.layer``: today's ``layer`` plus the 0.0.0.0.12 multi-step names published
    code imports (``MultiStepDropout``: the same dropout, a no-op at inference)."""
    from torch import nn

    mod = types.ModuleType("spikingjelly.clock_driven.layer")
    mod.__dict__.update({k: v for k, v in vars(layer).items() if not k.startswith("__")})

    def multi_step(base: type, name: str) -> type:
        def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
            kwargs.pop("dropout_spikes", None)
            base.__init__(self, *args, **kwargs)
            self.step_mode = "m"
        # today's module name: the tracer keeps spikingjelly's layer wrappers as units
        return type(name, (base,), {"__init__": __init__, "__module__": base.__module__})

    mod.MultiStepDropout = multi_step(layer.Dropout, "MultiStepDropout")
    mod.MultiStepDropout2d = multi_step(layer.Dropout2d, "MultiStepDropout2d")
    mod.MultiStepContainer = layer.MultiStepContainer
    mod.SeqToANNContainer = layer.SeqToANNContainer
    mod.nn = nn
    return mod


def install() -> bool:
    """Make ``spikingjelly.clock_driven.{neuron, layer, functional, surrogate}`` importable
    (True if this installed them; False if spikingjelly is missing or has them already)."""
    if "spikingjelly.clock_driven" in sys.modules:
        return False
    try:
        import spikingjelly
        from spikingjelly.activation_based import functional, layer, surrogate
    except ImportError:
        return False
    try:
        __import__("spikingjelly.clock_driven")
        return False
    except ImportError:
        pass
    pkg = types.ModuleType("spikingjelly.clock_driven")
    pkg.__path__ = []   # a package, so "from spikingjelly.clock_driven import neuron" works
    from spikingjelly.activation_based import encoding, neuron

    neuron_mod = types.ModuleType("spikingjelly.clock_driven.neuron")
    neuron_mod.BaseNode = neuron.BaseNode   # subclassed by published custom neurons
    for name, cls in _classes().items():
        setattr(neuron_mod, name, cls)
    mods = {"neuron": neuron_mod, "layer": _layer_module(layer), "functional": functional,
            "surrogate": surrogate, "encoding": encoding}
    for name, mod in mods.items():
        setattr(pkg, name, mod)
        sys.modules[f"spikingjelly.clock_driven.{name}"] = mod
    sys.modules["spikingjelly.clock_driven"] = pkg
    spikingjelly.clock_driven = pkg
    return True
