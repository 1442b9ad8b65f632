"""Models whose weights are computed in ``forward`` (our own code following published patterns,
none copied): weight standardisation (spikingjelly's ``layer.WSConv2d`` as shipped, and written
by hand), learned masks ``torch.where(mask_value > 0, w, 0)`` (Shi et al., ICLR 2024 style),
``w * mask_buffer`` and a layer's weight used functionally, weight norm (``parametrize`` and the
legacy hook), and binary-weight SNNs: ``sign(w)·α`` through a custom autograd Function and
``torch.where(w >= 0, α, −α)``, with the first and last layer fake-quantised to 8 bits.

Every family is the same CIFAR-size backbone (32 px, 128 channels, 90 % of the synapses pruned)
built from its layer classes; the weights are calibrated so every layer fires.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from corpus.tickets import images
from spikingjelly.activation_based import functional, layer, neuron
from torch import nn
from torch.nn.utils import parametrizations

CIFAR = (3, 32, 32)
KEEP = 0.1   # 90 % pruned


class HandWSConv(nn.Conv2d):
    """Weight standardisation written by hand (per output channel, unbiased=False)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = self.weight
        mu = w.mean(dim=(1, 2, 3), keepdim=True)
        sd = w.var(dim=(1, 2, 3), keepdim=True, unbiased=False).add(1e-5).sqrt()
        return F.conv2d(x, (w - mu) / sd * self.scale, self.bias, self.stride, self.padding)


class LearnedMaskConv(nn.Conv2d):
    """A ticket kept as a learned score per weight: a synapse exists where the score is positive."""

    def __init__(self, *a, **kw) -> None:
        super().__init__(*a, **kw)
        self.mask_value = nn.Parameter(torch.where(torch.rand_like(self.weight) < KEEP, 1.0, -1.0))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, torch.where(self.mask_value > 0, self.weight, 0), self.bias, self.stride, self.padding)


class LearnedMaskLinear(nn.Linear):
    def __init__(self, *a, **kw) -> None:
        super().__init__(*a, **kw)
        self.mask_value = nn.Parameter(torch.where(torch.rand_like(self.weight) < KEEP, 1.0, -1.0))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, torch.where(self.mask_value > 0, self.weight, 0), self.bias)


class BufferMaskConv(nn.Conv2d):
    """A ticket as a 0/1 buffer multiplied into the weight at every call."""

    def __init__(self, *a, **kw) -> None:
        super().__init__(*a, **kw)
        self.register_buffer("mask", (torch.rand_like(self.weight) < KEEP).float())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._conv_forward(x, self.weight * self.mask, self.bias)


class FunctionalHead(nn.Module):
    """A classifier calling F.linear on another module's parameters (``self.fc.weight``)."""

    def __init__(self, n_in: int, n_out: int) -> None:
        super().__init__()
        self.fc = nn.Linear(n_in, n_out)
        self.register_buffer("keep", (torch.rand(n_out, n_in) < KEEP).float())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.fc.weight * self.keep, self.fc.bias)


class SignSTE(torch.autograd.Function):
    """sign with a straight-through gradient; 0 maps to +1, as in published BNN code."""

    @staticmethod
    def forward(ctx, w: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(w)
        return torch.where(w >= 0, torch.ones_like(w), -torch.ones_like(w))

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        (w,) = ctx.saved_tensors
        return grad * (w.abs() <= 1).to(grad.dtype)


class BinaryConv(nn.Conv2d):
    """sign(w)·α with α = mean |w| per output channel, the ticket kept as a mask buffer."""

    def __init__(self, *a, **kw) -> None:
        super().__init__(*a, **kw)
        self.register_buffer("mask", (torch.rand_like(self.weight) < KEEP).float())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        alpha = self.weight.abs().mean(dim=(1, 2, 3), keepdim=True)
        return F.conv2d(x, SignSTE.apply(self.weight) * alpha * self.mask, self.bias, self.stride, self.padding)


class WhereBinaryConv(BinaryConv):
    """torch.where(w >= 0, α, −α) with a per-channel α."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        alpha = self.weight.abs().mean(dim=(1, 2, 3), keepdim=True)
        w = torch.where(self.weight >= 0, alpha, -alpha) * self.mask
        return F.conv2d(x, w, self.bias, self.stride, self.padding)


def _fake_quant(w: torch.Tensor) -> torch.Tensor:
    scale = w.abs().max() / 127
    return torch.clamp(torch.round(w / scale), -128, 127) * scale


class Quant8Conv(nn.Conv2d):
    """First layer fake-quantised to 8 bits in forward (round/clamp of w / scale, times scale)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, _fake_quant(self.weight), self.bias, self.stride, self.padding)


class Quant8Linear(nn.Linear):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, _fake_quant(self.weight), self.bias)


def _ws(cin: int, cout: int, k: int, **kw) -> nn.Module:
    conv = HandWSConv(cin, cout, k, **kw)
    conv.register_parameter("scale", nn.Parameter(torch.ones(cout, 1, 1, 1)))
    return conv


def _wn_conv(cin: int, cout: int, k: int, **kw) -> nn.Module:
    return parametrizations.weight_norm(nn.Conv2d(cin, cout, k, **kw))


def _wn_linear(n_in: int, n_out: int) -> nn.Module:
    return torch.nn.utils.weight_norm(nn.Linear(n_in, n_out))   # the legacy pre-hook form


class Backbone(nn.Module):
    """conv 3→32 (32 px) → conv 32→128 /2 → conv 128→128 /2 → avg-pool → fc 2048→10, each
    followed by a spikingjelly neuron (single step: the model is called once per time step)."""

    def __init__(self, first: Callable, conv: Callable, last: Callable) -> None:
        super().__init__()
        self.conv1 = first(3, 32, 3, padding=1)
        self.sn1 = neuron.IFNode()
        self.conv2 = conv(32, 128, 3, stride=2, padding=1)
        self.sn2 = neuron.LIFNode(tau=2.0)
        self.conv3 = conv(128, 128, 3, stride=2, padding=1)
        self.sn3 = neuron.IFNode(v_reset=None)
        self.pool = nn.AvgPool2d(2)
        self.fc = last(128 * 4 * 4, 10)
        self.sn4 = neuron.IFNode()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.sn1(self.conv1(x))
        x = self.sn2(self.conv2(x))
        x = self.pool(self.sn3(self.conv3(x)))
        return self.sn4(self.fc(x.flatten(1)))


@dataclass
class Family:
    name: str
    first: Callable
    conv: Callable
    last: Callable
    binary: tuple[str, ...] = ()     # modules whose folded weights are ±α per output channel
    quantized: tuple[str, ...] = ()  # modules fake-quantised to 8 bits in forward


FAMILIES: dict[str, Family] = {f.name: f for f in (
    Family("ws-spikingjelly", layer.WSConv2d, layer.WSConv2d, nn.Linear),
    Family("ws-hand", _ws, _ws, nn.Linear),
    Family("learned-mask", nn.Conv2d, LearnedMaskConv, LearnedMaskLinear),
    Family("buffer-mask", BufferMaskConv, BufferMaskConv, FunctionalHead),
    Family("weight-norm", _wn_conv, _wn_conv, _wn_linear),
    Family("binary-sign", Quant8Conv, BinaryConv, Quant8Linear, binary=("conv2", "conv3"),
           quantized=("conv1", "fc")),
    Family("binary-where", nn.Conv2d, WhereBinaryConv, nn.Linear, binary=("conv2", "conv3")),
)}


def _keep(w: torch.Tensor) -> torch.Tensor:
    """A random 10 % keep-mask with at least one synapse per output row (weight norm divides by
    the row's norm)."""
    keep = torch.rand_like(w) < KEEP
    keep.view(w.shape[0], -1)[:, 0] = True
    return keep.to(w.dtype)


def _prune_stored(model: nn.Module) -> None:
    """90 % exact zeros in plain layers' stored weights (layers with a mask of their own keep it)."""
    with torch.no_grad():
        for m in model.modules():
            if type(m) in (nn.Conv2d, nn.Linear, HandWSConv, Quant8Conv, Quant8Linear) \
                    or type(m).__name__.startswith("Parametrized"):
                w = m.parametrizations.weight.original1 if hasattr(m, "parametrizations") else m.weight
                w.mul_(_keep(w))
            elif hasattr(m, "weight_v"):
                m.weight_v.mul_(_keep(m.weight_v))


def _rescale(m: nn.Module, factor: float) -> None:
    """Scale the weight a layer's forward computes by ``factor``, through its own parameters."""
    if hasattr(m, "parametrizations"):
        m.parametrizations.weight.original0.mul_(factor)
    elif hasattr(m, "weight_g"):
        m.weight_g.mul_(factor)
    elif isinstance(m, FunctionalHead):
        m.fc.weight.mul_(factor)
    elif getattr(m, "gain", None) is not None:
        m.gain.mul_(factor)
    elif hasattr(m, "scale"):
        m.scale.mul_(factor)
    else:
        m.weight.mul_(factor)


def _calibrate(model: nn.Module, x: torch.Tensor, steps: int) -> None:
    """Scale each synaptic layer, in order, so its output has standard deviation 1.2 over T steps."""
    layers = [model.conv1, model.conv2, model.conv3, model.fc]
    for m in layers:
        seen: list[torch.Tensor] = []
        h = m.register_forward_hook(lambda _m, _i, out, seen=seen: seen.append(out.detach()))
        with torch.no_grad():
            functional.reset_net(model)
            for _ in range(steps):
                model(x)
        h.remove()
        std = float(torch.cat([s.flatten() for s in seen]).std())
        with torch.no_grad():
            _rescale(m, 1.2 / max(std, 1e-9))
    functional.reset_net(model)


def build(name: str, steps: int = 2) -> nn.Module:
    fam = FAMILIES[name]
    torch.manual_seed(0)
    model = Backbone(fam.first, fam.conv, fam.last)
    _prune_stored(model)
    _calibrate(model, torch.as_tensor(images(4, CIFAR, seed=1), dtype=torch.float32), steps)
    return model.double().eval()
