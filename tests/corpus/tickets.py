"""Turn a freshly built model into a small "lottery ticket": exact-zero pruning of 90 % of
each synaptic layer, BatchNorm statistics calibrated on real images (so neurons fire), and
real inputs (sklearn's digits, upscaled to the model's input size)."""

from __future__ import annotations

import numpy as np
import torch
from sklearn.datasets import load_digits
from spikingjelly.activation_based import functional
from torch import nn

SPARSITY = 0.9


def images(n: int, shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    """n digits images [n, *shape] in [0, 1]: 8×8 upscaled by pixel repetition, every channel
    the same picture."""
    d = load_digits()
    idx = np.random.default_rng(seed).choice(len(d.images), n, replace=False)
    c, h, w = shape
    img = d.images[idx] / 16.0
    img = np.kron(img, np.ones((h // 8, w // 8)))
    return np.repeat(img[:, None], c, axis=1).astype(np.float64)


def prune_(model: nn.Module, sparsity: float = SPARSITY) -> None:
    """Keep the largest (1 − sparsity) weights of every Conv/Linear layer (at least one per
    output row), zero the rest: a ticket's exact zeros."""
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, (nn.Conv1d, nn.Conv2d, nn.Linear)):
                w = m.weight
                k = max(1, int(round(w.numel() * (1 - sparsity))))
                cut = w.abs().flatten().kthvalue(w.numel() - k + 1).values
                keep = w.abs() >= cut
                rows = w.abs().flatten(1).argmax(1)
                keep.view(w.shape[0], -1)[torch.arange(w.shape[0]), rows] = True
                w.mul_(keep)


def calibrate_(model: nn.Module, x: torch.Tensor, gain: float = 1.5, **call) -> None:
    """Set every BatchNorm's running statistics to those of a forward pass on ``x`` and
    scale its affine weight by ``gain`` (neurons then see inputs of spread ~gain)."""
    bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not bns:   # no BatchNorm to calibrate: scale each layer's weights instead
        _scale_weights_(model, x, gain, **call)
        return
    for bn in bns:
        bn.reset_running_stats()
        bn.momentum = None
    model.train()
    with torch.no_grad():
        functional.reset_net(model)
        model(x, **call)
        functional.reset_net(model)
        for bn in bns:
            if bn.affine:
                bn.weight.mul_(gain)
                bn.bias.add_(0.2)
    model.eval()


def ticket(model: nn.Module, shape: tuple[int, ...], multi_step_input: int | None = None,
           seed: int = 0) -> nn.Module:
    """Prune, calibrate and cast to float64; ``multi_step_input``: T if the model takes [T, B, ...]."""
    torch.manual_seed(seed)
    prune_(model)
    x = torch.as_tensor(images(16, shape, seed=seed + 1), dtype=torch.float32)
    if multi_step_input:
        x = x.unsqueeze(0).repeat(multi_step_input, *([1] * x.dim()))
    calibrate_(model, x)
    return model.double()


def _scale_weights_(model: nn.Module, x: torch.Tensor, gain: float, **call) -> None:
    """Scale every Conv/Linear so its output on ``x`` has standard deviation ``gain``."""
    layers = [m for m in model.modules() if isinstance(m, (nn.Conv1d, nn.Conv2d, nn.Linear))]
    for layer in layers:
        seen: list[torch.Tensor] = []
        h = layer.register_forward_hook(lambda _m, _i, out, seen=seen: seen.append(out.detach()))
        with torch.no_grad():
            functional.reset_net(model)
            model(x, **call)
        h.remove()
        std = float(torch.cat([s.flatten() for s in seen]).std())
        with torch.no_grad():
            layer.weight.mul_(gain / max(std, 1e-9))
            if layer.bias is not None:
                layer.bias.mul_(gain / max(std, 1e-9))
    functional.reset_net(model)
