"""SparseSpikformer at the paper's configurations, our own definition after the official code's
structure (Rocherster/SparseSpikformer ``cifar10/``, ``dvs128/`` and ``cifar10dvs/``
``sparse_new_model.py``, read, not copied). CIFAR-10 (``PAPER``):

- ``cifar10/cifar10.yml``: T = 4, 4 blocks (``layer``), dim 384, 12 heads, patch 4, MLP ratio 4,
  32 px images, 10 classes;
- ``cifar10/sparse_new_train.py``: ``pruning_loc = [1, 2, 3]`` and keep rates ``[0.9, 0.81, 0.729]``
  (base_rate 0.9, its powers) of the initial N = 64 tokens: before block i ∈ pruning_loc the tokens
  are ranked by a predictor (Linear → GELU → Linear → LogSoftmax, P(keep) = column 0), ``argsort``
  descending, and the first ``int(N · rate)`` kept with ``batch_index_select`` (57, 51, 46 tokens);
- its SPS stem: four conv-BN-LIF stages (dim/8, dim/4, dim/2, dim) at full resolution, a max-pool
  of spikes after the third and the fourth, then a relative-position conv-BN-LIF added to the
  features.

DVS128 Gesture (``DVS128``) and CIFAR10-DVS (``CIFAR10DVS``), ``dvs128/`` and ``cifar10dvs/``
``sparse_new_model.py`` (``spikformer``) and ``sparse_new_train.py``: the same model on batch-first
[B, T = 16, 2, 128, 128] event frames (forward() makes them time-major), dim 256, 16 heads, 4 blocks,
MLP ratio 4, 11 (10) classes; its SPS max-pools after *every* one of the four conv stages
(128 → 64 → 32 → 16 → 8 px: 64 tokens, as at CIFAR-10, but the stem's first stages run at 128, 64
and 32 px); ``pruning_loc = [1, 2, 3]``. Keep rates: the training scripts' ``base_rate`` is 0.7
(the loss's keep ratio [0.7, 0.49, 0.343]); the model registered for evaluation keeps
``token_ratio`` [0.5, 0.25, 0.125] (DVS128) and [0.8, 0.64, 0.512] (CIFAR10-DVS) of the tokens.
``CONFIGS`` names each with its input shape, steps and those rates.

One difference, on purpose: the official eval forward scores the tokens from ``x.mean(0)`` (the
whole window); here each step's tokens are scored (``x.flatten(0, 1)``), which our tracing compiles
step by step. The MACs do not depend on how the scores are made.
"""

from __future__ import annotations

import torch
from torch import nn

from tests.corpus.host_select import batch_index_select
from tests.corpus.published import MLP, SSA, _lif

PAPER = {"T": 4, "dim": 384, "heads": 12, "depth": 4, "mlp_ratio": 4, "pruning_loc": (1, 2, 3),
         "keep_rates": (0.9, 0.81, 0.729)}
DVS128 = {"T": 16, "dim": 256, "heads": 16, "depth": 4, "mlp_ratio": 4, "pruning_loc": (1, 2, 3),
          "keep_rates": (0.7, 0.7 ** 2, 0.7 ** 3), "classes": 11, "cin": 2, "pools": (0, 1, 2, 3),
          "batch_first": True}
CIFAR10DVS = dict(DVS128, classes=10)


def powers(base: float) -> tuple[float, float, float]:
    """The official keep ratios of a base rate: [r, r², r³] of the initial tokens."""
    return (base, base ** 2, base ** 3)


# name → model kwargs, per-sample input shape (C, H, W), steps, and the keep base rates r to price
# (keep [r, r², r³]), each with where the official code uses it
CONFIGS: dict[str, dict] = {
    "cifar10": {"model": PAPER, "input_shape": (3, 32, 32), "steps": 4,
                "base_rates": ((0.9, "base_rate default, training and evaluation"),
                               (0.8, "lower, not in the official scripts"), (0.7, "lower, not in the official scripts"))},
    "dvs128": {"model": DVS128, "input_shape": (2, 128, 128), "steps": 16,
               "base_rates": ((0.7, "base_rate default, the training keep ratio"),
                              (0.5, "token_ratio of the registered model, used at evaluation"))},
    "cifar10dvs": {"model": CIFAR10DVS, "input_shape": (2, 128, 128), "steps": 16,
                   "base_rates": ((0.7, "the training keep ratio, sparse_new_train.py"),
                                  (0.8, "token_ratio of the registered model, used at evaluation"))},
}


class PaperSPS(nn.Module):
    """Spiking patch splitting: four conv-BN-LIF stages, a max-pool after the stages in ``pools``
    (CIFAR-10: the third and fourth, 32 px → 8 × 8 = 64 tokens; DVS: all four, 128 px → 64
    tokens), then the relative-position conv-BN-LIF added to the features."""

    def __init__(self, cin: int, dim: int, pools: tuple[int, ...] = (2, 3)) -> None:
        super().__init__()
        chans = [cin, dim // 8, dim // 4, dim // 2, dim]
        self.convs = nn.ModuleList(nn.Conv2d(a, b, 3, 1, 1, bias=False) for a, b in zip(chans, chans[1:]))
        self.bns = nn.ModuleList(nn.BatchNorm2d(b) for b in chans[1:])
        self.lifs = nn.ModuleList(_lif() for _ in chans[1:])
        self.pool = nn.MaxPool2d(3, 2, 1)
        self.pools = tuple(pools)
        self.rpe_conv = nn.Conv2d(dim, dim, 3, 1, 1, bias=False)
        self.rpe_bn = nn.BatchNorm2d(dim)
        self.rpe_lif = _lif()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        T, B, C, H, W = x.shape
        x = x.flatten(0, 1)
        for i, (conv, bn, lif) in enumerate(zip(self.convs, self.bns, self.lifs)):
            x = bn(conv(x)).reshape(T, B, -1, H, W).contiguous()
            x = lif(x).flatten(0, 1).contiguous()
            if i in self.pools:   # a max-pool of spikes: an OR
                x = self.pool(x)
                H, W = H // 2, W // 2
        feat = x.reshape(T, B, -1, H, W).contiguous()
        x = self.rpe_bn(self.rpe_conv(x)).reshape(T, B, -1, H, W).contiguous()
        x = self.rpe_lif(x) + feat
        return x.flatten(-2).transpose(-1, -2)          # [T, B, N, C]


class Predictor(nn.Module):
    def __init__(self, dim: int) -> None:
        super().__init__()
        self.linear = nn.Sequential(nn.Linear(dim, dim // 2), nn.GELU(), nn.Linear(dim // 2, 2),
                                    nn.LogSoftmax(dim=-1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x)


class SparseSpikformerPaper(nn.Module):
    """``keep_rates`` are of the initial tokens, as the official ``int(init_n * token_ratio[i])``.
    ``batch_first``: the DVS models' input, [B, T, C, H, W] frames made time-major in forward()
    (``T`` is then the input's); otherwise a static [B, C, H, W] image repeated over ``T`` steps."""

    def __init__(self, T: int = 4, dim: int = 384, heads: int = 12, depth: int = 4, mlp_ratio: int = 4,
                 pruning_loc: tuple[int, ...] = (1, 2, 3), keep_rates: tuple[float, ...] = (0.9, 0.81, 0.729),
                 classes: int = 10, cin: int = 3, pools: tuple[int, ...] = (2, 3), batch_first: bool = False) -> None:
        super().__init__()
        self.T, self.pruning_loc, self.keep_rates = T, tuple(pruning_loc), tuple(keep_rates)
        self.batch_first = batch_first
        self.patch_embed = PaperSPS(cin, dim, pools)
        self.predictor = nn.ModuleList(Predictor(dim) for _ in pruning_loc)
        self.blocks = nn.ModuleList(nn.ModuleList([SSA(dim, heads), MLP(dim, mlp_ratio * dim)])
                                    for _ in range(depth))
        self.head = nn.Linear(dim, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.batch_first:
            x = x.permute(1, 0, 2, 3, 4)                                 # [T, B, C, H, W] event frames
        else:
            x = x.unsqueeze(0).repeat(self.T, 1, 1, 1, 1)
        x = self.patch_embed(x)
        T, B, N, C = x.shape
        p = 0
        for i, (attn, mlp) in enumerate(self.blocks):
            if i in self.pruning_loc:
                flat = x.flatten(0, 1)                                   # T·B, N_now, C: each step scored
                score = self.predictor[p](flat)[:, :, 0]
                keep = int(N * self.keep_rates[p])
                order = torch.argsort(score, dim=1, descending=True)[:, :keep]
                x = batch_index_select(flat, order).reshape(T, B, keep, C)
                p += 1
            x = x + attn(x)
            x = x + mlp(x)
        return self.head(x.mean(2).mean(0))
