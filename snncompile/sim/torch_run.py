"""Run the source PyTorch model in float64 and record every neuron module's spikes."""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from snncompile.frontend.taps import SpikeTap


@dataclass
class TorchRun:
    spikes: dict[str, np.ndarray] = field(default_factory=dict)  # module path → [T, B, ...]
    output: np.ndarray | None = None   # [T, B, ...], or [B, ...] if the model reduces time


def run_torch(model: nn.Module, x: np.ndarray, step_mode: str, paths: list[str],
              time_reduced: bool = False, batch_size: int = 256, output_steps: bool = False) -> TorchRun:
    """Run ``model`` on x [T, B, ...] (float64 copy, state reset per batch), recording the
    spikes of the neuron modules ``paths`` (and of :class:`SpikeTap` inline neurons).

    ``step_mode`` is the calling convention (``snncompile.frontend.timefold``): "s" one call
    per step, "m" one call on [T, B, ...], "static-m"/"loop" one call on the static x[0]
    (the model runs its own T steps), "loop-in" one call on [T, B, ...] read step by step,
    "m-bf" one call on batch-first [B, T, ...] (the model transposes it). ``time_reduced``: the model's output is [B, ...];
    ``output_steps``: it returns a list of per-step outputs (stacked here to [T, B, ...]).
    """
    from snncompile.frontend.trace import detach_pruned, reset_states

    detach_pruned(model)
    model = copy.deepcopy(model).to(torch.float64).eval()
    modules = dict(model.named_modules())
    T, B = x.shape[:2]
    rec: dict[str, list[list[np.ndarray]]] = {p: [] for p in paths}
    outs: list[np.ndarray] = []
    current: dict[str, list[np.ndarray]] = {}

    def hook(path: str):
        def fn(_m, _inp, out):
            if isinstance(out, (tuple, list)):   # (spikes, state), e.g. snnTorch
                out = out[0]
            current[path].append(out.detach().numpy().astype(np.uint8))
        return fn

    def tap(path: str):
        def fn(_m, args):
            current[path].append(args[0].detach().numpy().astype(np.uint8))
        return fn

    handles = [modules[p].register_forward_hook(hook(p)) for p in paths if not isinstance(p, SpikeTap)]
    handles += [modules[p.module].register_forward_pre_hook(tap(p)) for p in paths
                if isinstance(p, SpikeTap) and p.module is not None]
    paths = [p for p in paths if not isinstance(p, SpikeTap) or p.module is not None]   # the rest: unobservable
    # snnTorch's spikes are float32 whatever the model's dtype: promote them (0/1, lossless)
    handles += [m.register_forward_pre_hook(_to_float64) for m in modules.values()
                if any(True for _ in m.parameters(recurse=False))]
    try:
        with torch.no_grad():
            for b0 in range(0, B, batch_size):
                xb = torch.as_tensor(np.array(x[:, b0:b0 + batch_size], dtype=np.float64))
                reset_states(model)
                current.clear()
                current.update({p: [] for p in paths})
                if step_mode in ("m", "static-m", "m-bf"):   # "m-bf": the model takes [B, T, ...]
                    out = model({"m": xb, "m-bf": xb.transpose(0, 1)}.get(step_mode, xb[0]))
                    outs.append(_first(out).numpy())
                    for p in paths:
                        rec[p].append(current[p][0])
                elif step_mode in ("loop", "loop-in"):   # "loop-in": forward() reads x[t] itself
                    out = model(xb[0] if step_mode == "loop" else xb)
                    outs.append((torch.stack(list(out)) if output_steps else _first(out)).numpy())
                    for p in paths:
                        rec[p].append(np.stack(current[p]))
                else:
                    steps = [_first(model(xb[t])).numpy() for t in range(T)]
                    outs.append(np.stack(steps))
                    for p in paths:
                        rec[p].append(np.stack(current[p]))
    finally:
        for h in handles:
            h.remove()
        reset_states(model)
    res = TorchRun()
    for p in paths:
        res.spikes[p] = np.concatenate(rec[p], axis=1)
    res.output = np.concatenate(outs, axis=0 if time_reduced else 1)
    return res


def _first(out):
    """The prediction value of what the model returns (the first of several outputs)."""
    while isinstance(out, (tuple, list)):
        out = out[0]
    return out


def _to_float64(_m, args):
    return tuple(a.to(torch.float64) if isinstance(a, torch.Tensor) and a.dtype == torch.float32 else a
                 for a in args)
