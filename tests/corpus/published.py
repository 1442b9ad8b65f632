"""Small models written the way the published codebases write them (our own definitions,
following the structure of each repository's model code, not copied):

- ``SpikformerRef``: Spikformer (Zhou et al., ICLR'23), CIFAR variant — the static image is
  repeated over T inside forward(), ``T, B, C, H, W = x.shape`` unpacking, SPS patch
  splitting with max-pools of spikes and a relative-position conv added to the features,
  multi-head spiking self-attention (Q·Kᵀ·V, scale 0.125) on [T, B, N, C] tokens with
  BatchNorm1d applied through ``transpose(-1, -2)``, mean over tokens then time at the head.
- ``SpikeDrivenRef``: Spike-driven Transformer v1 (Yao et al., NeurIPS'23) — input repeated
  over T if ``len(x.shape) < 5``, max-pool of BatchNorm output before the LIF (membrane
  shortcut), SDSA (k ⊙ v summed over tokens, LIF at 0.5, q ⊙ that), membrane residuals.
- ``KimVGG`` / ``KimResNet``: "Exploring Lottery Ticket Hypothesis in SNNs" (Kim et al.,
  ECCV'22) — legacy ``spikingjelly.clock_driven`` LIF (τ = 4/3, hard reset), the first conv
  + BN computed once outside a ``for t in range(T)`` loop (``self.features[:2](x)``), a
  Python list of per-step outputs returned.
"""

from __future__ import annotations

import torch
from torch import nn

from snncompile.frontend import legacy

legacy.install()
from spikingjelly.clock_driven import neuron as cd_neuron  # noqa: E402  (legacy names, as the paper's code)
from spikingjelly.clock_driven import surrogate as cd_surrogate  # noqa: E402


def _lif(th: float = 1.0) -> nn.Module:
    return cd_neuron.MultiStepLIFNode(tau=2.0, v_threshold=th, detach_reset=True, backend="torch")


# -- Spikformer --------------------------------------------------------------------------------

class SPS(nn.Module):
    def __init__(self, cin: int, dim: int) -> None:
        super().__init__()
        chans = [cin, dim // 4, dim // 2, dim]
        self.convs = nn.ModuleList(nn.Conv2d(a, b, 3, 1, 1, bias=False) for a, b in zip(chans, chans[1:]))
        self.bns = nn.ModuleList(nn.BatchNorm2d(b) for b in chans[1:])
        self.lifs = nn.ModuleList(_lif() for _ in chans[1:])
        self.pool = nn.MaxPool2d(3, 2, 1)
        self.rpe_conv = nn.Conv2d(dim, dim, 3, 1, 1, bias=False)
        self.rpe_bn = nn.BatchNorm2d(dim)
        self.rpe_lif = _lif()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        T, B, C, H, W = x.shape
        x = x.flatten(0, 1)
        for i, (conv, bn, lif) in enumerate(zip(self.convs, self.bns, self.lifs)):
            x = bn(conv(x)).reshape(T, B, -1, H, W).contiguous()
            x = lif(x).flatten(0, 1).contiguous()
            if i >= 1:   # the last two stages pool (spikes: an OR)
                x = self.pool(x)
                H, W = H // 2, W // 2
        feat = x.reshape(T, B, -1, H, W).contiguous()
        x = self.rpe_bn(self.rpe_conv(x)).reshape(T, B, -1, H, W).contiguous()
        x = self.rpe_lif(x) + feat
        return x.flatten(-2).transpose(-1, -2)          # [T, B, N, C]


class SSA(nn.Module):
    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.heads, self.scale = heads, 0.125
        for n in ("q", "k", "v"):
            setattr(self, f"{n}_linear", nn.Linear(dim, dim))
            setattr(self, f"{n}_bn", nn.BatchNorm1d(dim))
            setattr(self, f"{n}_lif", _lif())
        self.attn_lif = _lif(0.5)
        self.proj_linear = nn.Linear(dim, dim)
        self.proj_bn = nn.BatchNorm1d(dim)
        self.proj_lif = _lif()

    def _branch(self, x: torch.Tensor, n: str, T: int, B: int, N: int, C: int) -> torch.Tensor:
        y = getattr(self, f"{n}_linear")(x)
        y = getattr(self, f"{n}_bn")(y.transpose(-1, -2)).transpose(-1, -2).reshape(T, B, N, C).contiguous()
        y = getattr(self, f"{n}_lif")(y)
        return y.reshape(T, B, N, self.heads, C // self.heads).permute(0, 1, 3, 2, 4).contiguous()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        T, B, N, C = x.shape
        flat = x.flatten(0, 1)
        q, k, v = (self._branch(flat, n, T, B, N, C) for n in ("q", "k", "v"))
        attn = (q @ k.transpose(-2, -1)) * self.scale
        x = (attn @ v).transpose(2, 3).reshape(T, B, N, C).contiguous()
        x = self.attn_lif(x).flatten(0, 1)
        x = self.proj_bn(self.proj_linear(x).transpose(-1, -2)).transpose(-1, -2)
        return self.proj_lif(x.reshape(T, B, N, C).contiguous())


class MLP(nn.Module):
    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1, self.bn1, self.lif1 = nn.Linear(dim, hidden), nn.BatchNorm1d(hidden), _lif()
        self.fc2, self.bn2, self.lif2 = nn.Linear(hidden, dim), nn.BatchNorm1d(dim), _lif()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        T, B, N, C = x.shape
        x = self.fc1(x.flatten(0, 1))
        x = self.lif1(self.bn1(x.transpose(-1, -2)).transpose(-1, -2).reshape(T, B, N, -1).contiguous())
        x = self.fc2(x.flatten(0, 1))
        return self.lif2(self.bn2(x.transpose(-1, -2)).transpose(-1, -2).reshape(T, B, N, C).contiguous())


class SpikformerRef(nn.Module):
    def __init__(self, T: int = 2, dim: int = 32, heads: int = 4, depth: int = 1, classes: int = 10,
                 cin: int = 3) -> None:
        super().__init__()
        self.T = T
        self.patch_embed = SPS(cin, dim)
        self.blocks = nn.ModuleList(nn.ModuleList([SSA(dim, heads), MLP(dim, 2 * dim)]) for _ in range(depth))
        self.head = nn.Linear(dim, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.unsqueeze(0).repeat(self.T, 1, 1, 1, 1)
        x = self.patch_embed(x)
        for attn, mlp in self.blocks:
            x = x + attn(x)
            x = x + mlp(x)
        return self.head(x.mean(2).mean(0))


# -- Spike-driven Transformer ------------------------------------------------------------------

def _conv_bn(cin: int, cout: int, k: int = 1) -> tuple[nn.Module, nn.Module]:
    return nn.Conv2d(cin, cout, k, 1, k // 2, bias=False), nn.BatchNorm2d(cout)


class SDSA(nn.Module):
    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.shortcut_lif = _lif()
        for n in ("q", "k", "v"):
            conv, bn = _conv_bn(dim, dim)
            setattr(self, f"{n}_conv", conv)
            setattr(self, f"{n}_bn", bn)
            setattr(self, f"{n}_lif", _lif())
        self.talking_heads_lif = _lif(0.5)
        self.proj_conv, self.proj_bn = _conv_bn(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        T, B, C, H, W = x.shape
        N = H * W
        identity = x
        x = self.shortcut_lif(x).flatten(0, 1)
        qkv = []
        for n in ("q", "k", "v"):
            y = getattr(self, f"{n}_bn")(getattr(self, f"{n}_conv")(x)).reshape(T, B, C, H, W)
            y = getattr(self, f"{n}_lif")(y).flatten(3)                 # [T, B, C, N]
            qkv.append(y.transpose(-1, -2).reshape(T, B, N, self.heads, C // self.heads)
                       .permute(0, 1, 3, 2, 4).contiguous())
        q, k, v = qkv
        kv = k.mul(v).sum(dim=-2, keepdim=True)
        kv = self.talking_heads_lif(kv)
        x = q.mul(kv).transpose(3, 4).reshape(T, B, C, H, W).contiguous()
        x = self.proj_bn(self.proj_conv(x.flatten(0, 1))).reshape(T, B, C, H, W)
        return x + identity


class SDMLP(nn.Module):
    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.lif1 = _lif()
        self.fc1, self.bn1 = _conv_bn(dim, hidden)
        self.lif2 = _lif()
        self.fc2, self.bn2 = _conv_bn(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        T, B, C, H, W = x.shape
        identity = x
        x = self.bn1(self.fc1(self.lif1(x).flatten(0, 1))).reshape(T, B, -1, H, W)
        x = self.bn2(self.fc2(self.lif2(x).flatten(0, 1))).reshape(T, B, C, H, W)
        return x + identity


class SDSPS(nn.Module):
    """Patch splitting whose later stages max-pool the BatchNorm output, then spike."""

    def __init__(self, cin: int, dim: int) -> None:
        super().__init__()
        self.conv0, self.bn0 = _conv_bn(cin, dim // 2, 3)
        self.lif0 = _lif()
        self.conv1, self.bn1 = _conv_bn(dim // 2, dim, 3)
        self.pool = nn.MaxPool2d(3, 2, 1)
        self.lif1 = _lif()
        self.rpe_conv, self.rpe_bn = _conv_bn(dim, dim, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        T, B, C, H, W = x.shape
        x = self.bn0(self.conv0(x.flatten(0, 1))).reshape(T, B, -1, H, W)
        x = self.lif0(x).flatten(0, 1)
        x = self.pool(self.bn1(self.conv1(x)))             # max-pool of BN output (real values)
        H, W = H // 2, W // 2
        feat = x.reshape(T, B, -1, H, W)
        x = self.lif1(feat).flatten(0, 1)
        x = self.rpe_bn(self.rpe_conv(x)).reshape(T, B, -1, H, W)
        return x + feat


class SpikeDrivenRef(nn.Module):
    def __init__(self, T: int = 2, dim: int = 32, heads: int = 4, depth: int = 1, classes: int = 10,
                 cin: int = 3) -> None:
        super().__init__()
        self.T = T
        self.patch_embed = SDSPS(cin, dim)
        self.blocks = nn.ModuleList(nn.ModuleList([SDSA(dim, heads), SDMLP(dim, 2 * dim)]) for _ in range(depth))
        self.head_lif = _lif()
        self.head = nn.Linear(dim, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if len(x.shape) < 5:
            x = (x.unsqueeze(0)).repeat(self.T, 1, 1, 1, 1)
        else:
            x = x.transpose(0, 1).contiguous()
        x = self.patch_embed(x)
        for attn, mlp in self.blocks:
            x = mlp(attn(x))
        x = x.flatten(3).mean(3)
        x = self.head(self.head_lif(x))
        return x.mean(0)


# -- Kim et al. lottery tickets ------------------------------------------------------------------

def _kim_lif() -> nn.Module:
    return cd_neuron.LIFNode(v_threshold=1.0, v_reset=0.0, tau=4.0 / 3.0,
                             surrogate_function=cd_surrogate.ATan(), detach_reset=True)


class KimVGG(nn.Module):
    def __init__(self, cfg: list, classes: int = 10, total_timestep: int = 3, cin: int = 3) -> None:
        super().__init__()
        self.total_timestep = total_timestep
        layers: list[nn.Module] = []
        c = cin
        for v in cfg:
            if v == "M":
                layers.append(nn.MaxPool2d(2, 2))
            else:
                layers += [nn.Conv2d(c, v, 3, padding=1), nn.BatchNorm2d(v), _kim_lif()]
                c = v
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Linear(c, classes)

    def forward(self, x: torch.Tensor) -> list:
        output_list = []
        static_x = self.features[:2](x)
        for _t in range(self.total_timestep):
            x = self.features[2:](static_x)
            x = torch.flatten(x, 1)
            output_list.append(self.classifier(x))
        return output_list


class KimBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.lif1, self.lif2 = _kim_lif(), _kim_lif()
        self.shortcut = nn.Sequential()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.lif1(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        out += self.shortcut(x)
        return self.lif2(out)


class KimResNet(nn.Module):
    def __init__(self, widths: tuple[int, ...] = (16, 32), classes: int = 10, total_timestep: int = 3,
                 cin: int = 3) -> None:
        super().__init__()
        self.total_timestep = total_timestep
        self.conv1 = nn.Conv2d(cin, widths[0], 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(widths[0])
        self.lif_input = _kim_lif()
        blocks, c = [], widths[0]
        for w in widths:
            blocks.append(KimBlock(c, w, 2))
            c = w
        self.layers = nn.Sequential(*blocks)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc1 = nn.Linear(c, 32)
        self.lif_fc = _kim_lif()
        self.fc2 = nn.Linear(32, classes)

    def forward(self, x: torch.Tensor) -> list:
        output_list = []
        static_x = self.bn1(self.conv1(x))
        for _t in range(self.total_timestep):
            out = self.lif_input(static_x)
            out = self.layers(out)
            out = self.avgpool(out)
            out = out.view(out.size(0), -1)
            out = self.lif_fc(self.fc1(out))
            output_list.append(self.fc2(out))
        return output_list


# -- snnTorch -----------------------------------------------------------------------------------

def snntorch_tutorial_net(num_steps: int = 4, beta: float = 0.9) -> nn.Module:
    """snnTorch's tutorial network: explicit membrane state, a time loop over a static input,
    (spike record, membrane record) returned; snnTorch's default reset (subtract, delayed)."""
    import snntorch as snn

    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc1 = nn.Linear(3 * 32 * 32, 128)
            self.lif1 = snn.Leaky(beta=beta, threshold=0.5)
            self.fc2 = nn.Linear(128, 10)
            self.lif2 = snn.Leaky(beta=beta, threshold=0.5)

        def forward(self, x: torch.Tensor):
            mem1 = self.lif1.init_leaky()
            mem2 = self.lif2.init_leaky()
            spk2_rec, mem2_rec = [], []
            x = x.flatten(1)
            for _step in range(num_steps):
                cur1 = self.fc1(x)
                spk1, mem1 = self.lif1(cur1, mem1)
                cur2 = self.fc2(spk1)
                spk2, mem2 = self.lif2(cur2, mem2)
                spk2_rec.append(spk2)
                mem2_rec.append(mem2)
            return torch.stack(spk2_rec, dim=0), torch.stack(mem2_rec, dim=0)

    return Net()


def snntorch_conv_sequential(beta: float = 0.8) -> nn.Module:
    """snnTorch's convolutional tutorial style: ``init_hidden=True`` neurons inside an
    nn.Sequential called once per step, the last one with ``output=True``."""
    import snntorch as snn

    return nn.Sequential(
        nn.Conv2d(3, 16, 5, padding=2), nn.MaxPool2d(2),
        snn.Leaky(beta=beta, threshold=0.5, init_hidden=True, reset_mechanism="zero"),
        nn.Conv2d(16, 32, 5, padding=2), nn.MaxPool2d(2),
        snn.Leaky(beta=beta, threshold=0.5, init_hidden=True, reset_mechanism="zero"),
        nn.Flatten(), nn.Linear(32 * 8 * 8, 10),
        snn.Leaky(beta=beta, threshold=0.5, init_hidden=True, output=True, reset_mechanism="zero"))
