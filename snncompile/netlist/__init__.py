"""The netlist: populations and projections (kernels kept), the lowering's one output."""

from snncompile.netlist.netlist import (
    OUTPUT,
    BiasMap,
    Chain,
    FixedPoint,
    Netlist,
    Operand,
    Population,
    Projection,
    bias_map,
    synaptic_memory,
)

__all__ = ["OUTPUT", "BiasMap", "Chain", "FixedPoint", "Netlist", "Operand", "Population", "Projection",
           "bias_map", "synaptic_memory"]
