"""Samples per second on Lava: the fused emission against the stock one and the floor.

    python -m benchmarks.lava_speed [--models digits,vgg11,resnet18] [--quick] [--json]

Models (T = 4 for the CIFAR tickets, the checkpoint's T for digits):

* ``digits``: the shipped digits SCNN on all 540 shipped test images;
* ``vgg11``: a CIFAR VGG-11 (BN, MaxPool, IF), every conv / linear layer pruned to 90 % zeros
  at random, seeded weights and BatchNorm statistics, random 32 px images;
* ``resnet18``: kuangliu's CIFAR ResNet-18 with IF neurons, magnitude-pruned to 90 % per layer.

For each: the default passes, lowered once, then

* **fused**: ``run_lava(emit="fused")`` on N samples (one process per population, batches);
* **stock**: ``run_lava(emit="stock")`` (Lava's Dense/Sparse/Conv, one sample after another) on
  fewer samples (its time per sample does not depend on N);
* **floor**: the same kernels (the same CSR synapses, float64) stepped in this process,
  without Lava (``snncompile.sim.kernels.run_kernels``), same batch size.

Times are wall times inside the Lava worker (build + compile + run) and of ``run_kernels``
(kernel build + run). Also checked: fused and stock spikes are equal on the common samples.
Worker peak RSS is reported against the synaptic memory of the unrolled projections.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
SPARSITY = 0.9
VGG11 = [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"]


def _vgg11():
    import torch
    from spikingjelly.activation_based import neuron
    from torch import nn

    torch.manual_seed(0)
    mods, c = [], 3
    for v in VGG11:
        if v == "M":
            mods.append(nn.MaxPool2d(2))
        else:
            mods += [nn.Conv2d(c, v, 3, padding=1, bias=False), nn.BatchNorm2d(v), neuron.IFNode()]
            c = v
    mods += [nn.Flatten(), nn.Linear(512, 10)]
    m = nn.Sequential(*mods)
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for mod in m.modules():
            if isinstance(mod, (nn.Conv2d, nn.Linear)):
                mod.weight.mul_(torch.rand(mod.weight.shape, generator=g) >= SPARSITY).mul_(6.0)
    return _bn(m)


def _resnet18():
    import torch
    from torch import nn

    from benchmarks.compile_scale import _prune
    from tests.energy.zoo import SpikingResNet18

    torch.manual_seed(0)
    m = SpikingResNet18(imagenet=False)
    with torch.no_grad():
        _prune(m, SPARSITY)  # 90 % of each layer's weights, smallest magnitudes
        for mod in m.modules():
            if isinstance(mod, (nn.Conv2d, nn.Linear)):
                mod.weight.mul_(2.5)  # untrained weights: scaled so every stage fires
    return _bn(m)


def _bn(m):
    import torch

    from benchmarks.compile_scale import _randomize_bn

    _randomize_bn(m, torch.Generator().manual_seed(2))
    return m.eval()


def _netlist(name: str, n: int):
    """(netlist, x [T, N, ...], PyTorch spikes {population: [T, N, logical size]}, alive masks)."""
    from snncompile import stages
    from snncompile.frontend import trace_model
    from snncompile.inputs import load_inputs
    from snncompile.sim import run_torch

    if name == "digits":
        loaded = stages.load(REPO / "models" / "digits_scnn.pt")
        data = load_inputs(REPO / "models" / "digits_test.npz", None).take(n)
        shape = stages.input_shape_of(None, loaded.meta, data, loaded.module)
        model = loaded.module
        x = np.ascontiguousarray(data.as_sequence(int(loaded.meta.get("steps", 8))))
    else:
        model = _vgg11() if name == "vgg11" else _resnet18()
        shape = (3, 32, 32)
        x = np.random.default_rng(0).random((4, n, 3, 32, 32))
    tr = trace_model(model, shape)
    torch_run = run_torch(model, x, tr.step_mode, list(tr.neuron_sources.values()), tr.graph.output_time_reduced)
    graph = stages.optimize(tr.graph).graph
    expected = {k: torch_run.spikes[p] for k, p in tr.neuron_sources.items()}
    names = set(graph.topo())
    alive = {k: graph.node(k).alive for k in expected if k in names and graph.node(k).alive is not None}
    return stages.lower(graph), x, expected, alive


def _synapse_mb(net) -> float:
    """Bytes of the unrolled synapses as the kernels hold them (float64 + int32 index)."""
    return sum(p.nnz for p in net.projections) * 12 / 1e6


def measure(name: str, n_fused: int, n_stock: int, timeout: float, stock_timeout: float) -> dict:
    from backends.lava import run_lava
    from backends.lava.fused import batch_size
    from snncompile.compare import spike_agreement
    from snncompile.errors import SnnCompileError
    from snncompile.sim.kernels import run_kernels

    net, x, expected, alive = _netlist(name, n_fused)
    row = {"model": name, "steps": int(x.shape[0]), "synapses": int(sum(p.nnz for p in net.projections)),
           "synapse_mb": round(_synapse_mb(net), 1), "batch": batch_size(net, n_fused)}
    fused = run_lava(net, x, timeout_s=timeout, emit="fused")
    row["firing_rate"] = round(float(np.mean([s.mean() for s in fused.spikes.values()])), 3)
    got = {k: net.populations[k].expand(fused.spikes[k]).reshape(e.shape) for k, e in expected.items()
           if k in fused.spikes}
    row["spike_agreement_vs_torch"] = spike_agreement({k: expected[k] for k in got}, got, alive)[0]
    row["fused"] = {"samples": n_fused, "lava_s": round(fused.wall_s, 2),
                    "samples_per_s": round(n_fused / fused.wall_s, 3), "peak_mb": fused.peak_mb}
    t0 = time.perf_counter()
    floor = run_kernels(net, x, record=list(fused.spikes), batch=row["batch"])
    dt = time.perf_counter() - t0
    row["floor"] = {"samples": n_fused, "s": round(dt, 2), "samples_per_s": round(n_fused / dt, 3)}
    assert all(np.array_equal(fused.spikes[k], floor[k]) for k in fused.spikes), "fused ≠ floor"
    xs = np.ascontiguousarray(x[:, :n_stock])
    t0 = time.perf_counter()
    try:
        stock = run_lava(net, xs, timeout_s=stock_timeout, emit="stock")
    except SnnCompileError as exc:  # the stock emission can take hours at this size
        waited = time.perf_counter() - t0
        row["stock"] = {"samples": n_stock, "lava_s": None, "did_not_finish_s": round(waited),
                        "samples_per_s": round(n_stock / waited, 5), "error": exc.message}
        row["fused_equals_stock"] = None
        row["speedup_vs_stock"] = f">= {row['fused']['samples_per_s'] / row['stock']['samples_per_s']:.0f}"
    else:
        row["stock"] = {"samples": n_stock, "lava_s": round(stock.wall_s, 2),
                        "samples_per_s": round(n_stock / stock.wall_s, 4), "peak_mb": stock.peak_mb}
        row["fused_equals_stock"] = all(np.array_equal(fused.spikes[k][:, :n_stock], stock.spikes[k])
                                        for k in stock.spikes)
        row["speedup_vs_stock"] = round(row["fused"]["samples_per_s"] / row["stock"]["samples_per_s"], 1)
    row["slowdown_vs_floor"] = round(row["floor"]["samples_per_s"] / row["fused"]["samples_per_s"], 2)
    row["fused_peak_over_synapses"] = round(fused.peak_mb / max(row["synapse_mb"], 1e-9), 2)
    return row


SIZES = {"digits": (540, 540), "vgg11": (64, 1), "resnet18": (32, 1)}
QUICK = {"digits": (540, 20), "vgg11": (16, 1), "resnet18": (8, 1)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="digits,vgg11,resnet18")
    ap.add_argument("--quick", action="store_true", help="fewer samples (ratios stay comparable)")
    ap.add_argument("--timeout", type=float, default=3600.0)
    ap.add_argument("--stock-timeout", type=float, default=900.0,
                    help="give up on the stock run after this long (reported as a lower bound)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    sizes = QUICK if args.quick else SIZES
    rows = []
    for name in args.models.split(","):
        print(f"[{name}] building and running …", file=sys.stderr, flush=True)
        rows.append(measure(name, *sizes[name], args.timeout, args.stock_timeout))
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    print(f"{'model':9} {'synapses':>11} {'fused smp/s':>12} {'stock smp/s':>12} {'floor smp/s':>12} "
          f"{'× stock':>8} {'floor ×':>8} {'peak/syn':>9} {'same spikes':>11}")
    for r in rows:
        print(f"{r['model']:9} {r['synapses']:>11,} {r['fused']['samples_per_s']:>12.3f} "
              f"{r['stock']['samples_per_s']:>12.4f} {r['floor']['samples_per_s']:>12.3f} "
              f"{r['speedup_vs_stock']!s:>8} {r['slowdown_vs_floor']:>8.2f} "
              f"{r['fused_peak_over_synapses']:>9.2f} {str(r['fused_equals_stock']):>11}")
        print(f"{'':9} fused: {r['fused']['samples']} samples in {r['fused']['lava_s']} s of Lava "
              f"(batch {r['batch']}, T={r['steps']}); stock: {r['stock']['samples']} in "
              f"{r['stock']['lava_s'] or '> ' + str(r['stock'].get('did_not_finish_s'))} s; "
              f"worker peak {r['fused']['peak_mb']:.0f} MB vs {r['synapse_mb']} MB of synapses; "
              f"mean firing rate {r['firing_rate']}; spike agreement with PyTorch (float64) "
              f"{r['spike_agreement_vs_torch']:.6f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
