"""Speed-up of ``--workers 2`` (Ray, embedded) over one process on this machine.

    python -m benchmarks.ray_speed [--samples 540] [--emit stock|fused] [--model digits|vgg11]

Same netlist and inputs; the single-process run and the sharded run are timed in this
process (Ray's start-up is timed apart: a cluster pays it once). Spikes are checked equal.
Default: the digits SCNN on all 540 test images with the stock emission (one sample after
another: the case where sharding samples matters most), and the CIFAR VGG-11 ticket fused.
"""

from __future__ import annotations

import argparse
import time

import numpy as np


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--samples", type=int, default=None)
    ap.add_argument("--cases", default="digits:stock:540,vgg11:fused:32")
    args = ap.parse_args()

    import ray

    from backends.lava.target import LavaTarget
    from benchmarks.lava_speed import _netlist
    from snncompile import parallel

    ray.shutdown()
    t0 = time.perf_counter()
    parallel.start(2)
    print(f"ray start-up: {time.perf_counter() - t0:.1f} s (paid once per session or cluster)")
    print(f"{'model':8} {'emit':6} {'samples':>7} {'1 process s':>12} {'ray ×2 s':>9} {'speed-up':>9} {'same':>5}")
    for case in args.cases.split(","):
        name, emit, n = case.split(":")
        n = args.samples or int(n)
        net, x, _, _ = _netlist(name, n)
        t = time.perf_counter()
        one = LavaTarget().run(net, x, timeout_s=7200, emit=emit)
        t_one = time.perf_counter() - t
        t = time.perf_counter()
        two = parallel.run_sharded("lava", net, x, workers=2, address=None, timeout_s=7200, emit=emit)
        t_two = time.perf_counter() - t
        same = all(np.array_equal(one.spikes[k], two.spikes[k]) for k in one.spikes)
        print(f"{name:8} {emit:6} {n:>7} {t_one:>12.2f} {t_two:>9.2f} {t_one / t_two:>8.2f}× {str(same):>5}")
    ray.shutdown()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
