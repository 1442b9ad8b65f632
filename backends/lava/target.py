"""The Lava target: runs a netlist on Lava's CPU backend (float or fixed_pt models)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from snncompile.netlist import FixedNetlist, Netlist
from snncompile.netlist.target import TargetRun
from snncompile.targets import TARGETS as SPECS


class LavaTarget:
    name = "lava"
    # fused: one process per population, batches of samples (backends.lava.fused);
    # stock: Lava's own Dense/Sparse/Conv, one sample at a time (backends.lava.network)
    emissions = SPECS["lava"].emissions

    def run(self, net: Netlist, x: np.ndarray, *, timeout_s: float,
            progress: Callable[[int, int], None] | None = None, emit: str | None = None) -> TargetRun:
        from backends.lava.backend import run_lava

        emit = emit or self.emissions[0]
        run = run_lava(net, x, timeout_s=timeout_s, progress=progress, emit=emit)
        return TargetRun(run.spikes, run.output, run.wall_s, run.steps,
                         "lava-cpu-fixed_pt" if isinstance(net, FixedNetlist) else "lava-cpu", emit)

    def emit(self, net: Netlist) -> dict[str, bytes]:
        return {}  # Lava processes are built in the simulating process; nothing to write
