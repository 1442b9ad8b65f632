"""The one interface every target implements: a netlist in, an artifact or spikes out.

A target registers itself with :func:`register`; the API and CLI find it by name, so a
new backend (NIR, ONNX, …) joins without touching the pipeline.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from snncompile.netlist.netlist import Netlist


@dataclass
class TargetRun:
    spikes: dict[str, np.ndarray]   # population → [T, N, kept size]
    output: np.ndarray | None       # value readout [T, N, size], if the netlist has one
    wall_s: float                   # time spent inside the target
    steps: int                      # target time steps executed
    backend: str                    # e.g. "lava-cpu", "lava-cpu-fixed_pt"
    emission: str = ""              # the target's emission variant, e.g. "fused" or "stock"


class Target(Protocol):
    name: str

    emissions: tuple[str, ...]      # ways the target can build the network; the first is the default

    def run(self, net: Netlist, x: np.ndarray, *, timeout_s: float,
            progress: Callable[[int, int], None] | None = None, emit: str | None = None) -> TargetRun:
        """Simulate ``net`` on x [T, N, *input_shape] (``emit``: one of ``emissions``)."""

    def emit(self, net: Netlist) -> dict[str, bytes]:
        """The target's files for ``net``: name → content ({} when it has no file form).
        The API writes them into the output folder with the run's other outputs."""


TARGETS: dict[str, Callable[[], Target]] = {}


def register(name: str, factory: Callable[[], Target]) -> None:
    """Register a target; ``factory`` is called (and its heavy imports made) on first use."""
    TARGETS[name] = factory


def get(name: str) -> Target:
    return TARGETS[name]()
