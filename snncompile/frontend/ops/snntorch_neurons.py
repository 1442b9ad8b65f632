"""snnTorch's neurons (Leaky, RLeaky, Synaptic), compiled where their equations are exact."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from snncompile.errors import EXIT_UNSUPPORTED, SnnCompileError
from snncompile.frontend.ops.common import (
    SNNTORCH_LEAKY,
    SNNTORCH_NEURON,
    SNNTORCH_RECURRENT,
    as_numpy,
    unsupported,
)
from snncompile.frontend.ops.context import Converter
from snncompile.frontend.ops.registry import neuron_family
from snncompile.ir import Add, Delay, Linear, Neuron, Scale
from snncompile.ir.dynamics import IF, LIF, CubaLIF


def _reset_snntorch(m: nn.Module) -> None:
    if callable(getattr(m, "reset_mem", None)):
        m.reset_mem()   # snnTorch's hidden state (init_hidden=True) would carry over to the next batch


@neuron_family("snntorch", lambda m: isinstance(m, SNNTORCH_NEURON), reset=_reset_snntorch,
               by_class=lambda cls: issubclass(cls, SNNTORCH_NEURON))
def snntorch_neuron(cx: Converter, m: nn.Module, path: str, src: str, shape: tuple[int, ...]) -> str:
    if isinstance(m, SNNTORCH_RECURRENT):
        return recurrent_neuron(cx, m, path, src, shape)
    return cx.add(path, snntorch_leaky(m, path, shape), [src])


def _snntorch_problems(m: nn.Module, synaptic: bool, recurrent: bool, mech: str, delayed: bool,
                       beta: torch.Tensor, th: torch.Tensor) -> list[str]:
    """What in an snnTorch neuron's configuration the compiled neuron cannot reproduce
    (``snntorch_leaky``'s docstring says why for each)."""
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
    return problems


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
    problems = _snntorch_problems(m, synaptic, recurrent, mech, delayed, beta, th)
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


def recurrent_neuron(cx: Converter, m: nn.Module, path: str, src: str, shape: tuple[int, ...]) -> str:
    """snnTorch ``RLeaky``: the neuron reads its input plus V(its spikes one step ago), V
    being its ``recurrent`` module (Linear, Conv2d, or the one-to-one weights V)."""
    node = snntorch_leaky(m, path, shape)
    last = cx.add(f"{path}.previous", Delay(shape, path), [])
    rec = m.recurrent
    if isinstance(rec, (nn.Linear, nn.Conv2d)):
        fed = cx.module(rec, f"{path}.recurrent", last, shape)
    else:   # RecurrentOneToOne: x · V (a scalar or one weight per neuron)
        v = as_numpy(rec.V).astype(np.float64)
        if v.size == 1:
            fed = cx.add(f"{path}.recurrent", Scale(shape, f"{path}.recurrent", factor=float(v.ravel()[0])),
                         [last])
        elif len(shape) == 1 and v.size == shape[0]:
            fed = cx.add(f"{path}.recurrent", Linear(shape, f"{path}.recurrent", weight=np.diag(v.ravel()),
                                                     mask=np.eye(shape[0], dtype=bool)), [last])
        else:
            raise unsupported(f"RLeaky one-to-one weights V of shape {v.shape} on a layer of shape {shape}",
                              path)
    total = cx.add(f"{path}.input", Add(shape, path), [src, fed])
    name = cx.add(path, node, [total])
    cx.g.set_inputs(last, [name])
    return name
