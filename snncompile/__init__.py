"""snncompile: compile sparse, binarized spiking networks to neuromorphic targets."""

from snncompile.api import compile, inspect
from snncompile.errors import SnnCompileError
from snncompile.report import Report

__all__ = ["compile", "inspect", "Report", "SnnCompileError"]
__version__ = "0.1.0"
