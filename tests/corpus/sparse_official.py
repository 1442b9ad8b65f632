"""The official SparseSpikformer's eval forward (Rocherster/SparseSpikformer, cifar10/sparse_new_model.py,
``SpikformerPrune``; read, never copied), our own definition with the same structure and operations:

- the static image repeated over T (``x.unsqueeze(0).repeat(T, 1, 1, 1, 1)``), SPS patch splitting
  (conv-BN-LIF ×4 with max-pools of spikes, a relative-position conv-BN-LIF added to the features);
- Blocks of SSA + MLP (``x + attn(x)``, ``x + mlp(x)``) with the published, unused ``norm1``/``norm2``
  LayerNorms, legacy ``clock_driven.MultiStepLIFNode(tau=2.0, detach_reset=True, backend='cupy')``;
- at every block index in ``pruning_loc``: ``spatial_x = x.mean(0)`` (the mean over **all** T steps),
  ``Predictor`` (Linear → GELU → Linear → LogSoftmax) reshaped to ``[B, N, 2]``, ``score[:, :, 0]``,
  ``argsort(score, dim=1, descending=True)[:, :int(init_n · ratio)]``, the indices repeated over T
  (``unsqueeze(0).repeat(T, 1, 1).reshape(T·B, -1)``) and the kept tokens picked by
  ``batch_index_select`` (rows flattened, indices offset by row·N); ``prev_decision`` selected too
  (unused in eval), the predictor given it (and ignoring it);
- ``x.mean(2)``, ``head(x.mean(0))``, and the tuple ``(x, decisions)`` returned.

CIFAR configuration (cifar10.yml + sparse_new_train.py): 32 px, 3 channels, patch 4 (N = 64 tokens),
4 layers, ``pruning_loc = [1, 2, 3]``, ``token_ratio = [0.9, 0.81, 0.729]`` (0.9, 0.9², 0.9³), T = 4;
the published width (384, 12 heads) is narrowed for test speed.
"""

from __future__ import annotations

import torch
from torch import nn

from snncompile.frontend import legacy

legacy.install()
from spikingjelly.clock_driven.neuron import MultiStepLIFNode  # noqa: E402  (legacy name, as the paper's code)

PRUNING_LOC = [1, 2, 3]
TOKEN_RATIO = [0.9, 0.9 ** 2, 0.9 ** 3]


def _lif(th: float = 1.0) -> nn.Module:
    return MultiStepLIFNode(tau=2.0, v_threshold=th, detach_reset=True, backend="cupy")


class MLP(nn.Module):
    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1_linear, self.fc1_bn, self.fc1_lif = nn.Linear(dim, hidden), nn.BatchNorm1d(hidden), _lif()
        self.fc2_linear, self.fc2_bn, self.fc2_lif = nn.Linear(hidden, dim), nn.BatchNorm1d(dim), _lif()
        self.c_hidden = hidden

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        T, B, N, C = x.shape
        x = self.fc1_linear(x.flatten(0, 1))
        x = self.fc1_bn(x.transpose(-1, -2)).transpose(-1, -2).reshape(T, B, N, self.c_hidden).contiguous()
        x = self.fc1_lif(x)
        x = self.fc2_linear(x.flatten(0, 1))
        x = self.fc2_bn(x.transpose(-1, -2)).transpose(-1, -2).reshape(T, B, N, C).contiguous()
        return self.fc2_lif(x)


class Predictor(nn.Module):
    """The published eval predictor: ``policy`` is taken and not used."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.linear = nn.Sequential(nn.Linear(dim, dim // 2), nn.GELU(), nn.Linear(dim // 2, 2), nn.LogSoftmax(dim=-1))

    def forward(self, x: torch.Tensor, policy: torch.Tensor) -> torch.Tensor:
        return self.linear(x)


class SSA(nn.Module):
    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.heads, self.scale = heads, 0.125
        for k in ("q", "k", "v", "proj"):
            setattr(self, f"{k}_linear", nn.Linear(dim, dim))
            setattr(self, f"{k}_bn", nn.BatchNorm1d(dim))
            setattr(self, f"{k}_lif", _lif())
        self.attn_lif = _lif(0.5)

    def _qkv(self, k: str, flat: torch.Tensor, T: int, B: int, N: int, C: int) -> torch.Tensor:
        y = getattr(self, f"{k}_bn")(getattr(self, f"{k}_linear")(flat).transpose(-1, -2)).transpose(-1, -2)
        s = getattr(self, f"{k}_lif")(y.reshape(T, B, N, C).contiguous())
        return s.reshape(T, B, N, self.heads, C // self.heads).permute(0, 1, 3, 2, 4).contiguous()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        T, B, N, C = x.shape
        flat = x.flatten(0, 1)
        q, k, v = (self._qkv(name, flat, T, B, N, C) for name in ("q", "k", "v"))
        attn = (q @ k.transpose(-2, -1)) * self.scale
        x = (attn @ v).transpose(2, 3).reshape(T, B, N, C).contiguous()
        x = self.attn_lif(x).flatten(0, 1)
        return self.proj_lif(self.proj_bn(self.proj_linear(x).transpose(-1, -2)).transpose(-1, -2).reshape(T, B, N, C))


class Block(nn.Module):
    def __init__(self, dim: int, heads: int, mlp_ratio: int = 4) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)     # declared by the published Block, never called
        self.attn = SSA(dim, heads)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = MLP(dim, dim * mlp_ratio)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(x)
        return x + self.mlp(x)


class SPS(nn.Module):
    def __init__(self, cin: int, dim: int) -> None:
        super().__init__()
        self.proj_conv, self.proj_bn, self.proj_lif = nn.Conv2d(cin, dim // 8, 3, 1, 1, bias=False), \
            nn.BatchNorm2d(dim // 8), _lif()
        self.proj_conv1, self.proj_bn1, self.proj_lif1 = nn.Conv2d(dim // 8, dim // 4, 3, 1, 1, bias=False), \
            nn.BatchNorm2d(dim // 4), _lif()
        self.proj_conv2, self.proj_bn2, self.proj_lif2 = nn.Conv2d(dim // 4, dim // 2, 3, 1, 1, bias=False), \
            nn.BatchNorm2d(dim // 2), _lif()
        self.maxpool2 = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.proj_conv3, self.proj_bn3, self.proj_lif3 = nn.Conv2d(dim // 2, dim, 3, 1, 1, bias=False), \
            nn.BatchNorm2d(dim), _lif()
        self.maxpool3 = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.rpe_conv, self.rpe_bn, self.rpe_lif = nn.Conv2d(dim, dim, 3, 1, 1, bias=False), nn.BatchNorm2d(dim), _lif()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        T, B, C, H, W = x.shape
        x = self.proj_lif(self.proj_bn(self.proj_conv(x.flatten(0, 1))).reshape(T, B, -1, H, W)).flatten(0, 1)
        x = self.proj_lif1(self.proj_bn1(self.proj_conv1(x)).reshape(T, B, -1, H, W)).flatten(0, 1)
        x = self.proj_lif2(self.proj_bn2(self.proj_conv2(x)).reshape(T, B, -1, H, W)).flatten(0, 1)
        x = self.maxpool2(x)
        x = self.proj_lif3(self.proj_bn3(self.proj_conv3(x)).reshape(T, B, -1, H // 2, W // 2)).flatten(0, 1)
        x = self.maxpool3(x)
        x_feat = x.reshape(T, B, -1, H // 4, W // 4).contiguous()
        x = self.rpe_lif(self.rpe_bn(self.rpe_conv(x)).reshape(T, B, -1, H // 4, W // 4))
        x = x + x_feat
        return x.flatten(-2).transpose(-1, -2)          # T, B, N, C


def batch_index_select(x: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """Row b of the result: x[b, idx[b]], for x [B, N, C] or [B, N] and idx [B, k] (one flat axis of B·N)."""
    B, N = x.shape[:2]
    offset = torch.arange(B, dtype=torch.long, device=x.device).view(B, 1) * N
    flat = x.reshape(B * N, *x.shape[2:])
    return flat[(idx + offset).reshape(-1)].reshape(B, idx.size(1), *x.shape[2:])


class SparseSpikformerOfficial(nn.Module):
    def __init__(self, dim: int = 128, heads: int = 8, depths: int = 4, T: int = 4, classes: int = 10,
                 pruning_loc: list[int] | None = None, token_ratio: list[float] | None = None) -> None:
        super().__init__()
        self.T = T
        self.pruning_loc = PRUNING_LOC if pruning_loc is None else pruning_loc
        self.token_ratio = TOKEN_RATIO if token_ratio is None else token_ratio
        self.predictor = nn.ModuleList(Predictor(dim) for _ in self.pruning_loc)
        self.patch_embed = SPS(3, dim)
        self.block = nn.ModuleList(Block(dim, heads) for _ in range(depths))
        self.head = nn.Linear(dim, classes)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, list[list[torch.Tensor]]]:
        x = x.unsqueeze(0).repeat(self.T, 1, 1, 1, 1)
        x = self.patch_embed(x)
        T, B, N, C = x.shape
        p_count, init_n = 0, N
        prev_decision = torch.ones(T * B, init_n, 1, dtype=x.dtype, device=x.device)
        decisions: list[list[torch.Tensor]] = [[] for _ in self.pruning_loc]
        for i, blk in enumerate(self.block):
            if i in self.pruning_loc:
                spatial_x = x.mean(0)                                            # B, N, C: every step
                pred_score = self.predictor[p_count](spatial_x, prev_decision).reshape(B, -1, 2)
                score = pred_score[:, :, 0]
                num_keep = int(init_n * self.token_ratio[p_count])
                keep = torch.argsort(score, dim=1, descending=True)[:, :num_keep]
                keep = keep.unsqueeze(0).repeat(T, 1, 1).reshape(T * B, -1)      # the same tokens every step
                decisions[p_count].append(keep)
                x = batch_index_select(x.flatten(0, 1), keep).reshape(T, B, -1, C)
                prev_decision = batch_index_select(prev_decision, keep)
                x = blk(x)
                p_count += 1
            else:
                x = blk(x)
        x = x.mean(2)
        x = self.head(x.mean(0))
        return x, decisions


def kept_tokens(model: SparseSpikformerOfficial, n: int) -> list[int]:
    """Tokens each block sees: ``n`` before the first selector, ``int(n · ratio)`` from each on."""
    out, k = [], n
    for i in range(len(model.block)):
        if i in model.pruning_loc:
            k = int(n * model.token_ratio[model.pruning_loc.index(i)])
        out.append(k)
    return out
