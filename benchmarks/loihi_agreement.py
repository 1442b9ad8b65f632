"""The standard-process (``--emit loihi``) emission against the integer reference: the
agreement table, and its Lava time against the stock emission on the same samples.

    python -m benchmarks.loihi_agreement [--samples N] [--steps T] [--json]

Models: the three shipped digits networks on ``models/digits_test.npz`` and a CIFAR-size
ticket (3×32×32, 128 channels, 90 % pruned, ``tests.nets.cifar_stock_ticket``, 1 sample,
4 steps). For each: bit-exact or not per population, spikes compared, Lava wall time of the
loihi emission and, for the digits ticket, its ratio to the stock emission's.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def _digits(name: str, n: int, steps: int):
    from snncompile import stages
    from snncompile.fixedpoint.quantize import quantize_plan
    from snncompile.lower import lower

    d = np.load(ROOT / "models" / "digits_test.npz")
    x0 = d["x"][:n].astype(np.float64)
    x = np.broadcast_to(x0[None], (steps, *x0.shape)).copy()
    graph = stages.optimize(stages.trace(stages.load(ROOT / "models" / f"{name}.pt"), x0.shape[1:]).graph).graph
    return quantize_plan(lower(graph), x)[0], x


def _cifar():
    from snncompile.fixedpoint.quantize import quantize_plan
    from snncompile.frontend import trace_model
    from snncompile.lower import lower
    from snncompile.passes import run_passes
    from tests.nets import cifar_stock_ticket

    x = np.random.default_rng(1).random((4, 1, 3, 32, 32))
    graph, _ = run_passes(trace_model(cifar_stock_ticket(), (3, 32, 32)).graph)
    return quantize_plan(lower(graph), x)[0], x


def measure(name: str, q, x, stock: bool) -> dict:
    from backends.lava import run_lava
    from snncompile.sim.integer import simulate_int

    ints = simulate_int(q, x)
    run = run_lava(q, x, timeout_s=1800, emit="loihi")
    exact = {k: bool(np.array_equal(s, ints[k])) for k, s in run.spikes.items()}
    row = {"model": name, "samples": int(x.shape[1]), "steps": int(x.shape[0]), "bit_exact": all(exact.values()),
           "populations": exact, "spikes": int(sum(int(s.sum()) for s in run.spikes.values())),
           "loihi_wall_s": round(run.wall_s, 2)}
    if stock:
        ref = run_lava(q, x, timeout_s=1800, emit="stock")
        row["stock_wall_s"] = round(ref.wall_s, 2)
        row["loihi_over_stock_time"] = round(run.wall_s / ref.wall_s, 2)
    return row


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--samples", type=int, default=4)
    ap.add_argument("--steps", type=int, default=8)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    rows = []
    for name in ("digits_scnn_ticket", "digits_scnn_binw_ticket", "digits_scnn"):
        q, x = _digits(name, args.samples, args.steps)
        rows.append(measure(name, q, x, stock=name == "digits_scnn_ticket"))
    q, x = _cifar()
    rows.append(measure("cifar_stock_ticket", q, x, stock=False))
    if args.json:
        print(json.dumps(rows, indent=1))
    else:
        print(f"{'model':26} {'N×T':>7} {'bit-exact':>9} {'spikes':>8} {'loihi s':>8} {'÷ stock':>8}")
        for r in rows:
            print(f"{r['model']:26} {r['samples']:>3}×{r['steps']:<3} {str(r['bit_exact']):>9} {r['spikes']:>8} "
                  f"{r['loihi_wall_s']:>8} {r.get('loihi_over_stock_time', ''):>8}")
    return 0 if all(r["bit_exact"] for r in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
