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
import torch

from backends.lava import compat

compat.install()

from lava.magma.core.run_conditions import RunSteps  # noqa: E402
from lava.magma.core.run_configs import Loihi2SimCfg  # noqa: E402

import backends.lava.procs.fused.models  # noqa: E402,F401  (Lava finds the models in the process's package)
from backends.lava.procs.fused.process import FusedNetwork  # noqa: E402
from snncompile.errors import EXIT_UNSUPPORTED, SnnCompileError  # noqa: E402
from snncompile.netlist import OUTPUT, WINDOW_HINT, HostPopulation, Netlist, window_stages  # noqa: E402
from snncompile.sim.kernels import (  # noqa: E402
    IntNumerics,
    Numerics,
    build_kernel,
    input_values,
    numerics,
    step_order,
    window_values,
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


def _stages(plan: Netlist) -> tuple[dict[str, int], list[str]]:
    """Each population's stage (:func:`snncompile.netlist.window_stages`) and the step order."""
    stage = window_stages(plan)
    order = step_order(plan)
    if OUTPUT in order:   # the readout runs with the last of its sources
        stage[OUTPUT] = max((stage[p.src] for p in plan.into(OUTPUT)), default=0)
    return stage, order


def _window_host(plan: Netlist, name: str) -> bool:
    pop = plan.populations.get(name)
    return isinstance(pop, HostPopulation) and pop.fn.window


def lava_runs(plan: Netlist) -> int:
    """How many Lava runs over all T steps a fused simulation of ``plan`` makes per batch:
    1, or one per stage with populations on the cores when window hosts stage it."""
    stage, order = _stages(plan)
    return max(1, len({stage[n] for n in order if not _window_host(plan, n)}))


def run_fused(plan: Netlist, x: np.ndarray, record: list[str], workdir: Path,
              progress: Callable[[int, int], None] | None = None,
              batch: int | None = None, release: bool = False) -> dict[str, np.ndarray]:
    """Simulate ``plan`` on x [T, N, *shape]; returns {population: [T, N, size]} for
    ``record`` and OUTPUT for a value readout (same layout as ``network.run_plan``).

    ``release``: drop the plan's explicit synapse matrices once its kernels hold their own
    copy (the worker's private plan; a quantized CIFAR ticket's int64 matrices are ~50 MB).

    With window hosts (time barriers, :func:`snncompile.netlist.window_stages`) the run is staged,
    as a chip and its host would run it: stage k is one Lava run over all T steps whose boundary
    values are recorded; the host then computes the window hosts of stage k + 1 from every step
    (:func:`snncompile.sim.kernels.window_values`); stage k + 1 is a second Lava run fed with them."""
    select, message = SELECT[type(numerics(plan))]
    xin = input_values(plan, x)
    T, N = xin.shape[:2]
    B = batch_size(plan, N) if batch is None else max(1, min(batch, N))
    stage, order = _stages(plan)
    run = _Stage(plan, workdir, B, progress, (select, message), release)
    if max(stage.values(), default=0) == 0:
        return run(order, {plan.source.name: xin}, set(record) | {OUTPUT}, workdir)
    if plan.delays or select != "floating_pt":
        raise SnnCompileError("window hosts (time barriers) with a recurrent loop or on the fixed-point datapath "
                              "cannot be staged", WINDOW_HINT, EXIT_UNSUPPORTED)
    # the host computes between stages in this process, which then starts the next stage's Lava
    # processes: a torch thread pool started here would be inherited by them half-initialised (they
    # hang in their first torch call), so the host's arithmetic stays on this one thread
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _staged(plan, order, stage, xin, record, run)
    finally:
        torch.set_num_threads(threads)


def _staged(plan: Netlist, order: list[str], stage: dict[str, int], xin: np.ndarray, record: list[str],
            run: _Stage) -> dict[str, np.ndarray]:
    """Stage by stage: the window hosts of stage k from every step, then stage k as one Lava run."""
    values: dict[str, np.ndarray] = {plan.source.name: xin}   # every population a later stage reads
    out: dict[str, np.ndarray] = {}
    for k in range(max(stage.values()) + 1):
        names = [n for n in order if stage[n] == k]
        for n in names:
            if _window_host(plan, n):   # on the host, from every step
                values[n] = window_values(plan, n, values)
        stepped = [n for n in names if n not in values]
        feeds = {s: values[s] for n in stepped for s in _sources(plan, n) if s in values}
        later = {s for n in order if stage[n] > k for s in _sources(plan, n)}
        wanted = (set(record) | {OUTPUT} | later) & set(stepped)
        got = run(stepped, feeds, wanted, run.workdir / f"stage{k}") if stepped else {}
        values.update(got)
        out.update({n: v for n, v in {**got, **{n: values[n] for n in names if n in values}}.items()
                    if n in record or n == OUTPUT})
    return out


def _sources(plan: Netlist, name: str) -> list[str]:
    """The populations ``name`` reads (projections and operands)."""
    pop = plan.populations.get(name)
    return [p.src for p in plan.into(name)] + [o.src for o in getattr(pop, "operands", [])]


class _Stage:
    """One Lava run of some populations over all T steps in one :class:`FusedNetwork` process."""

    def __init__(self, plan: Netlist, workdir: Path, batch: int, progress: Callable[[int, int], None] | None,
                 types: tuple[str, type], release: bool) -> None:
        self.plan, self.workdir, self.batch, self.progress = plan, workdir, batch, progress
        self.select, self.message = types
        self.release = release
        self.runs, self.done = lava_runs(plan), 0   # Lava runs in all, and finished (for progress)

    def __call__(self, order: list[str], feeds: dict[str, np.ndarray], record: set[str],
                 workdir: Path) -> dict[str, np.ndarray]:
        """Run the populations ``order`` fed by ``feeds`` ({population: [T, N, ...]}: the input, or
        values of an earlier stage); returns ``record``'s outputs [T, N, size]."""
        workdir.mkdir(parents=True, exist_ok=True)
        T, N = next(iter(feeds.values())).shape[:2]
        data = {}
        for i, (name, values) in enumerate(feeds.items()):
            data[name] = str(workdir / f"input_{i}.npy")
            np.save(data[name], np.asarray(values).reshape(T, N, -1).astype(self.message))
        files: dict[str, Path] = {}
        kernels = []
        for i, name in enumerate(order):
            k = build_kernel(self.plan, name)
            kernels.append(k)
            if self.release:
                for proj in self.plan.into(name):
                    proj.explicit = None
            if name in record:
                rec = workdir / f"record_{i}.npy"
                np.lib.format.open_memmap(rec, mode="w+", shape=(T, N, k.size),
                                          dtype=np.float64 if k.graded else np.uint8).flush()
                _reserve(rec)
                files[name] = rec
        proc = FusedNetwork(batch=self.batch, steps=T, samples=N, feeds=data, kernels=kernels,
                            records={n: str(f) for n, f in files.items()}, errors=str(self.workdir / ERRORS))
        del kernels
        self._run(proc, T, N)
        return {name: np.load(path) for name, path in files.items()}

    def _run(self, proc: FusedNetwork, T: int, N: int) -> None:
        cfg = Loihi2SimCfg(select_tag=self.select)
        batches = -(-N // self.batch)
        # Lava forks its runtime processes from here: frozen objects are left out of the collector's
        # passes, which would otherwise write to (and so copy) every page of the parent's heap
        # (no gc.collect first: a full pass over torch's and Lava's objects costs ~0.4 s)
        gc.freeze()
        try:
            for b in range(batches):
                proc.run(condition=RunSteps(num_steps=T), run_cfg=cfg)
                if self.progress:   # over every stage's run: one bar from 0 to the end
                    self.progress((self.done * batches + b + 1) * T, self.runs * batches * T)
            self.done += 1
        finally:
            proc.stop()
            gc.unfreeze()
