"""Our own models following published patterns the frontend reads from the code (#23 items
4–5): hand-written neurons (a stateful HandLIF module with a hard reset; DIET-SNN-style
membranes in a dict inside a time loop, learnable per-layer threshold and leak, soft reset,
``nn.ReLU`` placeholders declared and never applied), snnTorch's ``x[step]`` loop over event
frames, and a batch-first DVS VGG that transposes its input in forward()."""

from __future__ import annotations

import torch
from spikingjelly.activation_based import functional, layer, neuron, surrogate
from torch import nn

DVS = (2, 32, 32)   # polarity channels, event frames binned to 32 × 32


class SpikeFn(torch.autograd.Function):
    """Heaviside spike with a boxcar surrogate gradient (as hand-written SNN code defines it)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(x)
        return (x >= 0).to(x.dtype)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        (x,) = ctx.saved_tensors
        return grad * (x.abs() < 0.5).to(grad.dtype)


class ExactSpike(torch.autograd.Function):
    """DIET-SNN's spike function as published: a masked constant written into zeros (``>``)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(x)
        out = torch.zeros_like(x)
        out[x > 0] = 1.0
        return out

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        (x,) = ctx.saved_tensors
        return grad * 0.3 * torch.clamp(1.0 - x.abs(), min=0.0)


class HandLIF(nn.Module):
    """A LIF neuron whose membrane lives on the module between calls; hard reset to 0."""

    def __init__(self, beta: float = 0.9, threshold: float = 1.0) -> None:
        super().__init__()
        self.beta, self.threshold = beta, threshold
        self.mem: torch.Tensor | None = None

    def reset(self) -> None:
        self.mem = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.mem is None:
            self.mem = torch.zeros_like(x)
        self.mem = self.beta * self.mem + x
        spike = SpikeFn.apply(self.mem - self.threshold)
        self.mem = self.mem * (1.0 - spike)
        return spike


class HandLIFNet(nn.Module):
    """Single-step CIFAR net (called once per time step) with HandLIF neurons."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1, self.lif1 = nn.Conv2d(3, 128, 3, padding=1, bias=False), HandLIF(0.9, 1.0)
        self.pool1 = nn.AvgPool2d(2)
        self.conv2, self.lif2 = nn.Conv2d(128, 64, 3, padding=1, bias=False), HandLIF(0.8, 1.0)
        self.pool2 = nn.AvgPool2d(2)
        self.fc, self.lif3 = nn.Linear(64 * 8 * 8, 10), HandLIF(0.9, 1.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool1(self.lif1(self.conv1(x)))
        x = self.pool2(self.lif2(self.conv2(x)))
        return self.lif3(self.fc(x.flatten(1)))


class DietSNN(nn.Module):
    """DIET-SNN style VGG: the converted ANN's layers (ReLUs kept as unused placeholders), a
    membrane per conv in a dict, learnable per-layer threshold and leak, soft reset, the
    classifier's outputs accumulated over its own T steps. ``exact``: DIET-SNN's own spike
    function (:class:`ExactSpike`, ``out[x > 0] = 1.0``) and its reset mask ``(mem_thr > 0)``."""

    def __init__(self, timesteps: int = 4, exact: bool = False) -> None:
        super().__init__()
        self.timesteps, self.exact = timesteps, exact
        self.features = nn.Sequential(
            nn.Conv2d(3, 128, 3, padding=1, bias=False), nn.ReLU(inplace=True), nn.AvgPool2d(2),
            nn.Conv2d(128, 64, 3, padding=1, bias=False), nn.ReLU(inplace=True), nn.AvgPool2d(2))
        self.classifier = nn.Sequential(nn.Linear(64 * 8 * 8, 10, bias=False))
        convs = [k for k, m in enumerate(self.features) if isinstance(m, nn.Conv2d)]
        self.threshold = nn.ParameterDict({f"t{k}": nn.Parameter(torch.tensor(1.0)) for k in convs})
        self.leak = nn.ParameterDict({f"l{k}": nn.Parameter(torch.tensor(0.95 - 0.05 * i))
                                      for i, k in enumerate(convs)})

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mem, size = {}, x.shape[-1]
        for k, m in enumerate(self.features):
            if isinstance(m, nn.Conv2d):
                mem[k] = torch.zeros(x.shape[0], m.out_channels, size, size)
            elif isinstance(m, nn.AvgPool2d):
                size //= 2
        out_acc = 0
        for _t in range(self.timesteps):
            out = x
            for k, m in enumerate(self.features):
                if isinstance(m, nn.Conv2d):
                    mem[k] = self.leak[f"l{k}"] * mem[k] + m(out)
                    mem_thr = mem[k] / self.threshold[f"t{k}"] - 1.0
                    out = ExactSpike.apply(mem_thr) if self.exact else SpikeFn.apply(mem_thr)
                    fired = (mem_thr > 0) if self.exact else (mem_thr >= 0)
                    mem[k] = mem[k] - self.threshold[f"t{k}"] * fired.to(mem_thr.dtype)
                elif isinstance(m, nn.AvgPool2d):
                    out = m(out)
            out_acc = out_acc + self.classifier(out.flatten(1))
        return out_acc


def snntorch_events_net(beta: float = 0.9) -> nn.Module:
    """snnTorch's tutorial loop over the time axis of [T, N, 2, H, W] event frames."""
    import snntorch as snn

    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv1, self.lif1 = nn.Conv2d(2, 128, 3, padding=1), snn.Leaky(beta=beta)
            self.conv2, self.lif2 = nn.Conv2d(128, 32, 3, padding=1), snn.Leaky(beta=beta)
            self.fc, self.lif3 = nn.Linear(32 * 8 * 8, 10), snn.Leaky(beta=beta)

        def forward(self, x: torch.Tensor):
            mem1, mem2, mem3 = self.lif1.init_leaky(), self.lif2.init_leaky(), self.lif3.init_leaky()
            spk_rec, mem_rec = [], []
            for step in range(x.size(0)):
                spk1, mem1 = self.lif1(nn.functional.avg_pool2d(self.conv1(x[step]), 2), mem1)
                spk2, mem2 = self.lif2(nn.functional.avg_pool2d(self.conv2(spk1), 2), mem2)
                spk3, mem3 = self.lif3(self.fc(spk2.flatten(1)), mem3)
                spk_rec.append(spk3)
                mem_rec.append(mem3)
            return torch.stack(spk_rec), torch.stack(mem_rec)

    return Net()


class BatchFirstDVSVGG(nn.Module):
    """A multi-step DVS VGG fed batch-first [N, T, 2, H, W], made time-major in forward()."""

    def __init__(self) -> None:
        super().__init__()
        def sn() -> nn.Module:
            return neuron.LIFNode(tau=2.0, surrogate_function=surrogate.ATan(), detach_reset=True)
        self.features = nn.Sequential(
            layer.Conv2d(2, 128, 3, padding=1, bias=False), layer.BatchNorm2d(128), sn(), layer.MaxPool2d(2),
            layer.Conv2d(128, 64, 3, padding=1, bias=False), layer.BatchNorm2d(64), sn(), layer.MaxPool2d(2))
        self.classifier = nn.Sequential(layer.Flatten(), layer.Linear(64 * 8 * 8, 10), sn())
        functional.set_step_mode(self, "m")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.transpose(0, 1)   # [N, T, ...] → [T, N, ...]
        return self.classifier(self.features(x)).mean(0)
