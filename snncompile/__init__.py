"""snncompile: compile sparse, binarized spiking networks to neuromorphic targets.

``compile``, ``inspect`` and ``Report`` load on first use (PEP 562): importing the package,
and so ``snncompile --help`` or ``--version``, does not import torch.
"""

from snncompile.errors import SnnCompileError

__all__ = ["compile", "inspect", "Report", "SnnCompileError"]
__version__ = "0.1.0"


def __getattr__(name: str):
    if name in ("compile", "inspect"):
        from snncompile import api

        return getattr(api, name)
    if name == "Report":
        from snncompile.report import Report

        return Report
    raise AttributeError(f"module 'snncompile' has no attribute {name!r}")
