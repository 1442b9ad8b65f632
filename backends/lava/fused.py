"""The fused Lava emission: one process per population, batches of samples at once.

See :mod:`backends.lava.procs.fused.process` for the process semantics. Compared with
the stock emission (``backends.lava.network``: Lava's own Dense/Sparse/Conv processes, one
sample after another, one step of latency per synapse hop) this runs ``T`` Lava steps
per batch instead of ``N·T + depth``, with a third of the processes and channels, and
reads the recorded spikes back from memory-mapped files once. Arithmetic per population
is :class:`snncompile.sim.kernels.Kernel` (float64, or Loihi's integer datapath).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import numpy as np

from backends.lava import compat

compat.install()

from lava.magma.core.run_conditions import RunSteps  # noqa: E402
from lava.magma.core.run_configs import Loihi2SimCfg  # noqa: E402

from backends.lava.procs.fused.models import classes  # noqa: E402
from backends.lava.procs.fused.process import FusedSource  # noqa: E402
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
CHANNEL_SLOTS = 2        # messages a channel buffers (a step sends once per channel)


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
              batch: int | None = None) -> dict[str, np.ndarray]:
    """Simulate ``plan`` on x [T, N, *shape]; returns {population: [T, N, size]} for
    ``record`` and OUTPUT for a value readout (same layout as ``network.run_plan``)."""
    select, message = SELECT[type(numerics(plan))]
    xin = input_values(plan, x)
    T, N = xin.shape[:2]
    B = batch_size(plan, N) if batch is None else max(1, min(batch, N))
    data = workdir / "input.npy"
    np.save(data, xin.astype(message))
    del xin
    source = plan.source
    procs = {source.name: FusedSource(batch=B, size=source.size, steps=T, samples=N, data=str(data),
                                      name=source.name)}
    files: dict[str, Path] = {}
    models = {}
    kernels = {}
    for i, name in enumerate(step_order(plan)):
        k = build_kernel(plan, name)
        if not k.sources:  # driven by its bias alone: still joined to the network Lava runs
            k.sources.append(source.name)
        rec = None
        if name in record or name == OUTPUT:
            rec = workdir / f"record_{i}.npy"
            np.lib.format.open_memmap(rec, mode="w+", shape=(T, N, k.size),
                                      dtype=np.float64 if k.graded else np.uint8).flush()
            _reserve(rec)
            files[name] = rec
        cls, model = classes(k.graded, len(k.sources), name != OUTPUT, select)
        models[cls] = model
        kernels[name] = k
        procs[name] = cls(batch=B, size=k.size, steps=T, samples=N,
                          in_sizes=tuple(plan.populations[s].size for s in k.sources),
                          has_out=name != OUTPUT, record=None if rec is None else str(rec),
                          errors=str(workdir / ERRORS), kernel=k, name=name)
    for name, k in kernels.items():   # after every process exists: a loop's delay reads a later one
        for port, src in enumerate(k.sources):
            procs[src].out.connect(getattr(procs[name], f"in_{port}"))
    cfg = Loihi2SimCfg(select_tag=select, exception_proc_model_map=models)
    anchor = procs[source.name]
    batches = -(-N // B)
    try:
        for b in range(batches):
            anchor.run(condition=RunSteps(num_steps=T), run_cfg=cfg,
                       compile_config={"pypy_channel_size": CHANNEL_SLOTS})
            if progress:
                progress((b + 1) * T, batches * T)
    finally:
        anchor.stop()
    return {name: np.load(path) for name, path in files.items()}
