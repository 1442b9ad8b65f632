"""The netlist: populations and projections (kernels kept), the lowering's one output."""

from snncompile.netlist.netlist import (
    OUTPUT,
    Chain,
    FixedPoint,
    Netlist,
    Operand,
    Population,
    Projection,
    synaptic_memory,
)

__all__ = ["OUTPUT", "Chain", "FixedPoint", "Netlist", "Operand", "Population", "Projection",
           "synaptic_memory"]
