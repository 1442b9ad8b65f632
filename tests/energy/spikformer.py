"""Spikformer (Zhou et al., ICLR 2023) as plain torch + spikingjelly modules, for counting.

Only the parameters the forward pass uses exist (the reference code's unused LayerNorms
are left out). SPS stem: four 3×3 convs without bias C → D/8 → D/4 → D/2 → D, BatchNorm
and LIF after each, MaxPool2d(3, 2, 1) after the last two (CIFAR, 32 px → 8×8 tokens) or
after all four (ImageNet, 224 px → 14×14 tokens); a relative-position conv D → D 3×3
without bias + BN + LIF added to the features. Blocks: spiking self-attention with q, k, v
and proj Linear + BN1d + LIF each (attention LIF threshold 0.5, scale 0.125), MLP of ratio
4 with biased Linear + BN1d + LIF; residual adds. Head: mean over tokens and time, Linear.

snncompile traces them (SSA's spike products become MatMul nodes), so the energy estimator
counts their layers; the parameter counts are checked against the paper.
"""

from __future__ import annotations

import torch
from spikingjelly.activation_based import neuron
from torch import nn


def lif(v_threshold: float = 1.0) -> nn.Module:
    return neuron.LIFNode(tau=2.0, v_threshold=v_threshold, detach_reset=True, step_mode="m")


class LinearBN(nn.Module):
    """Linear → BatchNorm1d over features → LIF, on [T, B, N, C]."""

    def __init__(self, cin: int, cout: int, bias: bool, v_threshold: float = 1.0) -> None:
        super().__init__()
        self.linear = nn.Linear(cin, cout, bias=bias)
        self.bn = nn.BatchNorm1d(cout)
        self.lif = lif(v_threshold)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        T, B, N, _ = x.shape
        y = self.linear(x.flatten(0, 1))                           # [TB, N, C']
        y = self.bn(y.transpose(-1, -2)).transpose(-1, -2)
        return self.lif(y.reshape(T, B, N, -1).contiguous())


class SSA(nn.Module):
    def __init__(self, dim: int, heads: int, qkv_bias: bool) -> None:
        super().__init__()
        self.heads, self.scale = heads, 0.125
        self.q = LinearBN(dim, dim, qkv_bias)
        self.k = LinearBN(dim, dim, qkv_bias)
        self.v = LinearBN(dim, dim, qkv_bias)
        self.attn_lif = lif(0.5)
        self.proj = LinearBN(dim, dim, True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        T, B, N, C = x.shape

        def split(t: torch.Tensor) -> torch.Tensor:
            return t.reshape(T, B, N, self.heads, C // self.heads).permute(0, 1, 3, 2, 4)

        q, k, v = split(self.q(x)), split(self.k(x)), split(self.v(x))
        y = (q @ k.transpose(-2, -1)) * self.scale @ v             # spike products: no weights
        y = self.attn_lif(y.transpose(2, 3).reshape(T, B, N, C).contiguous())
        return self.proj(y)


class MLP(nn.Module):
    def __init__(self, dim: int, ratio: int = 4) -> None:
        super().__init__()
        self.fc1 = LinearBN(dim, dim * ratio, True)
        self.fc2 = LinearBN(dim * ratio, dim, True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.fc1(x))


class Block(nn.Module):
    def __init__(self, dim: int, heads: int, qkv_bias: bool) -> None:
        super().__init__()
        self.attn = SSA(dim, heads, qkv_bias)
        self.mlp = MLP(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(x)
        return x + self.mlp(x)


class SPS(nn.Module):
    """Spiking patch splitting: conv stem + relative-position conv."""

    def __init__(self, in_channels: int, dim: int, pools: tuple[bool, bool, bool, bool]) -> None:
        super().__init__()
        widths = [in_channels, dim // 8, dim // 4, dim // 2, dim]
        self.stages = nn.ModuleList()
        for i in range(4):
            layers = [nn.Conv2d(widths[i], widths[i + 1], 3, 1, 1, bias=False), nn.BatchNorm2d(widths[i + 1])]
            self.stages.append(nn.ModuleDict({"conv_bn": nn.Sequential(*layers), "lif": lif()}))
        self.pools = pools
        self.pool = nn.MaxPool2d(3, 2, 1)
        self.rpe = nn.Sequential(nn.Conv2d(dim, dim, 3, 1, 1, bias=False), nn.BatchNorm2d(dim))
        self.rpe_lif = lif()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        T, B = x.shape[:2]
        x = x.flatten(0, 1)
        for stage, pool in zip(self.stages, self.pools):
            y = stage["conv_bn"](x)
            # explicit sizes: torch.fx cannot trace star-unpacking of a shape (*y.shape[1:])
            y = stage["lif"](y.reshape(T, B, y.shape[1], y.shape[2], y.shape[3])).flatten(0, 1)
            x = self.pool(y) if pool else y
        feat = x
        r = self.rpe(x)
        x = self.rpe_lif(r.reshape(T, B, r.shape[1], r.shape[2], r.shape[3])).flatten(0, 1) + feat
        x = x.reshape(T, B, x.shape[1], x.shape[2], x.shape[3])
        return x.flatten(-2).transpose(-1, -2)                     # [T, B, N, D]

    @property
    def first_conv(self) -> nn.Conv2d:
        return self.stages[0]["conv_bn"][0]


class Spikformer(nn.Module):
    def __init__(self, depth: int, dim: int, classes: int, imagenet: bool, heads: int = 8,
                 qkv_bias: bool | None = None, in_channels: int = 3) -> None:
        super().__init__()
        qkv_bias = (not imagenet) if qkv_bias is None else qkv_bias
        pools = (True, True, True, True) if imagenet else (False, False, True, True)
        self.patch_embed = SPS(in_channels, dim, pools)
        self.blocks = nn.ModuleList([Block(dim, heads, qkv_bias) for _ in range(depth)])
        self.head = nn.Linear(dim, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: [T, B, C, H, W] → logits [B, classes]."""
        x = self.patch_embed(x)
        for blk in self.blocks:
            x = blk(x)
        return self.head(x.mean(2).mean(0))


# name → (builder, image side, reported parameter count)
CONFIGS = {
    "spikformer-4-384-cifar": (lambda: Spikformer(4, 384, 10, imagenet=False), 32, 9_324_730),
    "spikformer-8-384-imagenet": (lambda: Spikformer(8, 384, 1000, imagenet=True), 224, 16_816_024),
    "spikformer-8-512-imagenet": (lambda: Spikformer(8, 512, 1000, imagenet=True), 224, 29_689_384),
    "spikformer-8-768-imagenet": (lambda: Spikformer(8, 768, 1000, imagenet=True), 224, 66_338_632),
}


def first_layer_macs(model: Spikformer, side: int) -> int:
    """MACs of the first conv (real-valued image input) for one image, from its shape."""
    conv = model.patch_embed.first_conv
    cout, cin_g, kh, kw = conv.weight.shape
    ho = (side + 2 * conv.padding[0] - kh) // conv.stride[0] + 1
    wo = (side + 2 * conv.padding[1] - kw) // conv.stride[1] + 1
    return cout * ho * wo * cin_g * kh * kw
