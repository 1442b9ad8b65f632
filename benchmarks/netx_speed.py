"""Our fastest exact emission against lava-dl netx running the exported file.

    python -m benchmarks.netx_speed [--models digits,cifar] [--quick] [--json]

Models:

* ``digits``: the shipped digits SCNN (T = 8) on the shipped test images (all 540);
* ``cifar``: a CIFAR-size ticket netx can hold (3×32×32 → conv 128 → OR-pool → conv 128 →
  OR-pool → linear 10, LIF neurons, BatchNorm, 90 % of the weights pruned at random, T = 4) on
  random 32 px images.

Each is quantized once under netx's rules (``snncompile.fixedpoint.netx``); then, on the same
integer network, the same inputs and the same steps:

* **fused**: ``run_lava(emit="fused")`` on that fixed-point netlist (our fastest exact Lava
  emission: the whole network in one Lava process, batches of samples);
* **netx**: the exported ``model.net`` loaded by lava-dl's ``hdf5.Network`` and run on Lava's
  CPU backend (fixed_pt), the samples back to back in one network.

Times are wall times inside each child process after its imports (build + compile + run).
Fused pays a fixed ≈ 0.15–0.2 s of Lava runtime start-up and stop (forks, manager) and then
little per sample; netx pays per Lava step (N·T + latency of them, every block a process), so
the time ratio grows with N: ``fused_one_sample_s`` (the fused run of one sample) is that fixed
cost, for reading it. Memory: the peak of the proportional set size (PSS) summed over the whole process tree each run starts (the worker and
every Lava runtime process it forks; libraries included, shared pages split), sampled every
50 ms; also each worker's own peak RSS above its imports (what the Lava target reports). Checked: both output spike
trains equal the integer reference bit for bit. Reported as ratios netx / fused (no timed
assertion). Goal of issue 25: time ratio ≥ 20, memory ratio ≥ 1 (fused uses no more).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from benchmarks.memory import TreeMemory

REPO = Path(__file__).resolve().parent.parent
SPARSITY = 0.9


def _cifar():
    import torch
    from spikingjelly.activation_based import neuron
    from torch import nn

    from benchmarks.lava_speed import _bn

    torch.manual_seed(0)
    m = nn.Sequential(
        nn.Conv2d(3, 128, 3, padding=1, bias=False), nn.BatchNorm2d(128), neuron.LIFNode(tau=2.0),
        nn.MaxPool2d(2),
        nn.Conv2d(128, 128, 3, padding=1, bias=False), nn.BatchNorm2d(128), neuron.LIFNode(tau=2.0, v_threshold=0.2),
        nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(128 * 8 * 8, 10), neuron.LIFNode(tau=2.0, v_threshold=0.2),
    )
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for mod in m.modules():
            if isinstance(mod, (nn.Conv2d, nn.Linear)):
                mod.weight.mul_(torch.rand(mod.weight.shape, generator=g) >= SPARSITY).mul_(6.0)
    return _bn(m)


def _network(name: str, n: int):
    """(netx-quantized netlist, x [T, N, ...])."""
    from snncompile import stages
    from snncompile.fixedpoint.netx import quantize_netx
    from snncompile.frontend import trace_model
    from snncompile.inputs import load_inputs

    if name == "digits":
        loaded = stages.load(REPO / "models" / "digits_scnn.pt")
        data = load_inputs(REPO / "models" / "digits_test.npz", None).take(n)
        model, shape = loaded.module, stages.input_shape_of(None, loaded.meta, data, loaded.module)
        x = np.ascontiguousarray(data.as_sequence(int(loaded.meta.get("steps", 8))))
    else:
        model, shape = _cifar(), (3, 32, 32)
        x = np.random.default_rng(0).random((4, n, 3, 32, 32))
    graph = stages.optimize(trace_model(model, shape).graph).graph
    q, _ = quantize_netx(stages.lower(graph), x)
    return q, x


def measure(name: str, n: int, timeout: float) -> dict:
    from backends.lava import run_lava
    from backends.netx.target import run_job
    from snncompile.sim.integer import simulate_int

    q, x = _network(name, n)
    ref = simulate_int(q, x)[q.output_pop]
    with TreeMemory() as fused_mem:
        fused = run_lava(q, x, record=[q.output_pop], timeout_s=timeout, emit="fused")
    with TreeMemory() as netx_mem:
        netx = run_job(q, x, timeout)
    row = {"model": name, "steps": int(x.shape[0]), "samples": n,
           "neurons": int(sum(p.size for p in q.populations.values())),
           "synapses": int(sum(p.weights.nnz for p in q.projections)),
           "output_spikes": int(ref.sum()),
           "fused_bit_exact": bool(np.array_equal(fused.spikes[q.output_pop], ref)),
           "netx_bit_exact": bool(np.array_equal(netx.spikes, ref)),
           "fused": {"s": round(fused.wall_s, 2), "worker_peak_mb": round(fused.peak_mb, 1),
                     "tree_pss_mb": round(fused_mem.peak, 1)},
           "netx": {"s": round(netx.wall_s, 2), "worker_peak_mb": round(netx.peak_mb, 1),
                    "tree_pss_mb": round(netx_mem.peak, 1)}}
    row["fused_one_sample_s"] = round(run_lava(q, x[:, :1], record=[q.output_pop], timeout_s=timeout,
                                               emit="fused").wall_s, 2)
    row["time_ratio_netx_over_fused"] = round(netx.wall_s / fused.wall_s, 1)
    row["memory_ratio_netx_over_fused"] = round(netx_mem.peak / max(fused_mem.peak, 1e-9), 2)
    return row


SIZES = {"digits": 540, "cifar": 8}
QUICK = {"digits": 16, "cifar": 2}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="digits,cifar")
    ap.add_argument("--quick", action="store_true", help="fewer samples (the fused start-up weighs more: lower time ratios)")
    ap.add_argument("--timeout", type=float, default=3600.0)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    sizes = QUICK if args.quick else SIZES
    rows = [measure(m, sizes[m], args.timeout) for m in args.models.split(",")]
    if args.json:
        json.dump(rows, sys.stdout, indent=1)
        print()
        return 0
    print(f"{'model':8} {'T':>3} {'N':>4} {'exact f/n':>9} {'fused s':>8} {'(N=1)':>6} {'netx s':>8} {'time x':>7} "
          f"{'fused PSS MB':>12} {'netx PSS MB':>11} {'mem x':>6}")
    for r in rows:
        print(f"{r['model']:8} {r['steps']:>3} {r['samples']:>4} "
              f"{str(r['fused_bit_exact'])[0]}/{str(r['netx_bit_exact'])[0]:>7} {r['fused']['s']:>8} "
              f"{r['fused_one_sample_s']:>6} "
              f"{r['netx']['s']:>8} {r['time_ratio_netx_over_fused']:>7} {r['fused']['tree_pss_mb']:>12} "
              f"{r['netx']['tree_pss_mb']:>11} {r['memory_ratio_netx_over_fused']:>6}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
