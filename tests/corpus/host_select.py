"""Token selection and masking after the published patterns (read, never copied):

- ``ArgsortSpikformerRef``: the official SparseSpikformer's selector ranks tokens by a predictor's
  keep score with ``argsort`` (descending), keeps the first ``keep`` of each row and picks each
  row's own tokens with a ``batch_index_select`` (rows flattened into one axis, indices offset by
  row·N). (``sort``, and picking with ``x[arange(R)[:, None], idx]``: tests/corpus/test_host_select.py.)
- ``MaskedTokenSpikformerRef``: tokens dropped by a boolean mask (``masked_fill``) where the
  predictor's drop class wins (``max(-1)[1]``), then gated by ``torch.where`` on the predictor's
  confidence (``amax(-1)`` of real values).
"""

from __future__ import annotations

import torch
from torch import nn

from tests.corpus.host import Predictor, TokenSelector
from tests.corpus.published import MLP, SPS, SSA


def batch_index_select(x: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """Row r of the result: x[r, idx[r]] (x [R, N, C] or [R, N], idx [R, k]), through one flat axis of R·N."""
    R, N = x.shape[:2]
    offset = torch.arange(R, dtype=torch.long, device=x.device).view(R, 1) * N
    return x.reshape(R * N, *x.shape[2:])[(idx + offset).reshape(-1)].reshape(R, idx.shape[1], *x.shape[2:])


class ArgsortSelector(TokenSelector):
    """The same predictor; the top ``keep`` tokens picked by ``argsort`` and a batched index."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        T, B, N, C = x.shape
        flat = x.flatten(0, 1)
        score = self.predictor(flat)[:, :, 0]
        order = torch.argsort(score, dim=1, descending=True)
        return batch_index_select(flat, order[:, :self.keep]).reshape(T, B, self.keep, C)


class MaskedSelector(nn.Module):
    def __init__(self, dim: int, confidence: float) -> None:
        super().__init__()
        self.confidence = confidence
        self.predictor = Predictor(dim, log_probs=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        T, B, N, C = x.shape
        flat = x.flatten(0, 1)
        logits = self.predictor(flat)
        drop = logits.max(-1)[1].bool()                        # the drop class wins
        kept = flat.masked_fill(drop.unsqueeze(-1), 0.0)
        sure = logits.amax(-1) > self.confidence                # confident tokens pass whole
        return torch.where(sure.unsqueeze(-1), kept, kept * 0.5).reshape(T, B, N, C)


class _Spikformer(nn.Module):
    def __init__(self, T: int, dim: int, selector: nn.Module, classes: int = 10) -> None:
        super().__init__()
        self.T = T
        self.patch_embed = SPS(3, dim)
        self.selector = selector
        self.attn, self.mlp = SSA(dim, 4), MLP(dim, 2 * dim)
        self.head = nn.Linear(dim, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.unsqueeze(0).repeat(self.T, 1, 1, 1, 1)
        x = self.selector(self.patch_embed(x))
        x = x + self.attn(x)
        x = x + self.mlp(x)
        return self.head(x.mean(2).mean(0))


class ArgsortSpikformerRef(_Spikformer):
    def __init__(self, T: int = 2, dim: int = 32, keep: int = 24) -> None:
        super().__init__(T, dim, ArgsortSelector(dim, keep))


class MaskedTokenSpikformerRef(_Spikformer):
    def __init__(self, T: int = 2, dim: int = 32, confidence: float = 0.0) -> None:
        super().__init__(T, dim, MaskedSelector(dim, confidence))
