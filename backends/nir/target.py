"""The NIR target: writes the compiled network as ``model.nir`` (nothing to simulate)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from snncompile.errors import EXIT_USAGE, SnnCompileError
from snncompile.netlist import Netlist
from snncompile.netlist.target import TargetRun
from snncompile.targets import TARGETS as SPECS


class NirTarget:
    name = "nir"
    emissions = SPECS["nir"].emissions

    def run(self, net: Netlist, x: np.ndarray, *, timeout_s: float,
            progress: Callable[[int, int], None] | None = None, emit: str | None = None) -> TargetRun:
        raise SnnCompileError("the nir target writes a file; it does not simulate",
                              "drop --simulate, or simulate the written model.nir with --target lava", EXIT_USAGE)

    def emit(self, net: Netlist) -> dict[str, bytes]:
        from backends.nir.export import nir_bytes

        return {"model.nir": nir_bytes(net)}
