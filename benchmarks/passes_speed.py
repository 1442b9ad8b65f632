"""Lava wall time of one ticket compiled with passes vs emitted dense, at several sparsities.

    python -m benchmarks.passes_speed [--samples 20] [--steps 8]

"Dense" is what an exporter unaware of pruning emits: every stored weight (zeros too) in
Lava Dense processes. "Passes" is snncompile's default pipeline (BN folded, binary scales
moved into neurons, zeros dropped, CSR Sparse / shared-kernel Conv, dead neurons removed).
Both run in the stock Lava emission (`--emit stock`, where the process kinds differ), on the
same inputs; the ratio is dense / passes.
"""

from __future__ import annotations

import argparse
import math

import numpy as np
import torch
from spikingjelly.activation_based import neuron
from torch import nn

from backends.lava import run_lava
from snncompile.frontend import trace_model
from snncompile.lower import lower
from snncompile.passes import run_passes


class BenchTicket(nn.Module):
    def __init__(self, sparsity: float, seed: int = 0) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.conv = nn.Conv2d(1, 16, 3, padding=1)
        self.sn1 = neuron.LIFNode(tau=2.0)
        self.pool = nn.MaxPool2d(2)
        self.fc1 = nn.Linear(16 * 8 * 8, 512)
        self.sn2 = neuron.LIFNode(tau=2.0)
        self.fc2 = nn.Linear(512, 10)
        self.sn3 = neuron.LIFNode(tau=2.0)
        with torch.no_grad():
            for m in (self.conv, self.fc1, self.fc2):
                keep = torch.rand(m.weight.shape, generator=g) >= sparsity
                scale = 3.0 / math.sqrt(max(1.0, (1 - sparsity) * m.weight[0].numel()))
                m.weight.copy_(torch.sign(torch.randn(m.weight.shape, generator=g)) * scale * keep)
        self.eval()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(self.sn1(self.conv(x)))
        return self.sn3(self.fc2(self.sn2(self.fc1(torch.flatten(x, 1)))))


def memory_bytes(plan) -> int:
    return sum(p.memory_bits for p in plan.projections) // 8


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--samples", type=int, default=20)
    ap.add_argument("--steps", type=int, default=8)
    args = ap.parse_args()
    x = np.random.default_rng(0).random((args.steps, args.samples, 1, 16, 16))
    print(f"{'sparsity':>8} {'synapses dense':>15} {'compiled':>10} {'mem dense B':>12} {'mem compiled B':>15}"
          f" {'lava dense s':>13} {'lava passes s':>14} {'speed-up':>9}")
    for sparsity in (0.5, 0.9, 0.99):
        graph = trace_model(BenchTicket(sparsity), (1, 16, 16)).graph
        dense_plan = lower(graph, dense=True)
        compiled, _ = run_passes(graph)
        plan = lower(compiled)
        t_dense = run_lava(dense_plan, x, emit="stock").wall_s
        t_pass = run_lava(plan, x, emit="stock").wall_s
        print(f"{sparsity:>8.0%} {sum(p.nnz for p in dense_plan.projections):>15,} "
              f"{sum(p.nnz for p in plan.projections):>10,} {memory_bytes(dense_plan):>12,} "
              f"{memory_bytes(plan):>15,} {t_dense:>13.2f} {t_pass:>14.2f} {t_dense / t_pass:>8.2f}×")


if __name__ == "__main__":
    main()
