"""Simulators: the IR reference simulator (the oracle) and the PyTorch runner."""

from snncompile.sim.reference import SimResult, simulate
from snncompile.sim.torch_run import TorchRun, run_torch

__all__ = ["SimResult", "simulate", "TorchRun", "run_torch"]
