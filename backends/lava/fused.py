"""The fused Lava emission: the whole network in one Lava process, batches of samples at once.

See :mod:`backends.lava.procs.fused.process` for the process semantics. Compared with
the stock emission (``backends.lava.network``: Lava's own Dense/Sparse/Conv processes, one
sample after another, one step of latency per synapse hop) this runs ``T`` Lava steps
per batch instead of ``N·T + depth``, with one process and no channels, and reads the
recorded spikes back from memory-mapped files once. Arithmetic per population
is :class:`snncompile.sim.kernels.Kernel` (float64, or Loihi's integer datapath).
"""

from __future__ import annotations

import gc
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np

from backends.lava import compat

compat.install()

from lava.magma.core.run_conditions import RunSteps  # noqa: E402
from lava.magma.core.run_configs import Loihi2SimCfg  # noqa: E402

import backends.lava.procs.fused.models  # noqa: E402,F401  (Lava finds the models in the process's package)
from backends.lava.procs.fused.process import FusedNetwork  # noqa: E402
from snncompile.netlist import OUTPUT, Netlist  # noqa: E402
from snncompile.sim.kernels import (  # noqa: E402
    IntNumerics,
    Numerics,
    build_kernel,
    input_values,
    numerics,
    step_order,
)

# the Lava process models and the input message type of each arithmetic
SELECT: dict[type[Numerics], tuple[str, type]] = {Numerics: ("floating_pt", np.float64),
                                                  IntNumerics: ("fixed_pt", np.int32)}

STATE_BUDGET = 1 << 25   # bytes of float64 state per population and batch (sets the batch size)
ERRORS = "errors.txt"    # a process model's traceback, polled by the driver (backend.run_lava)


def _reserve(path: Path) -> None:
    """Allocate a record's blocks now: a memory-mapped sparse file on a full disk fails with
    SIGBUS inside a Lava process (which then hangs the run); here it is an ENOSPC OSError."""
    fd = os.open(path, os.O_RDWR)
    try:
        os.posix_fallocate(fd, 0, os.fstat(fd).st_size)
    except OSError as exc:   # name the file: the parent's message shows it
        raise OSError(exc.errno, exc.strerror, str(path)) from None
    finally:
        os.close(fd)


def batch_size(net: Netlist, samples: int) -> int:
    """Samples per batch: all of them, unless the largest population's state would pass
    :data:`STATE_BUDGET`."""
    largest = max(p.size for p in net.populations.values())
    return int(max(1, min(samples, STATE_BUDGET // (8 * max(1, largest)))))


def run_fused(plan: Netlist, x: np.ndarray, record: list[str], workdir: Path,
              progress: Callable[[int, int], None] | None = None,
              batch: int | None = None, release: bool = False) -> dict[str, np.ndarray]:
    """Simulate ``plan`` on x [T, N, *shape]; returns {population: [T, N, size]} for
    ``record`` and OUTPUT for a value readout (same layout as ``network.run_plan``).

    ``release``: drop the plan's explicit synapse matrices once its kernels hold their own
    copy (the worker's private plan; a quantized CIFAR ticket's int64 matrices are ~50 MB).
    """
    select, message = SELECT[type(numerics(plan))]
    xin = input_values(plan, x)
    T, N = xin.shape[:2]
    B = batch_size(plan, N) if batch is None else max(1, min(batch, N))
    data = workdir / "input.npy"
    np.save(data, xin.astype(message))
    del xin
    files: dict[str, Path] = {}
    kernels = []
    for i, name in enumerate(step_order(plan)):
        k = build_kernel(plan, name)
        kernels.append(k)
        if release:
            for proj in plan.into(name):
                proj.explicit = None
        if name in record or name == OUTPUT:
            rec = workdir / f"record_{i}.npy"
            np.lib.format.open_memmap(rec, mode="w+", shape=(T, N, k.size),
                                      dtype=np.float64 if k.graded else np.uint8).flush()
            _reserve(rec)
            files[name] = rec
    proc = FusedNetwork(batch=B, steps=T, samples=N, source=plan.source.name, data=str(data), kernels=kernels,
                        records={n: str(f) for n, f in files.items()}, errors=str(workdir / ERRORS))
    del kernels
    cfg = Loihi2SimCfg(select_tag=select)
    batches = -(-N // B)
    # Lava forks its runtime processes from here: frozen objects are left out of the collector's
    # passes, which would otherwise write to (and so copy) every page of the parent's heap
    # (no gc.collect first: a full pass over torch's and Lava's objects costs ~0.4 s)
    gc.freeze()
    try:
        for b in range(batches):
            proc.run(condition=RunSteps(num_steps=T), run_cfg=cfg)
            if progress:
                progress((b + 1) * T, batches * T)
    finally:
        proc.stop()
        gc.unfreeze()
    return {name: np.load(path) for name, path in files.items()}
