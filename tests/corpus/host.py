"""Models with host partitions, our own definitions after the published patterns (read, never copied):

- ``SparseSpikformerRef``: SparseSpikformer (token pruning + weight pruning): a Spikformer whose
  token selector scores every token from its firing (a predictor MLP Linear → GELU → Linear →
  LogSoftmax over keep/drop, as the official code's ``Predictor``) and keeps the top-k tokens of each step (``topk`` then
  ``zeros_like(score).scatter(-1, idx, 1)``: a boolean token mask multiplied in), attention on
  the kept tokens; 90 % of every weight pruned to zero.
"""

from __future__ import annotations

import torch
from torch import nn

from tests.corpus.published import MLP, SPS, SSA, _lif


class Predictor(nn.Sequential):
    """The selector's real-valued token scorer: Linear → GELU → Linear to keep/drop, then LogSoftmax
    unless ``log_probs`` is False (raw logits). A Sequential, so its layers are ``predictor.0`` … ``.3``."""

    def __init__(self, dim: int, log_probs: bool = True) -> None:
        head = [nn.LogSoftmax(dim=-1)] if log_probs else []
        super().__init__(nn.Linear(dim, dim // 2), nn.GELU(), nn.Linear(dim // 2, 2), *head)


class TokenSelector(nn.Module):
    """Scores tokens from their spikes with a small real-valued predictor; keeps the top ``keep``."""

    def __init__(self, dim: int, keep: int) -> None:
        super().__init__()
        self.keep = keep
        self.predictor = Predictor(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        T, B, N, C = x.shape
        flat = x.flatten(0, 1)
        score = self.predictor(flat)[:, :, 0]                       # log P(keep) per token
        idx = score.topk(self.keep, dim=-1)[1]
        mask = torch.zeros_like(score).scatter(-1, idx, 1.0)
        return (flat * mask.unsqueeze(-1)).reshape(T, B, N, C)


class SparseSpikformerRef(nn.Module):
    def __init__(self, T: int = 2, dim: int = 64, heads: int = 4, keep: int = 40, classes: int = 10) -> None:
        super().__init__()
        self.T = T
        self.patch_embed = SPS(3, dim)
        self.selector = TokenSelector(dim, keep)
        self.attn, self.mlp = SSA(dim, heads), MLP(dim, 2 * dim)
        self.head = nn.Linear(dim, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.unsqueeze(0).repeat(self.T, 1, 1, 1, 1)
        x = self.selector(self.patch_embed(x))
        x = x + self.attn(x)
        x = x + self.mlp(x)
        return self.head(x.mean(2).mean(0))


def prune_(model: nn.Module, amount: float = 0.9, seed: int = 0) -> nn.Module:
    """Zero ``amount`` of every Conv/Linear weight (random, reproducible), as a pruned checkpoint
    ships; the kept weights are rescaled by 1/√(1 − amount) so the layers keep firing."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                keep = (torch.rand(m.weight.shape, generator=g) >= amount).to(m.weight.dtype)
                m.weight.mul_(keep / (1 - amount) ** 0.5)
    return model


def calibrate_bn_(model: nn.Module, images: torch.Tensor, gain: float = 2.5) -> nn.Module:
    """BatchNorm statistics measured on ``images`` (as training leaves them), scale ``gain``,
    so neurons fire at trained-network rates; the model is left in eval mode and at rest."""
    from spikingjelly.clock_driven import functional

    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.reset_running_stats()
            m.momentum = None   # a cumulative average over the calibration batch
            with torch.no_grad():
                m.weight.fill_(gain)
                m.bias.zero_()
    model.train()
    with torch.no_grad():
        model(images)
    functional.reset_net(model)
    return model.eval()


# -- TP-Spikformer style: top-k tokens kept by gather ---------------------------------------------

class TopKTokenPruner(nn.Module):
    """Keeps the ``keep`` tokens that fire most (spike count over channels), gathered in score order."""

    def __init__(self, keep: int) -> None:
        super().__init__()
        self.keep = keep

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        T, B, N, C = x.shape
        flat = x.flatten(0, 1)
        idx = flat.sum(-1).topk(self.keep, dim=1)[1]
        return torch.gather(flat, 1, idx.unsqueeze(-1).expand(-1, -1, C)).reshape(T, B, self.keep, C)


class TPSpikformerRef(nn.Module):
    def __init__(self, T: int = 2, dim: int = 32, heads: int = 4, keep: int = 24, classes: int = 10) -> None:
        super().__init__()
        self.T = T
        self.patch_embed = SPS(3, dim)
        self.prune = TopKTokenPruner(keep)
        self.attn, self.mlp = SSA(dim, heads), MLP(dim, 2 * dim)
        self.head = nn.Linear(dim, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.unsqueeze(0).repeat(self.T, 1, 1, 1, 1)
        x = self.prune(self.patch_embed(x))
        x = x + self.attn(x)
        x = x + self.mlp(x)
        return self.head(x.mean(2).mean(0))


# -- MA-SNN style: channel attention gate on spikes ------------------------------------------------

class GatedCNN(nn.Module):
    """conv-BN-LIF, then the spikes scaled per channel by sigmoid(FC(average spikes)), then conv-BN-LIF."""

    def __init__(self, T: int = 2, ch: int = 32, classes: int = 10) -> None:
        super().__init__()
        self.T = T
        self.conv1, self.bn1, self.lif1 = nn.Conv2d(3, ch, 3, 2, 1, bias=False), nn.BatchNorm2d(ch), _lif()
        self.squeeze = nn.AdaptiveAvgPool2d(1)
        self.excite = nn.Sequential(nn.Linear(ch, ch // 4), nn.Linear(ch // 4, ch), nn.Sigmoid())
        self.conv2, self.bn2, self.lif2 = nn.Conv2d(ch, ch, 3, 2, 1, bias=False), nn.BatchNorm2d(ch), _lif()
        self.head = nn.Linear(ch * 8 * 8, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.unsqueeze(0).repeat(self.T, 1, 1, 1, 1)
        T, B = x.shape[:2]
        y = self.bn1(self.conv1(x.flatten(0, 1)))
        s = self.lif1(y.reshape(T, B, *y.shape[1:])).flatten(0, 1)
        w = self.excite(self.squeeze(s).flatten(1))
        g = s * w.reshape(T * B, -1, 1, 1)
        y = self.bn2(self.conv2(g))
        s = self.lif2(y.reshape(T, B, *y.shape[1:]))
        return self.head(s.flatten(2)).mean(0)


# -- QKFormer / Max-Former style: max-pool of BN output ---------------------------------------------

class MaxPoolBNCNN(nn.Module):
    """conv-BN-MaxPool-LIF twice (the pool reads real values, before the neuron)."""

    def __init__(self, T: int = 2, ch: int = 32, classes: int = 10) -> None:
        super().__init__()
        self.T = T
        self.conv1, self.bn1, self.lif1 = nn.Conv2d(3, ch, 3, 1, 1, bias=False), nn.BatchNorm2d(ch), _lif()
        self.conv2, self.bn2, self.lif2 = nn.Conv2d(ch, ch, 3, 1, 1, bias=False), nn.BatchNorm2d(ch), _lif()
        self.pool = nn.MaxPool2d(3, 2, 1)
        self.head = nn.Linear(ch * 8 * 8, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.unsqueeze(0).repeat(self.T, 1, 1, 1, 1)
        T, B = x.shape[:2]
        y = self.pool(self.bn1(self.conv1(x.flatten(0, 1))))
        s = self.lif1(y.reshape(T, B, *y.shape[1:])).flatten(0, 1)
        y = self.pool(self.bn2(self.conv2(s)))
        s = self.lif2(y.reshape(T, B, *y.shape[1:]))
        return self.head(s.flatten(2)).mean(0)
