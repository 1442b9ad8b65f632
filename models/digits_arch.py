"""Architectures of the example tickets (importable: ``--arch models.digits_arch:NAME``).

``digits_spikformer`` is a small Spikformer-style spiking transformer for 8×8 digits:
a ConvPEP patch embedding (Conv-BN-LIF stages with max pooling, the SPS stem), a static
patch keep-mask, spiking self-attention (SSA) blocks and spiking MLP blocks with residual
spike additions, and a mean-over-tokens linear head. Multi-step: input [T, B, 1, 8, 8].
"""

from __future__ import annotations

import torch
from spikingjelly.activation_based import layer, neuron, surrogate
from torch import nn


def _lif(**kw) -> neuron.LIFNode:
    return neuron.LIFNode(tau=2.0, detach_reset=True, surrogate_function=surrogate.ATan(),
                          step_mode="m", **kw)


class ConvPEP(nn.Module):
    """Spiking patch splitting: Conv-BN-LIF, Conv-BN-LIF-MaxPool → tokens [T, B, N, D]."""

    def __init__(self, dim: int = 32) -> None:
        super().__init__()
        self.stage1 = layer.SeqToANNContainer(nn.Conv2d(1, dim // 2, 3, padding=1, bias=False),
                                              nn.BatchNorm2d(dim // 2))
        self.lif1 = _lif()
        self.stage2 = layer.SeqToANNContainer(nn.Conv2d(dim // 2, dim, 3, padding=1, bias=False),
                                              nn.BatchNorm2d(dim))
        self.lif2 = _lif()
        self.pool = layer.SeqToANNContainer(nn.MaxPool2d(2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(self.lif2(self.stage2(self.lif1(self.stage1(x)))))  # [T, B, D, 4, 4]
        return x.flatten(3).transpose(-1, -2)                              # [T, B, N=16, D]


class LinearBNLIF(nn.Module):
    """Linear over the feature axis, BatchNorm1d in Spikformer's transposed form, LIF."""

    def __init__(self, d_in: int, d_out: int, bias: bool = True, **lif_kw) -> None:
        super().__init__()
        self.fc = nn.Linear(d_in, d_out, bias=bias)
        self.bn = nn.BatchNorm1d(d_out)
        self.lif = _lif(**lif_kw)

    def forward(self, x: torch.Tensor) -> torch.Tensor:       # [T, B, N, C]
        T, B, N, _ = x.shape
        y = self.fc(x.flatten(0, 1))                          # [T*B, N, C']
        y = self.bn(y.transpose(-1, -2)).transpose(-1, -2)
        return self.lif(y.reshape(T, B, N, -1))


class SSA(nn.Module):
    """Spiking self-attention, one head: LIF((Q Kᵀ V)·scale) with spike Q, K, V."""

    def __init__(self, dim: int, scale: float = 0.125) -> None:
        super().__init__()
        self.q = LinearBNLIF(dim, dim, bias=False)
        self.k = LinearBNLIF(dim, dim, bias=False)
        self.v = LinearBNLIF(dim, dim, bias=False)
        self.attn_lif = _lif(v_threshold=0.5)
        self.proj = LinearBNLIF(dim, dim)
        self.scale = scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q, k, v = self.q(x), self.k(x), self.v(x)
        attn = (q @ k.transpose(-2, -1)) @ v
        return self.proj(self.attn_lif(attn * self.scale))


class MLP(nn.Module):
    def __init__(self, dim: int, ratio: int = 2) -> None:
        super().__init__()
        self.fc1 = LinearBNLIF(dim, dim * ratio)
        self.fc2 = LinearBNLIF(dim * ratio, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.fc1(x))


class Block(nn.Module):
    def __init__(self, dim: int) -> None:
        super().__init__()
        self.attn = SSA(dim)
        self.mlp = MLP(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(x)    # residual sums of spikes: values in {0, 1, 2}
        return x + self.mlp(x)


class DigitsSpikformer(nn.Module):
    def __init__(self, dim: int = 32, depth: int = 1, num_classes: int = 10, tokens: int = 16) -> None:
        super().__init__()
        self.pep = ConvPEP(dim)
        self.blocks = nn.ModuleList(Block(dim) for _ in range(depth))
        self.head = nn.Linear(dim, num_classes)
        # static keep-mask over the 4×4 patch grid (tokens), applied after the patch embedding
        self.register_buffer("patch_mask", torch.ones(tokens, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:      # [T, B, 1, 8, 8]
        x = self.pep(x) * self.patch_mask                     # [T, B, N, D]
        for blk in self.blocks:
            x = blk(x)
        return self.head(x.mean(2)).mean(0)                   # mean over tokens, then time


def digits_spikformer() -> DigitsSpikformer:
    return DigitsSpikformer()
