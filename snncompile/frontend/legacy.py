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

import importlib.abc
import sys
import types
from typing import Any

from snncompile.errors import EXIT_UNSUPPORTED, SnnCompileError

_PKG = "spikingjelly.clock_driven"

_LEGACY_ONLY = ("backend", "lava_s_cale", "cupy_fp32_inference", "monitor_state")

# Names of spikingjelly 0.0.0.0.12's clock_driven package (read from its source) that have no
# counterpart snncompile compiles: importing one is a clear error naming it, not a missing name.
_REFUSED_NEURONS = ("AdaptiveBaseNode", "QIFNode", "EIFNode", "MultiStepEIFNode", "GeneralNode",
                    "MultiStepGeneralNode", "LIAFNode")
_REFUSED_LAYERS = ("DCT", "AXAT", "ChannelsPool", "ConvBatchNorm2d", "SpikeLinear", "SpikeConv1d",
                   "SpikeConv2d", "SpikeConv3d", "STDPLearner")
_REFUSED_FUNCTIONS = ("spike_cluster", "fused_conv2d_weight_of_convbn2d", "fused_conv2d_bias_of_convbn2d",
                      "scale_fused_conv2d_weight_of_convbn2d", "scale_fused_conv2d_bias_of_convbn2d",
                      "fuse_convbn2d", "spike_linear", "spike_conv1d", "spike_conv2d", "spike_conv3d")
_REFUSED_SURROGATES = ("check_cuda_grad", "MultiArgsSurrogateFunctionBase")
_ZOO = ("spiking_resnet", "sew_resnet", "spiking_vgg", "parametric_lif_net", "train_classify", "train_imagenet")
_REFUSED_MODULES = ("accelerating", "ann2snn", "cu_kernel_opt", "neuron_kernel", "lava_exchange", "rnn",
                    "spike_op", "tensor_cache", "examples", "monitor", "model", *(f"model.{m}" for m in _ZOO))
SUPPORTED_NEURONS = ("IFNode", "LIFNode", "ParametricLIFNode", "MultiStepIFNode", "MultiStepLIFNode",
                     "MultiStepParametricLIFNode")


def refused(name: str) -> SnnCompileError:
    """The error for a legacy name snncompile does not map (``name``: its full dotted name)."""
    if ".model" in name:
        hint = ("build the model from spikingjelly.activation_based.model (the same architectures; "
                "functional.set_step_mode(net, 'm') for multi-step) and save its state_dict with --arch")
    elif name.startswith(f"{_PKG}.neuron."):
        hint = "use IFNode, LIFNode or ParametricLIFNode (or their MultiStep* forms): " + ", ".join(SUPPORTED_NEURONS)
    else:
        hint = ("replace it by its spikingjelly.activation_based counterpart, or drop it from the code "
                "snncompile loads (training and CUDA helpers are not needed to compile)")
    return SnnCompileError(f"`{name}` (spikingjelly ≤ 0.0.0.0.14's clock_driven package) has no counterpart "
                           "snncompile compiles", hint, EXIT_UNSUPPORTED)


def _refusing(mod: types.ModuleType, names: tuple[str, ...]) -> None:
    """``mod.<name>`` for a name in ``names`` raises :func:`refused` (others: AttributeError)."""
    def __getattr__(attr: str) -> Any:
        if attr in names:
            raise refused(f"{mod.__name__}.{attr}")
        raise AttributeError(f"module {mod.__name__!r} has no attribute {attr!r}")

    mod.__getattr__ = __getattr__


class _RefusedFinder(importlib.abc.MetaPathFinder):
    """``import spikingjelly.clock_driven.<sub>`` of a legacy module snncompile does not map."""

    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> None:
        if fullname.startswith(f"{_PKG}.") and fullname[len(_PKG) + 1:] in _REFUSED_MODULES:
            raise refused(fullname)
        return None


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
    for n in (1, 2, 3):   # tdBN: multi-step only today
        base = getattr(layer, f"ThresholdDependentBatchNorm{n}d")
        setattr(mod, f"MultiStepThresholdDependentBatchNorm{n}d",
                multi_step(base, f"MultiStepThresholdDependentBatchNorm{n}d"))
    mod.MultiStepTemporalWiseAttention = multi_step(layer.TemporalWiseAttention, "MultiStepTemporalWiseAttention")
    mod.MultiStepContainer = layer.MultiStepContainer
    mod.SeqToANNContainer = layer.SeqToANNContainer
    mod.nn = nn
    for name in _REFUSED_LAYERS:
        mod.__dict__.pop(name, None)   # today's STDPLearner is another class: refused by name too
    _refusing(mod, _REFUSED_LAYERS)
    return mod


def install() -> bool:
    """Make ``spikingjelly.clock_driven.{neuron, layer, functional, surrogate, encoding, base}``
    importable, and its names snncompile does not map refused by name (True if this
    installed them; False if spikingjelly is missing or has them already)."""
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
    from spikingjelly.activation_based import base, encoding, neuron

    neuron_mod = types.ModuleType("spikingjelly.clock_driven.neuron")
    neuron_mod.BaseNode = neuron.BaseNode   # subclassed by published custom neurons
    for name, cls in _classes().items():
        setattr(neuron_mod, name, cls)
    _refusing(neuron_mod, _REFUSED_NEURONS)
    functional_mod = types.ModuleType("spikingjelly.clock_driven.functional")
    functional_mod.__dict__.update({k: v for k, v in vars(functional).items() if not k.startswith("__")})
    _refusing(functional_mod, _REFUSED_FUNCTIONS)
    surrogate_mod = types.ModuleType("spikingjelly.clock_driven.surrogate")
    surrogate_mod.__dict__.update({k: v for k, v in vars(surrogate).items() if not k.startswith("__")})
    _refusing(surrogate_mod, _REFUSED_SURROGATES)
    mods = {"neuron": neuron_mod, "layer": _layer_module(layer), "functional": functional_mod,
            "surrogate": surrogate_mod, "encoding": encoding, "base": base}
    for name, mod in mods.items():
        setattr(pkg, name, mod)
        sys.modules[f"spikingjelly.clock_driven.{name}"] = mod
    _refusing(pkg, _REFUSED_MODULES)
    if not any(isinstance(f, _RefusedFinder) for f in sys.meta_path):
        sys.meta_path.insert(0, _RefusedFinder())
    sys.modules["spikingjelly.clock_driven"] = pkg
    spikingjelly.clock_driven = pkg
    return True
